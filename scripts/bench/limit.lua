-- The sgemm-bound limit of the reference experiment's epoch: the exact matmul FLOPs
-- of one epoch of the 784-64-32-10 MLP (60,000 training samples in batches of 128,
-- forward + backward, the first layer without grad_input; 10,000 validation samples,
-- forward only) and the time those sgemm calls take on this machine, each timed with
-- a direct OpenBLAS cblas_sgemm at its own shape and transposes (as the engine calls
-- them: forward x @ W^T, grad_input g @ W, grad_weight g^T @ x). Bias, activations,
-- softmax, loss and Adam are not counted: the limit is what the matmuls alone cost.
--   build/moonlight scripts/bench/limit.lua [--rows] [--quick]
local ml = require "moonlight"
local bench = require "moonlight.bench" -- the CLI's peers (src/cli/bench.c)

local emit_rows, quick = false, false
for _, a in ipairs(arg or {}) do
  if a == "--rows" then emit_rows = true elseif a == "--quick" then quick = true end
end
local runs = quick and 3 or 7

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

local layers = {{784, 64}, {64, 32}, {32, 10}}
-- {m, n, k, trans_a, trans_b} of every sgemm in one step with batch b
local function gemms(b, backward)
  local list = {}
  for i, l in ipairs(layers) do
    local fin, fout = l[1], l[2]
    list[#list + 1] = {b, fout, fin, false, true}             -- y = x @ W^T
    if backward then
      list[#list + 1] = {fout, fin, b, true, false}           -- dW = g^T @ x
      if i > 1 then list[#list + 1] = {b, fin, fout, false, false} end  -- dx = g @ W
    end
  end
  return list
end

local cache = {}
local function seconds(g)
  local key = table.concat({g[1], g[2], g[3], tostring(g[4]), tostring(g[5])}, ",")
  if cache[key] then return cache[key] end
  local flops = 2 * g[1] * g[2] * g[3]
  local reps = math.max(1, math.floor((quick and 2e7 or 1e8) / flops))
  bench.sgemm(g[1], g[2], g[3], g[4], g[5], reps) -- warm up
  local t = {}
  for r = 1, runs do t[r] = bench.sgemm(g[1], g[2], g[3], g[4], g[5], reps) / reps end
  cache[key] = median(t)
  return cache[key]
end

-- batches of an epoch: {batch size, count}
local function batches(n, bs)
  local full, rest = n // bs, n % bs
  local list = {{bs, full}}
  if rest > 0 then list[2] = {rest, 1} end
  return list
end

local function cost(n, backward)
  local flops, secs = 0, 0
  for _, bc in ipairs(batches(n, 128)) do
    for _, g in ipairs(gemms(bc[1], backward)) do
      flops = flops + bc[2] * 2 * g[1] * g[2] * g[3]
      secs = secs + bc[2] * seconds(g)
    end
  end
  return flops, secs
end

local train_flops, train_s = cost(60000, true)
local val_flops, val_s = cost(10000, false)
print(string.format("epoch matmul FLOPs: train %d (469 steps, fwd+bwd), validation %d (79 batches), total %.4f GFLOP",
                    train_flops, val_flops, (train_flops + val_flops) / 1e9))
print(string.format("sgemm-bound epoch: train %.1f ms + validation %.1f ms = %.1f ms (%.1f GFLOP/s)",
                    train_s * 1e3, val_s * 1e3, (train_s + val_s) * 1e3,
                    (train_flops + val_flops) / (train_s + val_s) / 1e9))
if emit_rows then
  print(string.format("ROW\tlimit.train_flops\t%d\tFLOP", train_flops))
  print(string.format("ROW\tlimit.val_flops\t%d\tFLOP", val_flops))
  print(string.format("ROW\tlimit.train_s\t%.6g\ts", train_s))
  print(string.format("ROW\tlimit.val_s\t%.6g\ts", val_s))
end
