-- Deterministic losses: every CPU loss kernel sums its per-element (per-row) losses
-- in blocks fixed by the sizes alone, each block into its own slot, the slots added
-- in block order (src/cpu/loss_cpu.h), and the mean's divisor in row order; the
-- gradients are elementwise. So values and gradients must be bit for bit the same
-- on 1, 2 (and 3) threads, at sizes that split into many blocks, for every loss
-- kind, reduction and kernel (the float32 cross_entropy fast paths, the reference,
-- the gradient made in the forward pass or by the backward kernel). The tests run
-- single-threaded (ctest), so this spec turns threads on.
local ml = require "moonlight"
local F = ml.F

-- the loss and the gradient of every input that requires grad, as plain tensors
local function run(threads, fn, inputs, grad_out)
  ml.set_num_threads(threads)
  for _, t in ipairs(inputs) do t.grad = nil end
  local l = fn()
  if l.requires_grad then
    if grad_out then l:backward(grad_out) else l:backward() end
  end
  local out = {loss = l:detach()}
  for i, t in ipairs(inputs) do out[i] = t.grad end
  return out
end

-- exactly equal: NaN where the other has NaN (poisson_nll's target gradient has
-- some), elsewhere a zero largest difference
local function same(a, b, what)
  assert.are.equal(a.dtype, b.dtype, what)
  local ka, kb = a:eq(a), b:eq(b) -- not NaN
  assert.are.equal(0, (ka:double() - kb:double()):abs():max():item(), what .. " (NaN positions)")
  local zero = ml.zeros(a:shape(), {dtype = "float64"})
  local da, db = ml.where(ka, a:double(), zero), ml.where(kb, b:double(), zero)
  assert.are.equal(0, (da - db):abs():max():item(), what)
end

-- on 1 thread, then on each of `teams` (default {2}: the tests share 2 cores, where
-- a third thread stalls every region for a time slice)
local function check(fn, inputs, grad_out, teams)
  local one = run(1, fn, inputs, grad_out)
  for _, nt in ipairs(teams or {2}) do
    local many = run(nt, fn, inputs, grad_out)
    same(one.loss, many.loss, ("loss, %d threads"):format(nt))
    for i = 1, #inputs do
      if inputs[i].requires_grad then
        same(one[i], many[i], ("gradient of input %d, %d threads"):format(i, nt))
      end
    end
  end
end

local function ids(n, c, ignore)
  local t = {}
  for i = 1, n do t[i] = (i * 7 + 3) % c end
  if ignore then for i = 1, n, 5 do t[i] = ignore end end
  return ml.tensor(t, {dtype = "int64"})
end

