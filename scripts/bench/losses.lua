-- Benchmark (not a test): F.cross_entropy and F.mse_loss, forward + backward, next
-- to three elementwise ops on the same input (the target: a fused loss costs no
-- more than three elementwise ops). Run: build/moonlight scripts/bench/losses.lua
-- Times are wall-clock per iteration (ml._sys.clock when the build has it, else
-- os.clock: CPU time, honest only with OMP_NUM_THREADS=1).
local ml = require "moonlight"
local F = ml.F

local clock = ml._sys and ml._sys.clock or os.clock
if clock == os.clock then
  io.stderr:write("note: no wall clock in this build, timing with os.clock (CPU time)\n")
end

local function bench(iters, fn)
  fn() -- warm up
  collectgarbage()
  local t0 = clock()
  for _ = 1, iters do fn() end
  return (clock() - t0) / iters
end

local function ms(s) return string.format("%9.4f ms", s * 1e3) end

for _, shape in ipairs({{128, 10}, {4096, 1000}}) do
  local n, c = shape[1], shape[2]
  local iters = n * c > 100000 and 30 or 3000
  ml.manual_seed(0)
  local x = ml.randn(shape, {requires_grad = true})
  local target_mse = ml.randn(shape)
  local labels = {}
  for i = 1, n do labels[i] = (i * 7) % c end
  local target_ce = ml.tensor(labels, {dtype = "int64"})
  local xd = x:detach()

  local t_ce = bench(iters, function()
    x.grad = nil
    F.cross_entropy(x, target_ce):backward()
  end)
  local t_mse = bench(iters, function()
    x.grad = nil
    F.mse_loss(x, target_mse):backward()
  end)
  local t_ce_f = bench(iters, function() ml.no_grad(function() return F.cross_entropy(xd, target_ce) end) end)
  local t_mse_f = bench(iters, function() ml.no_grad(function() return F.mse_loss(xd, target_mse) end) end)
  local t_ew = bench(iters, function()
    local a = xd:exp()
    local b = xd * 2
    local d = xd + xd
    return a, b, d
  end)
  print(string.format("[%d, %d]  (%d iterations)", n, c, iters))
  print("  cross_entropy forward          " .. ms(t_ce_f))
  print("  cross_entropy forward+backward " .. ms(t_ce))
  print("  mse_loss      forward          " .. ms(t_mse_f))
  print("  mse_loss      forward+backward " .. ms(t_mse))
  print("  3 elementwise ops (exp, *, +)  " .. ms(t_ew))
  print(string.format("  ratio to 3 ops: cross_entropy %.2f, mse_loss %.2f", t_ce / t_ew, t_mse / t_ew))
end
