-- Benchmark (not a test): one nn.TransformerEncoderLayer (d_model 256, 4 heads,
-- dim_feedforward 2048, dropout 0.1, batch_first, train mode) forward + backward
-- of out:sum() at batch 32, sequence 128, float32, next to PyTorch's same layer
-- (scripts/bench/transformer_torch.py) in the same run: rounds alternate between
-- the two (the machine is shared, so load changes hit both alike), each round
-- timing a few steps after a warm-up one; the medians over all timed steps and
-- their ratio are printed, and a "ROW" line for scripts/bench/run.
--
-- Run: build/moonlight scripts/bench/transformer.lua [--rounds 5] [--iters 3]
--        [--threads 2] [--python /usr/bin/python3] [--quick]
-- --threads sets both sides' thread count; PyTorch runs at that count.
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
  else error("usage: transformer.lua [--rounds N] [--iters N] [--threads N] [--python PATH] [--quick]") end
end
ml.set_num_threads(o.threads)

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
local torch_ok = true
for r = 1, o.rounds do
  step() -- warm-up (the allocator's cache, the first products)
  for _ = 1, o.iters do
    local t0 = clock()
    step()
    mine[#mine + 1] = clock() - t0
    collectgarbage("step", 0)
  end
  if torch_ok then
    local cmd = ("%s scripts/bench/transformer_torch.py --threads %d --iters %d 2>&1"):format(o.python,
                o.threads, o.iters)
    local p = io.popen(cmd)
    local got = 0
    for line in p:lines() do
      local s = line:match("^STEP (%S+)")
      if s then theirs[#theirs + 1] = tonumber(s); got = got + 1 end
    end
    p:close()
    if got == 0 then
      torch_ok = false
      io.stderr:write("note: the PyTorch peer printed no timings (is " .. o.python .. " with torch there?)\n")
    end
  end
  io.stderr:write(("round %d/%d: moonlight %.3f s, pytorch %s\n"):format(r, o.rounds, mine[#mine],
                  #theirs > 0 and ("%.3f s"):format(theirs[#theirs]) or "-"))
end

local m = median(mine)
print(("TransformerEncoderLayer fwd+bwd [32, 128, 256], 4 heads, ff 2048, %d threads"):format(o.threads))
print(("  moonlight  %.3f s/step (median of %d)"):format(m, #mine))
if #theirs > 0 then
  local t = median(theirs)
  print(("  pytorch    %.3f s/step (median of %d, torch %d threads)"):format(t, #theirs, o.threads))
  print(("  ratio      %.2fx (pytorch / moonlight; > 1: moonlight faster)"):format(t / m))
  print(("ROW\ttransformer.layer_fwd_bwd.torch%d\t%.6g\ts"):format(o.threads, t))
end
print(("ROW\ttransformer.layer_fwd_bwd\t%.6g\ts"):format(m))
