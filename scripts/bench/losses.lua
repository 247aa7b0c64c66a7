-- Benchmark (not a test): F.cross_entropy and F.mse_loss, forward + backward, next
-- to three elementwise ops on the same input (the target: a fused loss costs no
-- more than three elementwise ops), and the reference experiment's own loss written
-- with tensor ops (mean(square(a - b))). Run: build/moonlight scripts/bench/losses.lua
-- [--rows] [--quick]: --rows also prints "ROW key seconds s" lines (for
-- scripts/bench/run, next to torch_ops.py's), --quick runs a tenth of the iterations.
-- Times are wall-clock per iteration (ml._sys.clock when the build has it, else
-- os.clock: CPU time, honest only with OMP_NUM_THREADS=1): the median of 7 rounds,
-- the six loops interleaved within each round.
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

local ROUNDS = 7

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

-- Seconds per call of each fn in fns: ROUNDS rounds, each timing every fn for
-- iters / ROUNDS calls in turn (the machine may be shared: interleaving keeps all of
-- them under the same load), then each fn's median round.
local function bench_all(iters, fns)
  local per = math.max(1, iters // ROUNDS)
  local times = {}
  for k, fn in pairs(fns) do fn(); times[k] = {} end -- warm up
  collectgarbage()
  local keys = {}
  for k in pairs(fns) do keys[#keys + 1] = k end
  table.sort(keys)
  for r = 1, ROUNDS do
    for _, k in ipairs(keys) do
      local fn = fns[k]
      local t0 = clock()
      for _ = 1, per do fn() end
      times[k][r] = (clock() - t0) / per
    end
  end
  local out = {}
  for k, ts in pairs(times) do out[k] = median(ts) end
  return out
end

local function ms(s) return string.format("%9.4f ms", s * 1e3) end

for _, shape in ipairs({{128, 10}, {4096, 1000}}) do
  local n, c = shape[1], shape[2]
  local iters = n * c > 100000 and 35 or 7000
  if quick then iters = iters // 10 end
  ml.manual_seed(0)
  local x = ml.randn(shape, {requires_grad = true})
  local target_mse = ml.randn(shape)
  local labels = {}
  for i = 1, n do labels[i] = (i * 7) % c end
  local target_ce = ml.tensor(labels, {dtype = "int64"})
  local xd = x:detach()

  local t = bench_all(iters, {
    ce = function()
      x.grad = nil
      F.cross_entropy(x, target_ce):backward()
    end,
    mse = function()
      x.grad = nil
      F.mse_loss(x, target_mse):backward()
    end,
    ce_f = function() ml.no_grad(function() return F.cross_entropy(xd, target_ce) end) end,
    mse_f = function() ml.no_grad(function() return F.mse_loss(xd, target_mse) end) end,
    custom = function()
      x.grad = nil
      ml.mean(ml.square(x - target_mse)):backward()
    end,
    ew = function()
      local a = xd:exp()
      local b = xd * 2
      local d = xd + xd
      return a, b, d
    end,
  })
  local t_ce, t_mse, t_ce_f, t_mse_f, t_custom, t_ew = t.ce, t.mse, t.ce_f, t.mse_f, t.custom, t.ew
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
