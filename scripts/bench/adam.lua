-- Benchmark (not a test): one Adam step (lr 1e-3, PyTorch's defaults) over the
-- reference MLP's parameters (784-64-32-10: 52,650 floats in 6 tensors), gradients
-- set, as opt:step() runs inside the training loop. Also zero_grad (set_to_none).
--   build/moonlight scripts/bench/adam.lua [--rows] [--quick]
-- --rows also prints "ROW key seconds s" lines (for scripts/bench/run; the PyTorch
-- peer is in torch_ops.py). Median of 7 runs (3 with --quick) of `iters` steps each.
local ml = require "moonlight"
local clock = ml._sys.clock

local emit_rows, quick = false, false
for _, a in ipairs(arg or {}) do
  if a == "--rows" then emit_rows = true elseif a == "--quick" then quick = true end
end

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

ml.manual_seed(0)
local params = {}
for _, s in ipairs({{64, 784}, {64}, {32, 64}, {32}, {10, 32}, {10}}) do
  local p = ml.randn(s, {requires_grad = true})
  p.grad = ml.randn(s) * 1e-2
  params[#params + 1] = p
end
local opt = ml.optim.Adam(params, {lr = 1e-3})
local iters, runs = quick and 200 or 1000, quick and 3 or 7
opt:step() -- the state is created on the first step
local times = {}
for r = 1, runs do
  local t0 = clock()
  for _ = 1, iters do opt:step() end
  times[r] = (clock() - t0) / iters
end
local step = median(times)
print(string.format("Adam step over 52,650 parameters (6 tensors): %.2f us (median of %d x %d steps)",
                    step * 1e6, runs, iters))
if emit_rows then print(string.format("ROW\tadam.step\t%.6g\ts", step)) end
