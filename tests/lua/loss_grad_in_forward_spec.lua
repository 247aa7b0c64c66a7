-- mse_loss and cross_entropy make the input's gradient in their forward pass when
-- the input requires grad (backward then only scales it by grad_out). Checked here
-- against the same losses written with generic ops (log_softmax, mul, sum; square,
-- mean) in float64, whose gradients come from their own backward rules: every CPU
-- kernel that makes the gradient (float32 with <= 16, 17-31 and more classes;
-- float64; class probabilities), grad_out other than 1, a loss used twice, a target
-- that requires grad, broadcasting, and the errors.
local ml = require "moonlight"
local F = ml.F

local close = require("loss_fixture_check").close

local function ids(n, c, ignore, every)
  local t = {}
  for i = 1, n do t[i] = (i * 7 + 3) % c end
  if ignore then for i = 1, n, every do t[i] = ignore end end
  return t
end

-- PyTorch's cross_entropy with class ids, from log_softmax: row r weighs logp[r][k]
-- by (1 - ls) w[t] [k == t] + ls / c w[k]; ignored rows by 0; "mean" divides by the
-- summed w[t] of the rows that count.
local function reference_ce(x, t, c, opts, grad_out)
  local n = #t
  local ls, ign = opts.label_smoothing or 0, opts.ignore_index or -100
  local w = opts.weight and opts.weight:double():totable() or nil
  local coef, norm = {}, 0
  for r = 1, n do
    coef[r] = {}
    local keep = t[r] ~= ign
    local wt = keep and (w and w[t[r] + 1] or 1) or 0
    if keep then norm = norm + wt end
    for k = 1, c do
      local wk = w and w[k] or 1
      coef[r][k] = keep and ((1 - ls) * wt * ((k - 1) == t[r] and 1 or 0) + ls / c * wk) or 0
    end
  end
  local xd = x:double():detach():requires_grad_(true)
  local rows = -(F.log_softmax(xd, 2) * ml.tensor(coef, {dtype = "float64"})):sum(2)
  local red = opts.reduction or "mean"
  local l = red == "none" and rows or red == "sum" and rows:sum() or rows:sum() / norm
  if grad_out then l:backward(grad_out:double()) else l:backward() end
  return l:detach(), xd.grad
end

local function ce(x, t, opts, grad_out)
  local xg = x:detach():requires_grad_(true)
  local l = F.cross_entropy(xg, ml.tensor(t, {dtype = "int64"}), opts)
  if grad_out then l:backward(grad_out) else l:backward() end
  return l:detach(), xg.grad
end

