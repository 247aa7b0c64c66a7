-- The CNN benchmark side by side (issue 16): scripts/bench/cnn.lua (Moonlight) and
-- scripts/bench/cnn_torch.py (PyTorch 1.13) in one run, interleaved (one of each,
-- then again), medians over --repeats; PyTorch at 1 and 2 threads, its best thread
-- count taken for the ratio. Prints a markdown table and a last machine-readable
-- line:
--
--   BENCH cnn_epoch_s=... torch_best_epoch_s=... torch_best_threads=N ratio=... rss_ratio=... run_rss_ratio=...
--
-- rss_ratio: PyTorch's peak RSS over Moonlight's during the training epoch (what the
-- benchmark times); run_rss_ratio: the same for the whole run, test pass at batch
-- 1000 included.
--
--   build/moonlight scripts/bench/cnn_compare.lua [--repeats 3] [--limit N] [--threads 1,2]
--       [--python /usr/bin/python3] [--data data/mnist]
-- (--limit N: N training steps instead of the epoch's 469, for a quick look)
local ml = require "moonlight"
local clock = ml._sys.clock

local o = {repeats = 3, limit = 0, threads = "1,2", python = "/usr/bin/python3", data = "data/mnist"}
for i = 1, #arg, 2 do
  local k = arg[i]:match("^%-%-(%w+)$")
  if not k or o[k] == nil or arg[i + 1] == nil then
    error("usage: cnn_compare.lua [--repeats N] [--limit N] [--threads 1,2] [--python PATH] [--data DIR]", 0)
  end
  o[k] = math.tointeger(tonumber(arg[i + 1])) or arg[i + 1]
end

local bin = arg[-1] or "build/moonlight"
local common = string.format(" --limit %d --data '%s'", o.limit, o.data)
local impls = {{id = "moonlight", label = "Moonlight (its default threads)",
                cmd = "'" .. bin .. "' scripts/bench/cnn.lua" .. common}}
for t in tostring(o.threads):gmatch("%d+") do
  impls[#impls + 1] = {id = "torch_" .. t .. "t", threads = tonumber(t), label = "PyTorch 1.13, " .. t .. " thread(s)",
                       cmd = string.format("'%s' scripts/bench/cnn_torch.py --threads %s", o.python, t) .. common}
end

local function median(xs)
  local t = {table.unpack(xs)}
  table.sort(t)
  local n = #t
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local res = {}
for _, im in ipairs(impls) do res[im.id] = {epoch = {}, rss = {}, train_rss = {}, acc = {}, wall = {}} end
for r = 1, o.repeats do
  for _, im in ipairs(impls) do
    io.stderr:write(string.format("[%d/%d] %s\n", r, o.repeats, im.label))
    local t0 = clock()
    local p = io.popen(im.cmd .. " 2>&1")
    local out = p:read("a")
    p:close()
    local line = out:match("BENCH[^\n]*")
    if not line then error("no BENCH line from " .. im.cmd .. ":\n" .. out, 0) end
    local e = res[im.id]
    e.wall[#e.wall + 1] = clock() - t0
    e.epoch[#e.epoch + 1] = tonumber(line:match("epoch_s=([%d.]+)"))
    e.rss[#e.rss + 1] = tonumber(line:match(" peak_rss=(%d+)"))
    e.train_rss[#e.train_rss + 1] = tonumber(line:match("train_peak_rss=(%d+)"))
    e.acc[#e.acc + 1] = tonumber(line:match("accuracy=([%d.]+)"))
  end
end

local ml_epoch, ml_rss = median(res.moonlight.epoch), median(res.moonlight.rss)
local ml_train_rss = median(res.moonlight.train_rss)
local best, best_t, best_rss, best_train_rss = math.huge, 0, 0, 0
for _, im in ipairs(impls) do
  if im.threads and median(res[im.id].epoch) < best then
    best, best_t, best_rss = median(res[im.id].epoch), im.threads, median(res[im.id].rss)
    best_train_rss = median(res[im.id].train_rss)
  end
end
print(string.format("MNIST CNN, one training epoch%s, batch 128, Adam; medians of %d interleaved runs; load %s",
                    o.limit > 0 and (" (" .. o.limit .. " steps)") or "", o.repeats,
                    io.open("/proc/loadavg"):read("l"):match("^(%S+ %S+ %S+)")))
print()
print("| run | epoch (s) | peak RSS, training (MiB) | peak RSS, whole run (MiB) | test accuracy | PyTorch's epoch / this |")
print("|---|---:|---:|---:|---:|---:|")
for _, im in ipairs(impls) do
  local e = res[im.id]
  print(string.format("| %s | %.2f | %.0f | %.0f | %.4f | %.2f |", im.label, median(e.epoch),
                      median(e.train_rss) / 2 ^ 20, median(e.rss) / 2 ^ 20, median(e.acc), best / median(e.epoch)))
end
print()
print(string.format("BENCH cnn_epoch_s=%.3f torch_best_epoch_s=%.3f torch_best_threads=%d ratio=%.2f rss_ratio=%.2f"
                    .. " run_rss_ratio=%.2f", ml_epoch, best, best_t, best / ml_epoch, best_train_rss / ml_train_rss,
                    best_rss / ml_rss))
