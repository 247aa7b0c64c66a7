-- The benchmark harness: Moonlight against PyTorch on this machine, side by side, in
-- one run. Started by scripts/bench/run (which runs it with build/moonlight from the
-- repository root); see docs/PERFORMANCE.md.
--
--   scripts/bench/run [--quick] [--repeats N] [--epochs N] [--only moonlight]
--                     [--threads 1,2] [--limit_train_batches N] [--limit_val_batches N]
--                     [--build DIR] [--data DIR] [--out DIR] [--python PATH]
--
-- Every measurement is the median of --repeats runs (3; --quick: 1 run, 1 epoch, short
-- op benchmarks). Runs of the experiment are interleaved (one of each, then again) so
-- that a change of load on a shared machine falls on all of them alike. Writes
-- bench.md and bench.csv into --out (scripts/bench/results/).
local ml = require "moonlight"
local clock, sys = ml._sys.clock, ml._sys

local o = {repeats = 3, epochs = 3, only = nil, threads = "1,2", build = "build", data = "data/mnist",
           out = "scripts/bench/results", python = "/usr/bin/python3", quick = false,
           limit_train_batches = nil, limit_val_batches = nil}
do
  local known = {repeats = 1, epochs = 1, only = 1, threads = 1, build = 1, data = 1, out = 1, python = 1,
                 limit_train_batches = 1, limit_val_batches = 1}
  local i, explicit = 1, {}
  while arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if k == "quick" then
      o.quick = true
      i = i + 1
    elseif k and known[k] and arg[i + 1] then
      o[k] = math.tointeger(tonumber(arg[i + 1])) or arg[i + 1]
      explicit[k] = true
      i = i + 2
    else
      error("usage: scripts/bench/run [--quick] [--repeats N] [--epochs N] [--only moonlight] [--threads 1,2] " ..
            "[--limit_train_batches N] [--limit_val_batches N] [--build DIR] [--data DIR] [--out DIR] [--python PATH]", 0)
    end
  end
  if o.quick then
    if not explicit.repeats then o.repeats = 1 end
    if not explicit.epochs then o.epochs = 1 end
  end
  if o.only ~= nil and o.only ~= "moonlight" then error("--only: only 'moonlight' is known", 0) end
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function median(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end
local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function sh_out(cmd)
  local p = io.popen(cmd)
  local s = p:read("a") or ""
  p:close()
  return (s:gsub("%s+$", ""))
end

local tmp = sh_out("mktemp -d /tmp/moonlight-bench.XXXXXX")
assert(tmp ~= "", "mktemp failed")
local bin = o.build .. "/moonlight"
assert(sys.kind(bin) == "file", "no " .. bin .. ": build first (scripts/build build)")

-- Runs cmd (through sh), output to a file; returns seconds and the output. A command
-- that fails stops the harness with its output.
local n_cmd = 0
local function run(cmd)
  n_cmd = n_cmd + 1
  local out = string.format("%s/out.%d", tmp, n_cmd)
  local t0 = clock()
  local ok, _, code = os.execute(cmd .. " > " .. out .. " 2>&1")
  local dt = clock() - t0
  local text = read_all(out)
  os.remove(out)
  if not ok then
    io.stderr:write(text:sub(-4000), "\n")
    error(string.format("bench: command failed (exit %s): %s", tostring(code), cmd), 0)
  end
  return dt, text
end

local function parse_bench(text, cmd)
  local line = text:match("\nBENCH ([^\n]*)") or text:match("^BENCH ([^\n]*)")
  if not line then
    io.stderr:write(text:sub(-4000), "\n")
    error("bench: no BENCH line from " .. cmd, 0)
  end
  local r = {}
  for k, v in line:gmatch("(%S+)=(%S+)") do
    if v:find(",") or k:match("_s$") and k ~= "load_s" and k ~= "fit_s" and k ~= "acc_s" and k ~= "import_s" then
      local xs = {}
      for x in v:gmatch("[^,]+") do xs[#xs + 1] = tonumber(x) end
      r[k] = xs
    else
      r[k] = tonumber(v) or v
    end
  end
  return r
end

local function parse_rows(text, into, suffix)
  local n = 0
  for key, v, unit in text:gmatch("ROW\t([^\t]+)\t([^\t]+)\t([^\n]+)") do
    local k = key .. (suffix or "")
    into[k] = into[k] or {unit = unit, values = {}}
    table.insert(into[k].values, tonumber(v))
    n = n + 1
  end
  return n
end

local torch_ok = false
if o.only ~= "moonlight" then
  torch_ok = os.execute(q(o.python) .. " -c 'import torch, torchvision' > /dev/null 2>&1") and true or false
  if not torch_ok then
    io.stderr:write("bench: " .. o.python .. " cannot import torch and torchvision: PyTorch columns left out\n")
  end
end
local threads = {}
for t in tostring(o.threads):gmatch("%d+") do threads[#threads + 1] = tonumber(t) end

local function info(s) io.stderr:write(s, "\n") end
local loadavg0 = sh_out("cut -d' ' -f1-3 /proc/loadavg")
local t_all = clock()

---------------------------------------------------------------------------
-- the reference experiment
---------------------------------------------------------------------------
local limits = ""
if o.limit_train_batches then limits = limits .. " --limit_train_batches " .. o.limit_train_batches end
if o.limit_val_batches then limits = limits .. " --limit_val_batches " .. o.limit_val_batches end
local common = string.format(" --epochs %d --data %s --logs %s", o.epochs, q(o.data), q(tmp .. "/logs")) .. limits

local impls = {
  {id = "moonlight", label = "Moonlight", cmd = q(bin) .. " scripts/bench/mnist_moonlight.lua" .. common},
  {id = "moonlight_1t", label = "Moonlight, OMP/OPENBLAS_NUM_THREADS=1", diag = true,
   cmd = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 " .. q(bin) .. " scripts/bench/mnist_moonlight.lua" .. common},
  {id = "moonlight_passive", label = "Moonlight, OMP_WAIT_POLICY=passive", diag = true,
   cmd = "OMP_WAIT_POLICY=passive " .. q(bin) .. " scripts/bench/mnist_moonlight.lua" .. common},
}
if torch_ok then
  for _, kind in ipairs({"best", "tutorial"}) do
    for _, t in ipairs(threads) do
      impls[#impls + 1] = {
        id = string.format("torch_%s_%dt", kind, t), peer = kind, threads = t,
        label = string.format("PyTorch %s (%s), %d thread%s", kind == "best" and "at its best" or "tutorial",
                              kind == "best" and "b" or "a", t, t > 1 and "s" or ""),
        cmd = string.format("%s scripts/bench/torch_%s.py --threads %d", q(o.python), kind, t) .. common}
    end
  end
end

local exp = {}
for _, im in ipairs(impls) do exp[im.id] = {wall = {}, train = {}, val = {}, rss = {}, val_loss = {}, acc = {}} end
for r = 1, o.repeats do
  for _, im in ipairs(impls) do
    info(string.format("[%d/%d] %s", r, o.repeats, im.label))
    local dt, text = run(im.cmd)
    local b = parse_bench(text, im.cmd)
    local e = exp[im.id]
    e.wall[#e.wall + 1] = dt
    e.last_train = b.train_s
    for _, x in ipairs(b.train_s) do e.train[#e.train + 1] = x end
    for _, x in ipairs(b.val_s) do e.val[#e.val + 1] = x end
    e.rss[#e.rss + 1] = b.peak_rss
    e.val_loss[#e.val_loss + 1] = b.val_loss
    e.acc[#e.acc + 1] = b.accuracy
    if b.epochs ~= o.epochs then error(string.format("bench: %s ran %s epochs, expected %d", im.id, b.epochs, o.epochs), 0) end
  end
end

---------------------------------------------------------------------------
-- start-up
---------------------------------------------------------------------------
local startup_cmds = {
  {id = "sh_true", label = "`sh -c true` (the harness's own spawn cost)", cmd = "true"},
  {id = "moonlight_e", label = "`moonlight -e ''`", cmd = q(bin) .. " -e ''"},
  {id = "lua_require", label = "`lua5.4 -e 'require \"moonlight\"'`",
   -- ML_BENCH_LUA_ENV: extra environment for the stock interpreter (the sanitizer
   -- runtimes to preload when the module is an ASan build; set by tests/bench.cmake)
   cmd = (os.getenv("ML_BENCH_LUA_ENV") or "") .. " LUA_CPATH=" .. q(o.build .. "/?.so") ..
         " lua5.4 -e 'require \"moonlight\"'"},
}
if torch_ok then
  startup_cmds[#startup_cmds + 1] = {id = "python_torch", label = "`python3 -c 'import torch'`", peer = true,
                                     cmd = q(o.python) .. " -c 'import torch'"}
end
local startup = {}
local n_start = o.quick and 3 or 11
info("start-up")
for _, s in ipairs(startup_cmds) do startup[s.id] = {} end
for _ = 1, n_start do
  for _, s in ipairs(startup_cmds) do table.insert(startup[s.id], (run(s.cmd))) end
end

---------------------------------------------------------------------------
-- op level and the limit
---------------------------------------------------------------------------
local rows = {}
local qflag = o.quick and " --quick" or ""
info("op level")
for _ = 1, o.repeats do
  local _, t = run(q(bin) .. " scripts/bench/ops.lua " .. (o.quick and 1 or 5) .. " --rows")
  assert(parse_rows(t, rows) > 0, "ops.lua printed no ROW lines")
  _, t = run(q(bin) .. " scripts/bench/losses.lua --rows" .. qflag)
  assert(parse_rows(t, rows) > 0, "losses.lua printed no ROW lines")
  _, t = run(q(bin) .. " scripts/bench/adam.lua --rows" .. qflag)
  assert(parse_rows(t, rows) > 0, "adam.lua printed no ROW lines")
  _, t = run(q(bin) .. " scripts/bench/limit.lua --rows" .. qflag)
  assert(parse_rows(t, rows) > 0, "limit.lua printed no ROW lines")
  if torch_ok then
    for _, th in ipairs(threads) do
      _, t = run(string.format("%s scripts/bench/torch_ops.py --threads %d%s", q(o.python), th, qflag))
      assert(parse_rows(t, rows, ".torch" .. th) > 0, "torch_ops.py printed no ROW lines")
    end
  end
end
local function rv(key) return rows[key] and median(rows[key].values) end

local wall_all = clock() - t_all
local loadavg1 = sh_out("cut -d' ' -f1-3 /proc/loadavg")

---------------------------------------------------------------------------
-- report
---------------------------------------------------------------------------
local csv = {"section,name,metric,value,unit"}
local function c(section, name, metric, value, unit)
  local v = (value == math.floor(value) and math.abs(value) < 1e15) and string.format("%d", math.tointeger(value))
            or string.format("%.9g", value)
  csv[#csv + 1] = string.format("%s,%s,%s,%s,%s", section, name, metric, v, unit or "")
end
local md = {}
local function p(s) md[#md + 1] = s or "" end
local function f(x, fmt) return (x ~= x) and "—" or string.format(fmt or "%.3f", x) end

local commit = sh_out("git rev-parse --short HEAD 2>/dev/null")
local dirty = sh_out("git status --porcelain --untracked-files=no 2>/dev/null") ~= "" and " (+ uncommitted changes)" or ""
local cpu = sh_out("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-"):gsub("^%s+", "")
p(string.format("Moonlight %s at %s%s, %s; %s, %s cores; load average %s at the start, %s at the end; " ..
                "%d repeat%s, %d epoch%s%s; harness wall %.0f s.",
                ml._VERSION, commit, dirty, os.date("!%Y-%m-%d %H:%M UTC"), cpu, sh_out("nproc"), loadavg0, loadavg1,
                o.repeats, o.repeats > 1 and "s" or "", o.epochs, o.epochs > 1 and "s" or "",
                o.limit_train_batches and (", limit_train_batches " .. o.limit_train_batches) or "", wall_all))
p()

-- the experiment
local ml_e = exp.moonlight
local ml_wall, ml_train, ml_val = median(ml_e.wall), median(ml_e.train), median(ml_e.val)
p("### The reference experiment (MNIST MLP, " .. o.epochs .. " epoch" .. (o.epochs > 1 and "s" or "") ..
  ", validation each epoch, CSV log)")
p()
p("| run | whole process (s) | train epoch (s) | validation (s) | peak RSS (MiB) | val_loss | accuracy | whole: × Moonlight | train epoch: × Moonlight |")
p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for _, im in ipairs(impls) do
  local e = exp[im.id]
  local wall, tr, va = median(e.wall), median(e.train), median(e.val)
  local rss = median(e.rss) / 2 ^ 20
  p(string.format("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", im.label, f(wall, "%.2f"), f(tr, "%.3f"),
                  f(va, "%.3f"), f(rss, "%.1f"), f(median(e.val_loss), "%.6f"), f(median(e.acc), "%.4f"),
                  im.id == "moonlight" and "1" or f(wall / ml_wall, "%.2f"),
                  im.id == "moonlight" and "1" or f(tr / ml_train, "%.2f")))
  c("experiment", im.id, "wall_s", wall, "s")
  c("experiment", im.id, "train_epoch_s", tr, "s")
  c("experiment", im.id, "val_s", va, "s")
  c("experiment", im.id, "peak_rss", median(e.rss), "bytes")
  c("experiment", im.id, "val_loss", median(e.val_loss))
  c("experiment", im.id, "accuracy", median(e.acc))
  if im.id ~= "moonlight" then
    c("experiment", im.id, "wall_ratio_vs_moonlight", wall / ml_wall, "x")
    c("experiment", im.id, "train_epoch_ratio_vs_moonlight", tr / ml_train, "x")
  end
end
p()
p("Times are medians over repeats (epochs pooled for the per-epoch columns). \"× Moonlight\" is the peer's " ..
  "time over Moonlight's: above 1, Moonlight is faster. The two Moonlight rows with an environment " ..
  "setting are diagnostics (the same binary with OpenMP/OpenBLAS on one thread, and with libgomp's idle " ..
  "workers sleeping instead of spinning), not peers: ratios and targets use the default row.")
p()

-- start-up
p("### Start-up (median of " .. n_start .. ", ms, including the harness's spawn through `sh`)")
p()
p("| command | ms |")
p("|---|---:|")
for _, s in ipairs(startup_cmds) do
  local v = median(startup[s.id]) * 1e3
  p(string.format("| %s | %.1f |", s.label, v))
  c("startup", s.id, "wall_ms", v, "ms")
end
p()

-- op level
local function op_table(title, keys, cols)
  p("### " .. title)
  p()
  local head, sep = {"op"}, {"---"}
  for _, col in ipairs(cols) do head[#head + 1] = col[1]; sep[#sep + 1] = "---:" end
  p("| " .. table.concat(head, " | ") .. " |")
  p("|" .. table.concat(sep, "|") .. "|")
  for _, k in ipairs(keys) do
    local cells = {k[2]}
    for _, col in ipairs(cols) do
      local v = col[2](k[1])
      cells[#cells + 1] = v and f(v, col[3] or "%.2f") or "—"
    end
    p("| " .. table.concat(cells, " | ") .. " |")
  end
  p()
end
local function ratio(a, b) return function(k) local x, y = a(k), b(k); return x and y and x / y end end
local function key_of(suffix) return function(k) return rv(k .. suffix) end end

local mm_keys = {}
for _, s in ipairs({"784x64", "64x32", "32x10"}) do
  mm_keys[#mm_keys + 1] = {"matmul.linear_bias." .. s, "linear fwd + bias, [128, " .. s:gsub("x", "] × W[") .. "]ᵀ"}
  mm_keys[#mm_keys + 1] = {"matmul.linear." .. s, "linear fwd, [128, " .. s:gsub("x", "] × W[") .. "]ᵀ"}
end
mm_keys[#mm_keys + 1] = {"matmul.grad_input.784x64", "grad_input [128,64] @ [64,784]"}
mm_keys[#mm_keys + 1] = {"matmul.grad_weight.784x64", "grad_weight [64,128] @ [128,784]"}
local ew_keys = {{"elementwise.add", "add"}, {"elementwise.mul", "mul"}, {"elementwise.relu", "relu"},
                 {"elementwise.exp", "exp"}}
local peer_cols = function(unit_is_rate, peer_name)
  local cols = {{"Moonlight", key_of("")}, {peer_name, key_of("." .. peer_name)},
                {"Moonlight / " .. peer_name, ratio(key_of(""), key_of("." .. peer_name))}}
  for _, th in ipairs(torch_ok and threads or {}) do
    cols[#cols + 1] = {"PyTorch " .. th .. "t", key_of(".torch" .. th)}
    cols[#cols + 1] = {"Moonlight / PyTorch " .. th .. "t", ratio(key_of(""), key_of(".torch" .. th))}
  end
  return cols
end
op_table("matmul at the MLP's shapes (GFLOP/s; ratio above 1: Moonlight faster)", mm_keys, peer_cols(true, "openblas"))
op_table("elementwise on 16M float32 (GB/s moved; ratio above 1: Moonlight faster)", ew_keys, peer_cols(true, "memcpy"))

local loss_keys = {}
for _, s in ipairs({"128x10", "4096x1000"}) do
  for _, l in ipairs({{"cross_entropy.fwd", "cross_entropy forward"}, {"cross_entropy.fwdbwd", "cross_entropy fwd+bwd"},
                      {"mse_loss.fwd", "mse_loss forward"}, {"mse_loss.fwdbwd", "mse_loss fwd+bwd"},
                      {"custom_mse.fwdbwd", "mean(square(a - b)) fwd+bwd"}, {"three_ops", "exp, *, + (3 ops)"}}) do
    loss_keys[#loss_keys + 1] = {"loss." .. l[1] .. "." .. s, l[2] .. " [" .. s:gsub("x", ", ") .. "]"}
  end
end
loss_keys[#loss_keys + 1] = {"adam.step", "Adam step, MLP's 52,650 parameters"}
local us = function(g) return function(k) local v = g(k); return v and v * 1e6 end end
local lcols = {{"Moonlight (µs)", us(key_of(""))}}
for _, th in ipairs(torch_ok and threads or {}) do
  lcols[#lcols + 1] = {"PyTorch " .. th .. "t (µs)", us(key_of(".torch" .. th))}
  lcols[#lcols + 1] = {"PyTorch " .. th .. "t / Moonlight", ratio(key_of(".torch" .. th), key_of(""))}
end
op_table("losses and the optimizer step (µs per call; ratio above 1: Moonlight faster)", loss_keys, lcols)
for k, r in pairs(rows) do c("op", k, "median", median(r.values), r.unit) end

-- the limit
local tf, vf = rv("limit.train_flops"), rv("limit.val_flops")
local lt, lv = rv("limit.train_s"), rv("limit.val_s")
p("### The limit: sgemm-bound epoch")
p()
p(string.format("Matmul FLOPs per epoch: training %.4f GFLOP (469 steps, forward + backward, no grad_input " ..
                "for the first layer) + validation %.4f GFLOP (79 batches) = %.4f GFLOP. Timed as direct " ..
                "`cblas_sgemm` calls at each shape: %.1f ms training + %.1f ms validation = %.1f ms " ..
                "(%.1f GFLOP/s). Moonlight's epoch: %.1f ms training + %.1f ms validation = %.2f× the limit.",
                tf / 1e9, vf / 1e9, (tf + vf) / 1e9, lt * 1e3, lv * 1e3, (lt + lv) * 1e3, (tf + vf) / (lt + lv) / 1e9,
                ml_train * 1e3, ml_val * 1e3, (ml_train + ml_val) / (lt + lv)))
p()
c("limit", "epoch", "flops", tf + vf, "FLOP")
c("limit", "epoch", "sgemm_s", lt + lv, "s")
c("limit", "moonlight", "epoch_over_limit", (ml_train + ml_val) / (lt + lv), "x")

-- the targets
p("### Targets")
p()
p("| target | measured | met |")
p("|---|---:|:-:|")
local function target(name, value, ok, fmt)
  p(string.format("| %s | %s | %s |", name, value == value and string.format(fmt, value) or "—",
                  value ~= value and "—" or (ok and "yes" or "**no**")))
end
local best1 = torch_ok and exp["torch_best_" .. threads[1] .. "t"]
local best, tut = nil, nil
if torch_ok then
  -- each peer's fastest configuration (thread count), per measure
  local function fastest(kind, field)
    local m = math.huge
    for _, th in ipairs(threads) do m = math.min(m, median(exp["torch_" .. kind .. "_" .. th .. "t"][field])) end
    return m
  end
  best = {wall = fastest("best", "wall"), train = fastest("best", "train")}
  tut = {wall = fastest("tutorial", "wall")}
  target("whole experiment ≥ 5× faster than PyTorch at its best (b)", best.wall / ml_wall, best.wall / ml_wall >= 5, "%.2f×")
  target("whole experiment ≥ 20× faster than the tutorial (a)", tut.wall / ml_wall, tut.wall / ml_wall >= 20, "%.2f×")
  target("training epoch ≥ 2.5× faster than PyTorch's best epoch", best.train / ml_train, best.train / ml_train >= 2.5, "%.2f×")
  local dl = math.abs(median(ml_e.val_loss) - median(best1.val_loss))
  target("same val_loss as PyTorch (b): difference ≤ 0.002", dl, dl <= 0.002, "%.6f")
end
local over = (ml_train + ml_val) / (lt + lv)
target("epoch within 1.5× of the sgemm-bound limit", over, over <= 1.5, "%.2f×")
local rss = median(ml_e.rss) / 2 ^ 20
target("peak RSS ≤ 80 MiB", rss, rss <= 80, "%.1f MiB")
local st = median(startup.moonlight_e) * 1e3
target("start-up (`moonlight -e ''`) ≤ 20 ms", st, st <= 20, "%.1f ms")
p()

local text = table.concat(md, "\n") .. "\n"
assert(sys.mkdir_p(o.out))
local fm = assert(io.open(o.out .. "/bench.md", "w"))
fm:write(text)
fm:close()
local fc = assert(io.open(o.out .. "/bench.csv", "w"))
fc:write(table.concat(csv, "\n"), "\n")
fc:close()
os.execute("rm -rf " .. q(tmp))
io.write(text)
info("written: " .. o.out .. "/bench.md, " .. o.out .. "/bench.csv")
