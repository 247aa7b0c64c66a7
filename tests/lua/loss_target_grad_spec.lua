-- The gradient of ml.F's losses with respect to their target, against PyTorch 1.13:
-- values and the gradients of input and target from tests/fixtures/loss_target_grad.lua
-- (scripts/fixtures/gen_loss_target_grad.py), then gradchecks in float64 w.r.t. the
-- target, and the fast paths (the input's gradient made in the forward pass) staying
-- right next to a target that requires grad.
local ml = require "moonlight"
local F = ml.F
local T = ml.testing

local check = require "loss_fixture_check"
local function check_case(c) return check.check_case(c, true) end

describe("target gradients match PyTorch", function()
  local cases = dofile("tests/fixtures/loss_target_grad.lua")
  local seen = {}
  for _, c in ipairs(cases) do
    seen[c.fn] = true
    it(c.name, function() check_case(c) end)
  end
  it("cover every loss torch differentiates w.r.t. target", function()
    for _, fn in ipairs({"kl_div", "poisson_nll_loss", "cross_entropy", "binary_cross_entropy",
                         "binary_cross_entropy_with_logits", "mse_loss", "l1_loss",
                         "smooth_l1_loss", "gaussian_nll_loss"}) do
      assert.is_true(seen[fn], fn)
    end
  end)
end)

local function f64(shape, lo, hi)
  return (ml.rand(shape, {dtype = "float64"}) * (hi - lo) + lo):detach()
end

local function leaf(t) t.requires_grad = true; return t end

describe("target gradients pass gradcheck (float64)", function()
  local x, p, lp, logits
  before_each(function()
    ml.manual_seed(7)
    x = f64({3, 4}, -2, -0.2)          -- log-probabilities
    p = leaf(f64({3, 4}, 0.05, 1))      -- probabilities, away from 0
    lp = leaf(f64({3, 4}, -3, 0))
    logits = f64({3, 4}, -2, 2)
  end)

  it("kl_div", function()
    for _, r in ipairs({"mean", "batchmean", "sum", "none"}) do
      assert.is_true(T.gradcheck(function(t) return F.kl_div(x, t, {reduction = r}) end, {p}))
      assert.is_true(T.gradcheck(function(t)
        return F.kl_div(x, t, {reduction = r, log_target = true})
      end, {lp}))
    end
    -- both at once, with a target broadcast against the input
    local xi = leaf(x:clone():detach())
    local pb = leaf(f64({4}, 0.05, 1))
    assert.is_true(T.gradcheck(function(a, t) return F.kl_div(a, t, {reduction = "sum"}) end,
                               {xi, pb}))
  end)

  it("poisson_nll_loss", function()
    -- counts away from 1, where the Stirling term switches on
    local t = leaf(ml.tensor({{0.3, 2.5, 4.0, 0.7}, {1.6, 3.2, 0.1, 5.5}, {2.2, 0.5, 1.3, 7.0}},
                             {dtype = "float64"}))
    local xp = f64({3, 4}, 0.1, 2)
    for _, r in ipairs({"mean", "sum", "none"}) do
      for _, full in ipairs({false, true}) do
        assert.is_true(T.gradcheck(function(tt)
          return F.poisson_nll_loss(logits, tt, {reduction = r, full = full})
        end, {t}))
        assert.is_true(T.gradcheck(function(tt)
          return F.poisson_nll_loss(xp, tt, {reduction = r, full = full, log_input = false})
        end, {t}))
      end
    end
    local xi = leaf(xp:clone():detach())
    assert.is_true(T.gradcheck(function(a, tt)
      return F.poisson_nll_loss(a, tt, {full = true, log_input = false, eps = 1e-2})
    end, {xi, t}))
  end)

  it("cross_entropy with class probabilities", function()
    local w = f64({4}, 0.2, 1.2)
    for _, r in ipairs({"mean", "sum", "none"}) do
      for _, o in ipairs({{}, {weight = w}, {label_smoothing = 0.3},
                          {weight = w, label_smoothing = 0.1}}) do
        o.reduction = r
        assert.is_true(T.gradcheck(function(t) return F.cross_entropy(logits, t, o) end, {p}))
      end
    end
    local l3 = leaf(f64({2, 3, 2}, -2, 2))
    local p3 = leaf(f64({2, 3, 2}, 0, 1))
    assert.is_true(T.gradcheck(function(a, t)
      return F.cross_entropy(a, t, {reduction = "none", label_smoothing = 0.2})
    end, {l3, p3}))
  end)

  it("binary_cross_entropy and binary_cross_entropy_with_logits", function()
    local xs = f64({3, 4}, 0.1, 0.9)
    local w = f64({4}, 0.2, 1.2)
    for _, r in ipairs({"mean", "sum", "none"}) do
      assert.is_true(T.gradcheck(function(t)
        return F.binary_cross_entropy(xs, t, {reduction = r, weight = w})
      end, {p}))
      assert.is_true(T.gradcheck(function(t)
        return F.binary_cross_entropy_with_logits(logits, t, {reduction = r})
      end, {p}))
      assert.is_true(T.gradcheck(function(t)
        return F.binary_cross_entropy_with_logits(logits, t, {reduction = r, weight = w,
                                                               pos_weight = w * 2})
      end, {p}))
    end
  end)
end)

describe("target gradients and the fast paths", function()
  it("cross_entropy with probabilities gives the same input gradient either way", function()
    ml.manual_seed(3)
    local logits = ml.randn({8, 5})
    local probs = ml.randn({8, 5}):softmax(2)
    local a = leaf(logits:clone():detach())
    F.cross_entropy(a, probs, {label_smoothing = 0.1}):backward()
    local b = leaf(logits:clone():detach())
    local t = leaf(probs:clone():detach())
    F.cross_entropy(b, t, {label_smoothing = 0.1}):backward()
    T.assert_close(b.grad, a.grad, {rtol = 1e-6, atol = 1e-7})
    assert.are.same({8, 5}, t.grad:shape())
  end)

  it("mse_loss's target gradient is minus the input's (the cached gradient)", function()
    ml.manual_seed(4)
    local x = leaf(ml.randn({6, 3}))
    local t = leaf(ml.randn({6, 3}))
    F.mse_loss(x, t):backward()
    T.assert_close(t.grad, -x.grad, {rtol = 0, atol = 0})
  end)

  it("a target gradient in float64 for a float32 input, summed to a broadcast target", function()
    local x = ml.randn({4, 3}):log_softmax(2)
    local t = ml.tensor({0.2, 0.3, 0.5}, {dtype = "float64", requires_grad = true})
    F.kl_div(x, t, {reduction = "sum"}):backward()
    assert.are.equal("float64", t.grad.dtype)
    assert.are.same({3}, t.grad:shape())
    -- sum over the 4 rows of log(t) + 1 - x
    local want = ((t:detach():log() + 1):float() * 4 - x:sum(1)):totable()
    local got = t.grad:float():totable()
    for i = 1, 3 do assert.is_true(math.abs(got[i] - want[i]) < 1e-5) end
  end)

  it("no target gradient with grad mode off or a detached target", function()
    local x = leaf(ml.randn({4, 3}))
    local t = leaf(ml.rand({4, 3}))
    ml.no_grad(function()
      local l = F.kl_div(x, t)
      assert.is_false(l.requires_grad)
    end)
    F.poisson_nll_loss(x, t:detach()):backward()
    assert.is_nil(t.grad)
    assert.is_not_nil(x.grad)
  end)
end)