describe("losses on 1 and 2 threads", function()
  local saved
  before_each(function() saved = ml.get_num_threads() end)
  after_each(function() ml.set_num_threads(saved) end)
  ml.manual_seed(5)

  local function reductions(name, make)
    for _, red in ipairs({"mean", "sum", "none"}) do
      it(name .. ", " .. red, function() make(red) end)
    end
  end

  -- cross_entropy: [4096, 1000] (one pass per row), [20000, 10] (16-row blocks
  -- transposed), [20000, 20] (16-row blocks by gathers), float64, inner > 1
  for _, case in ipairs({
    {shape = {4096, 1000}, dt = "float32", teams = {2, 3}, variants = {{}}},
    {shape = {20000, 10}, dt = "float32"},
    {shape = {20000, 20}, dt = "float32"},
    {shape = {1024, 100}, dt = "float64"},
    {shape = {16, 10, 400}, dt = "float32"},
  }) do
    local n, c = case.shape[1], case.shape[2]
    local x0 = (ml.randn(case.shape) * 3):to(case.dt)
    local tshape = #case.shape == 3 and {n, case.shape[3]} or {n}
    local t = ids(n * (case.shape[3] or 1), c, 2):reshape(tshape)
    local w = (ml.rand({c}) + 0.5):to(case.dt)
    local label = ("cross_entropy %s [%s]"):format(case.dt, table.concat(case.shape, ", "))
    for _, opts in ipairs(case.variants or {{}, {weight = w, ignore_index = 2}, {label_smoothing = 0.1}}) do
      local what = opts.weight and " weight, ignore_index" or opts.label_smoothing and " label smoothing" or ""
      reductions(label .. what .. ", gradient in the forward pass", function(red)
        local x = x0:detach():requires_grad_(true)
        local o = {reduction = red}
        for k, v in pairs(opts) do o[k] = v end
        check(function() return F.cross_entropy(x, t, o) end, {x},
              red == "none" and ml.randn(tshape):to(case.dt) or nil, case.teams)
      end)
    end
    reductions(label .. ", forward only", function(red)
      check(function() return ml.no_grad(function() return F.cross_entropy(x0, t, {reduction = red, weight = w}) end) end, {})
    end)
  end

  reductions("cross_entropy float32 [20000, 10], backward kernel (target probabilities require grad)", function(red)
    local x = (ml.randn({20000, 10}) * 3):requires_grad_(true)
    local p = F.softmax(ml.randn({20000, 10}), 2):requires_grad_(true)
    check(function() return F.cross_entropy(x, p, {reduction = red}) end, {x, p},
          red == "none" and ml.randn({20000}) or nil)
  end)

  reductions("cross_entropy float32 [20000, 10], backward kernel (input without grad)", function(red)
    -- the saved logsumexps and the 16-row backward: through nll of log_softmax too
    local x = (ml.randn({20000, 10}) * 3):requires_grad_(true)
    local t = ids(20000, 10, 2)
    check(function() return F.nll_loss(F.log_softmax(x, 2), t, {reduction = red, ignore_index = 2}) end,
          {x}, red == "none" and ml.randn({20000}) or nil)
  end)

  for _, dt in ipairs({"float32", "float64"}) do
    reductions("nll_loss " .. dt .. " [1024, 100], weight", function(red)
      local x = ml.randn({1024, 100}):to(dt):requires_grad_(true)
      local w = (ml.rand({100}) + 0.5):to(dt)
      check(function() return F.nll_loss(x, ids(1024, 100, 2), {reduction = red, weight = w, ignore_index = 2}) end,
            {x}, red == "none" and ml.randn({1024}):to(dt) or nil)
    end)
  end

  -- elementwise: 100k elements (7 blocks) for each kind, input and target requiring
  -- grad; 1M (62 blocks) for mse
  local N = {100, 1000}
  for _, dt in ipairs({"float32", "float64"}) do
    local function pair(a, b) return a:to(dt):requires_grad_(true), b:to(dt):requires_grad_(true) end
    local cases = {
      {"mse_loss", function() return pair(ml.randn(N), ml.randn(N)) end, {}},
      {"l1_loss", function() return pair(ml.randn(N), ml.randn(N)) end, {}},
      {"smooth_l1_loss", function() return pair(ml.randn(N), ml.randn(N)) end, {beta = 0.5}},
      {"binary_cross_entropy", function() return pair(ml.rand(N) * 0.98 + 0.01, ml.rand(N)) end,
       {weight = ml.rand({1000}):to(dt)}},
      {"binary_cross_entropy_with_logits", function() return pair(ml.randn(N), ml.rand(N)) end,
       {pos_weight = (ml.rand({1000}) + 0.5):to(dt)}},
      {"kl_div", function() return pair(F.log_softmax(ml.randn(N), 2), F.softmax(ml.randn(N), 2)) end, {}},
      {"poisson_nll_loss", function() return pair(ml.randn(N), (ml.rand(N) * 5):long():float()) end, {full = true}},
    }
    for _, case in ipairs(cases) do
      reductions(case[1] .. " " .. dt .. " [100, 1000]", function(red)
        local x, t = case[2]()
        local o = {reduction = red}
        for k, v in pairs(case[3]) do o[k] = v end
        check(function() return F[case[1]](x, t, o) end, {x, t}, red == "none" and ml.randn(N):to(dt) or nil)
      end)
    end
    reductions("mse_loss " .. dt .. " [1000, 1000]", function(red)
      local x, t = ml.randn({1000, 1000}):to(dt):requires_grad_(true), ml.randn({1000, 1000}):to(dt)
      check(function() return F.mse_loss(x, t, {reduction = red}) end, {x},
            red == "none" and ml.randn({1000, 1000}):to(dt) or nil)
    end)
    reductions("mse_loss " .. dt .. " [1000, 1000], forward only", function(red)
      local x, t = ml.randn({1000, 1000}):to(dt), ml.randn({1000, 1000}):to(dt)
      check(function() return ml.no_grad(function() return F.mse_loss(x, t, {reduction = red}) end) end, {})
    end)
    reductions("gaussian_nll_loss " .. dt .. " [100, 1000]", function(red)
      local x, t = pair(ml.randn(N), ml.randn(N))
      local v = (ml.rand(N) + 0.1):to(dt):requires_grad_(true)
      check(function() return F.gaussian_nll_loss(x, t, v, {reduction = red, full = true}) end, {x, t, v},
            red == "none" and ml.randn(N):to(dt) or nil)
    end)
  end
end)
