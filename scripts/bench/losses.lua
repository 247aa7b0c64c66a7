-- Benchmark (not a test): F.cross_entropy and F.mse_loss, forward + backward, next
-- to three elementwise ops on the same input (the target: a fused loss costs no
-- more than three elementwise ops), and the reference experiment's own loss written
-- with tensor ops (mean(square(a - b))). Run: build/moonlight scripts/bench/losses.lua
-- [--rows] [--quick]: --rows also prints "ROW key seconds s" lines (for
-- scripts/bench/run, next to torch_ops.py's), --quick runs a tenth of the iterations.
-- Times are wall-clock per iteration (ml._sys.clock when the build has it, else
-- os.clock: CPU time, honest only with OMP_NUM_THREADS=1).
local ml = require "moonlight"
local F = ml.F

local clock = ml._sys and ml._sys.clock or os.clock
if clock == os.clock then
  io.stderr:write("note: no wall clock in this build, timing with os.clock (CPU time)\n")
end

local emit_rows, quick = false, false
for _, a in ipairs(arg or {}) do
  if a == "--rows" then emit_rows = true elseif a == "--quick" then quick = true end
end
local machine = {}
local function out(key, s) machine[#machine + 1] = string.format("ROW\tloss.%s\t%.6g\ts", key, s) end

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
  if quick then iters = iters // 10 end
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
  local t_custom = bench(iters, function()
    x.grad = nil
    ml.mean(ml.square(x - target_mse)):backward()
  end)
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
  print("  mean(square(a - b)) fwd+bwd    " .. ms(t_custom))
  print("  3 elementwise ops (exp, *, +)  " .. ms(t_ew))
  local sh = n .. "x" .. c
  out("cross_entropy.fwd." .. sh, t_ce_f); out("cross_entropy.fwdbwd." .. sh, t_ce)
  out("mse_loss.fwd." .. sh, t_mse_f); out("mse_loss.fwdbwd." .. sh, t_mse)
  out("custom_mse.fwdbwd." .. sh, t_custom); out("three_ops." .. sh, t_ew)
  print(string.format("  ratio to 3 ops: cross_entropy %.2f, mse_loss %.2f", t_ce / t_ew, t_mse / t_ew))
end
if emit_rows then for _, r in ipairs(machine) do print(r) end end