describe("losses that make the gradient in the forward pass", function()
  ml.manual_seed(11)
  for _, dt in ipairs({"float32", "float64"}) do
    for _, shape in ipairs({{37, 10}, {16, 16}, {33, 24}, {20, 40}, {9, 1000}}) do
      local n, c = shape[1], shape[2]
      local x = (ml.randn(shape) * 3):to(dt)
      local w = (ml.rand({c}) + 0.5):to(dt)
      local variants = {
        {name = "plain", opts = {}},
        {name = "weight, ignore_index", opts = {weight = w, ignore_index = 1}, ignore = 1},
        {name = "label smoothing", opts = {label_smoothing = 0.3}},
        {name = "label smoothing, weight, ignore_index", opts = {label_smoothing = 0.1, weight = w, ignore_index = 0}, ignore = 0},
      }
      for _, v in ipairs(variants) do
        for _, red in ipairs({"mean", "sum", "none"}) do
          it(("cross_entropy %s [%d, %d] %s, %s"):format(dt, n, c, red, v.name), function()
            local t = ids(n, c, v.ignore, 4)
            local opts = {reduction = red}
            for k, o in pairs(v.opts) do opts[k] = o end
            -- grad_out other than 1: the forward's gradient scaled in backward
            local g = red == "none" and ml.randn({n}):to(dt) or ml.tensor(-2.5):to(dt)
            local l, gx = ce(x, t, opts, g)
            local rl, rg = reference_ce(x, t, c, opts, g)
            local tol = dt == "float32" and 2e-6 or 1e-12
            close(l, rl, "loss", tol)
            close(gx, rg, "grad", tol)
            -- and a grad_out of 1 (nothing to scale) for the reductions
            if red ~= "none" then
              local l1, g1 = ce(x, t, opts)
              close(g1 * -2.5, gx, "grad, grad_out 1", dt == "float32" and 1e-6 or 1e-14)
              close(l1, l, "loss, grad_out 1", 0)
            end
          end)
        end
      end
    end
  end

  it("cross_entropy float32, every class count up to 17 (a kernel made for each)", function()
    for c = 1, 17 do
      local x = ml.randn({21, c}) * 3
      local w = ml.rand({c}) + 0.5
      local t = ids(21, c, c > 2 and 2 or nil, 5)
      local opts = {weight = w, ignore_index = c > 2 and 2 or -100}
      local l, gx = ce(x, t, opts, ml.tensor(1.5))
      local rl, rg = reference_ce(x, t, c, opts, ml.tensor(1.5))
      close(l, rl, "loss, c = " .. c, 2e-6)
      close(gx, rg, "grad, c = " .. c, 2e-6)
    end
  end)

  it("cross_entropy with class probabilities (float32 and float64)", function()
    for _, dt in ipairs({"float32", "float64"}) do
      local x = (ml.randn({12, 7}) * 2):to(dt)
      local p = ml.softmax(ml.randn({12, 7}), 2):to(dt)
      local xg = x:detach():requires_grad_(true)
      local l = F.cross_entropy(xg, p, {label_smoothing = 0.2})
      l:backward(ml.tensor(3.0):to(dt))
      local xd = x:double():detach():requires_grad_(true)
      local q = p:double() * 0.8 + 0.2 / 7
      local rl = -(F.log_softmax(xd, 2) * q):sum() / 12
      rl:backward(ml.tensor(3.0, {dtype = "float64"}))
      local tol = dt == "float32" and 2e-6 or 1e-12
      close(l, rl, "loss", tol)
      close(xg.grad, xd.grad, "grad", tol)
    end
  end)

  it("a loss used twice gets the summed grad_out; grads accumulate across losses", function()
    local x = ml.randn({20, 10}):requires_grad_(true)
    local t = ml.tensor(ids(20, 10), {dtype = "int64"})
    F.cross_entropy(x, t):backward()
    local g1 = x.grad:clone()
    local l = F.cross_entropy(x, t)
    ;(l + l):backward()
    close(x.grad, g1 * 3, "accumulated grad", 1e-6)
    local g3 = x.grad:clone()
    F.mse_loss(x, ml.zeros({20, 10})):backward()
    close(x.grad, g3 + x:detach() * (2 / 200), "mse added", 1e-6)
  end)

  it("backward through the same loss twice is still an error", function()
    local x = ml.randn({4, 3}):requires_grad_(true)
    local l = F.cross_entropy(x, ml.tensor({0, 1, 2, 0}, {dtype = "int64"}))
    l:backward()
    assert.has_error(function() l:backward() end)
  end)

  it("names the first bad class id when the input requires grad", function()
    for _, c in ipairs({10, 24, 40}) do
      local t = ids(40, c)
      t[20], t[35] = c + 2, -3
      local x = ml.randn({40, c}):requires_grad_(true)
      assert.has_error(function() F.cross_entropy(x, ml.tensor(t, {dtype = "int64"})) end,
        ("cross_entropy: target class id %d is out of range: expected 0 <= id < %d (the number "
         .. "of classes) or ignore_index (-100)"):format(c + 2, c))
      assert.is_nil(x.grad)
    end
  end)

  it("cross_entropy rows split across threads like one thread", function()
    local x = ml.randn({600, 300}) * 2
    local t = ids(600, 300, -100, 7)
    local threads = ml.get_num_threads()
    ml.set_num_threads(1)
    local l1, g1 = ce(x, t, {})
    ml.set_num_threads(2)
    local l2, g2 = ce(x, t, {})
    ml.set_num_threads(threads)
    close(l2, l1, "loss", 1e-12)
    close(g2, g1, "grad", 0)
  end)

  for _, dt in ipairs({"float32", "float64"}) do
    for _, red in ipairs({"mean", "sum", "none"}) do
      it(("mse_loss %s %s: input and target grads, grad_out other than 1"):format(dt, red), function()
        local tol = dt == "float32" and 1e-6 or 1e-13
        local x, y = ml.randn({30, 7}):to(dt), ml.randn({30, 7}):to(dt)
        local g = red == "none" and ml.randn({30, 7}):to(dt) or ml.tensor(0.75):to(dt)
        local xg, yg = x:detach():requires_grad_(true), y:detach():requires_grad_(true)
        local l = F.mse_loss(xg, yg, {reduction = red})
        l:backward(g)
        local xd, yd = x:double():requires_grad_(true), y:double():requires_grad_(true)
        local sq = ml.square(xd - yd)
        local rl = red == "none" and sq or red == "sum" and sq:sum() or sq:mean()
        rl:backward(g:double())
        close(l, rl, "loss", tol)
        close(xg.grad, xd.grad, "input grad", tol)
        close(yg.grad, yd.grad, "target grad", tol)
      end)
    end
  end

  it("mse_loss of an input broadcast against its target sums the gradient back", function()
    local x = ml.randn({8, 1}):requires_grad_(true)
    local y = ml.randn({8, 5})
    F.mse_loss(x, y):backward()
    local xd = x:double():detach():requires_grad_(true)
    ml.square(xd - y:double()):mean():backward()
    assert.are.same({8, 1}, x.grad:shape())
    close(x.grad, xd.grad, "grad", 1e-6)
  end)
end)
