-- Benchmark (not a test): one nn.TransformerEncoderLayer (d_model 256, 4 heads,
-- dim_feedforward 2048, dropout 0.1, batch_first, train mode) forward + backward
-- of out:sum() at batch 32, sequence 128, float32, next to PyTorch's same layer
-- (scripts/bench/transformer_torch.py) in the same run: rounds alternate between
-- the two (the machine is shared, so load changes hit both alike), each round
-- timing a few steps after a warm-up one; the medians over all timed steps and
-- their ratio are printed, and a "ROW" line for scripts/bench/run.
--
-- Run: build/moonlight scripts/bench/transformer.lua [--rounds 5] [--iters 3]
--        [--threads 2] [--torch_threads 1,2] [--python /usr/bin/python3] [--quick]
-- --threads is Moonlight's thread count; --torch_threads lists PyTorch's (default:
-- the same), each timed in every round, the ratio taken against PyTorch's best.
local ml = require "moonlight"
local nn = ml.nn

local clock = ml._sys and ml._sys.clock or os.clock
local o = {rounds = 5, iters = 3, threads = 2, python = "/usr/bin/python3"}
local i = 1
while arg and arg[i] do
  local k = arg[i]:match("^%-%-(.+)$")
  if k == "quick" then o.rounds, o.iters, i = 2, 1, i + 1
  elseif k and arg[i + 1] then
    o[k] = tonumber(arg[i + 1]) or arg[i + 1]
    i = i + 2
  else error("usage: transformer.lua [--rounds N] [--iters N] [--threads N] [--torch_threads 1,2] [--python PATH] [--quick]") end
end
ml.set_num_threads(o.threads)
local torch_threads = {}
for t in tostring(o.torch_threads or o.threads):gmatch("%d+") do torch_threads[#torch_threads + 1] = tonumber(t) end

ml.manual_seed(0)
local layer = nn.TransformerEncoderLayer(256, 4, {dim_feedforward = 2048, dropout = 0.1, batch_first = true})
layer:train()
local x = ml.randn({32, 128, 256}):requires_grad_(true)

local function step()
  layer:zero_grad()
  x.grad = nil
  layer(x):sum():backward()
end

local function median(xs)
  local s = {}
  for k, v in ipairs(xs) do s[k] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local mine, theirs = {}, {}
for _, t in ipairs(torch_threads) do theirs[t] = {} end
local torch_ok = true
for r = 1, o.rounds do
  step() -- warm-up (the allocator's cache, the first products)
  for _ = 1, o.iters do
    local t0 = clock()
    step()
    mine[#mine + 1] = clock() - t0
    collectgarbage("step", 0)
  end
  local line = ("round %d/%d: moonlight %.3f s"):format(r, o.rounds, mine[#mine])
  for _, th in ipairs(torch_ok and torch_threads or {}) do
    local cmd = ("%s scripts/bench/transformer_torch.py --threads %d --iters %d 2>&1"):format(o.python, th,
                o.iters)
    local p = io.popen(cmd)
    local got = 0
    for l in p:lines() do
      local v = l:match("^STEP (%S+)")
      if v then theirs[th][#theirs[th] + 1] = tonumber(v); got = got + 1 end
    end
    p:close()
    if got == 0 then
      torch_ok = false
      io.stderr:write("note: the PyTorch peer printed no timings (is " .. o.python .. " with torch there?)\n")
      break
    end
    line = line .. (", pytorch(%d) %.3f s"):format(th, theirs[th][#theirs[th]])
  end
  io.stderr:write(line .. "\n")
end

local m = median(mine)
print(("TransformerEncoderLayer fwd+bwd [32, 128, 256], 4 heads, ff 2048, dropout 0.1, train; moonlight %d threads")
      :format(o.threads))
print(("  moonlight          %.3f s/step (median of %d)"):format(m, #mine))
local best
for _, th in ipairs(torch_threads) do
  if #theirs[th] > 0 then
    local t = median(theirs[th])
    print(("  pytorch %d thread%s  %.3f s/step (median of %d)"):format(th, th == 1 and " " or "s", t, #theirs[th]))
    print(("ROW\ttransformer.layer_fwd_bwd.torch%d\t%.6g\ts"):format(th, t))
    if not best or t < best then best = t end
  end
end
if best then print(("  ratio              %.2fx (PyTorch at its best / Moonlight; > 1: Moonlight faster)"):format(best / m)) end
print(("ROW\ttransformer.layer_fwd_bwd\t%.6g\ts"):format(m))
