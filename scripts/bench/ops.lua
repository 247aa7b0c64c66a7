-- Op benchmark: moonlight's matmul and elementwise ops next to their peers.
--   build/moonlight scripts/bench/ops.lua [runs] [--rows]
-- --rows also prints each figure as a tab-separated line "ROW key value unit" (for
-- scripts/bench/run, which puts them next to PyTorch's from torch_ops.py).
-- matmul: GFLOP/s at the reference MLP's shapes (784-64-32-10, batch 128), as
-- ml.linear runs the forward and as the backward runs grad_input / grad_weight,
-- next to a direct OpenBLAS cblas_sgemm on the same shapes and transposes.
-- elementwise: GB/s moved by add/mul/relu/exp on 16M floats next to memcpy.
-- Each figure is the median of `runs` (default 7) timed runs. Not a test.
local ml = require "moonlight"
local bench = require "moonlight.bench" -- the peers (the CLI's, src/cli/bench.c)

local runs, emit_rows = 7, false
for _, a in ipairs(arg or {}) do
  if a == "--rows" then emit_rows = true else runs = tonumber(a) or runs end
end
local machine = {}
local now = bench.now

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

-- Seconds per call of ours() and peer(reps), timed alternately run by run (the
-- machine may be shared: alternating keeps both under the same load); medians.
local function compare(ours, peer, reps)
  ours()
  peer(1)
  local a, b = {}, {}
  for r = 1, runs do
    local t0 = now()
    for _ = 1, reps do ours() end
    a[r] = (now() - t0) / reps
    b[r] = peer(reps) / reps
  end
  return median(a), median(b)
end

local function sgemm_peer(m, n, k, ta, tb)
  return function(reps) return bench.sgemm(m, n, k, ta, tb, reps) end
end

local rows = {}
local function row(name, ours, peer, unit, key, peer_name)
  if key then
    local mu = key:match("^matmul") and "GFLOP/s" or "GB/s"
    machine[#machine + 1] = string.format("ROW\t%s\t%.6g\t%s", key, ours, mu)
    machine[#machine + 1] = string.format("ROW\t%s.%s\t%.6g\t%s", key, peer_name, peer, mu)
  end
  rows[#rows + 1] = string.format("%-44s %10.2f %10.2f %8.1f%%", name, ours, peer, 100 * ours / peer)
  if unit then rows[#rows] = rows[#rows] .. "  " .. unit end
end

ml.manual_seed(0)
ml.no_grad(function()
  print(string.format("moonlight %s, median of %d runs", ml._VERSION, runs))
  print(string.format("%-44s %10s %10s %9s", "matmul (GFLOP/s)", "moonlight", "openblas", "ratio"))
  local B = 128
  -- forward as nn.Linear: x [B, in] @ W[out, in]^T (+ bias)
  for _, s in ipairs({{784, 64}, {64, 32}, {32, 10}}) do
    local fin, fout = s[1], s[2]
    local x, w, b = ml.randn({B, fin}), ml.randn({fout, fin}), ml.randn({fout})
    local flops = 2 * B * fin * fout
    local reps = math.max(1, math.floor(2e8 / flops))
    local peer = sgemm_peer(B, fout, fin, false, true)
    local ours, theirs = compare(function() return ml.linear(x, w, b) end, peer, reps)
    row(string.format("linear fwd [%d,%d]@[%d,%d]^T + b", B, fin, fout, fin), flops / ours / 1e9,
        flops / theirs / 1e9, nil, string.format("matmul.linear_bias.%dx%d", fin, fout), "openblas")
    ours, theirs = compare(function() return ml.linear(x, w) end, peer, reps)
    row(string.format("linear fwd [%d,%d]@[%d,%d]^T", B, fin, fout, fin), flops / ours / 1e9,
        flops / theirs / 1e9, nil, string.format("matmul.linear.%dx%d", fin, fout), "openblas")
  end
  -- backward of the first layer: grad_input = g @ W, grad_weight = g^T @ x
  local g, w, x = ml.randn({B, 64}), ml.randn({64, 784}), ml.randn({B, 784})
  local flops = 2 * B * 64 * 784
  local reps = math.max(1, math.floor(2e8 / flops))
  local ours, theirs = compare(function() return g:matmul(w) end, sgemm_peer(B, 784, 64, false, false), reps)
  row("grad_input  [128,64]@[64,784]", flops / ours / 1e9, flops / theirs / 1e9, nil,
      "matmul.grad_input.784x64", "openblas")
  local gt = g:t()
  ours, theirs = compare(function() return gt:matmul(x) end, sgemm_peer(64, 784, B, true, false), reps)
  row("grad_weight [64,128]@[128,784] (g:t() view)", flops / ours / 1e9, flops / theirs / 1e9, nil,
      "matmul.grad_weight.784x64", "openblas")
  for _, r in ipairs(rows) do print(r) end
  rows = {}

  print()
  print(string.format("%-44s %10s %10s %9s", "elementwise, 16M float32 (GB/s)", "moonlight", "memcpy", "ratio"))
  local n = 16 * 1024 * 1024
  local bytes = 4 * n
  local a, c = ml.randn({n}), ml.randn({n})
  local memcpy_peer = function(reps) return bench.memcpy(bytes, reps) end
  local cases = {
    {"add  (a + b)", 3, function() return a + c end, "add"},
    {"mul  (a * b)", 3, function() return a * c end, "mul"},
    {"relu", 2, function() return a:relu() end, "relu"},
    {"exp", 2, function() return a:exp() end, "exp"},
  }
  for _, cs in ipairs(cases) do
    local t, tm = compare(cs[3], memcpy_peer, 3)
    row(cs[1], cs[2] * bytes / t / 1e9, 2 * bytes / tm / 1e9, -- memcpy reads and writes
        nil, "elementwise." .. cs[4], "memcpy")
  end
  for _, r in ipairs(rows) do print(r) end
end)
if emit_rows then for _, r in ipairs(machine) do print(r) end end
