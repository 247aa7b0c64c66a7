-- ml.F's losses against PyTorch 1.13: values and gradients from
-- tests/fixtures/losses.lua (scripts/fixtures/gen_losses.py), then edge cases
-- and the error message of every kind of bad input.
local ml = require "moonlight"
local F = ml.F

local check = require "loss_fixture_check"
local assert_close = check.assert_close
local function check_case(c) return check.check_case(c, false) end

describe("losses match PyTorch", function()
  local cases = dofile("tests/fixtures/losses.lua")
  for _, c in ipairs(cases) do
    it(c.name, function() check_case(c) end)
  end
end)

describe("losses edge cases", function()
  it("reduces to 0-dim tensors and keeps the input's dtype", function()
    local x = ml.tensor({{1, 2}, {3, 4}}, {dtype = "float64"})
    local l = F.mse_loss(x, ml.zeros({2, 2}))
    assert.are.same({}, l:shape())
    assert.are.equal("float64", l.dtype)
    assert.are.equal(7.5, l:item())
  end)

  it("gives NaN for a mean over nothing, as torch", function()
    local x = ml.randn({3, 4})
    local all_ignored = ml.tensor({-100, -100, -100}, {dtype = "int64"})
    local v = F.cross_entropy(x, all_ignored):item()
    assert.is_true(v ~= v)
    assert.are.equal(0, F.nll_loss(x, all_ignored, {reduction = "sum"}):item())
    local e = F.mse_loss(ml.zeros({0, 3}), ml.zeros({0, 3})):item()
    assert.is_true(e ~= e)
  end)

  it("gives ignored targets a zero loss and a zero gradient", function()
    local x = ml.randn({3, 4}, {requires_grad = true})
    local t = ml.tensor({1, -100, 2}, {dtype = "int64"})
    local l = F.cross_entropy(x, t, {reduction = "none", label_smoothing = 0.2})
    assert.are.equal(0, l:totable()[2])
    l:sum():backward()
    assert.are.same({0, 0, 0, 0}, x.grad:totable()[2])
  end)

  it("leaves non-contiguous inputs correct", function()
    local x = ml.randn({4, 3})
    local t = ml.randn({3, 4})
    local a = F.mse_loss(x:t(), t):item()
    local b = F.mse_loss(x:t():contiguous(), t):item()
    assert.are.equal(a, b)
  end)

  it("propagates the gradient to target where torch does", function()
    local x = ml.randn({2, 3}, {requires_grad = true})
    local t = ml.randn({2, 3}, {requires_grad = true})
    F.smooth_l1_loss(x, t, {beta = 0.5, reduction = "sum"}):backward()
    assert_close(t.grad:totable(), (-x.grad):totable(), "target grad")
  end)
end)

describe("losses broadcast input and target where torch does", function()
  -- torch.nn.functional broadcasts mse/l1/smooth_l1 (with a warning), kl_div and
  -- poisson_nll_loss: the same numbers as the loss written with broadcasting ops
  local cases = {
    {"mse_loss", function(d) return d:square() end},
    {"l1_loss", function(d) return d:abs() end},
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local x = ml.randn({4, 3}, {dtype = "float64", requires_grad = true})
      local t = ml.randn({3}, {dtype = "float64", requires_grad = true})
      for _, red in ipairs({"mean", "sum"}) do
        x.grad, t.grad = nil, nil
        local l = F[c[1]](x, t, {reduction = red})
        l:backward()
        local gx, gt = x.grad, t.grad
        x.grad, t.grad = nil, nil
        local d = c[2](x - t)
        local ref = red == "mean" and d:mean() or d:sum()
        ref:backward()
        assert.is_true(math.abs(l:item() - ref:item()) < 1e-12)
        ml.testing.assert_close(gx, x.grad)
        ml.testing.assert_close(gt, t.grad)
      end
      assert.are.same({4, 3}, F[c[1]](x, t, {reduction = "none"}):shape())
      assert.are.same({4, 3}, F[c[1]](t, x, {reduction = "none"}):shape())
    end)
  end
end)

describe("losses reject bad input", function()
  local function fails(pattern, f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    assert.matches(pattern, err)
  end
  local x = ml.randn({4, 3})

  it("with mismatched shapes", function()
    fails("mse_loss: shapes %[4, 3%] and %[2%] cannot be broadcast", F.mse_loss, x, ml.randn({2}))
    fails("l1_loss: shapes %[4, 3%] and %[5, 1%] cannot be broadcast", F.l1_loss, x, ml.randn({5, 1}))
    fails("binary_cross_entropy: input %[4, 3%] and target %[4%]", F.binary_cross_entropy,
          x:sigmoid(), ml.rand({4}))
    fails("cross_entropy: expected target of shape %[4%] %(the input %[4, 3%] without its class dim%), got %[2%]",
          F.cross_entropy, x, ml.tensor({0, 1}, {dtype = "int64"}))
    fails("cross_entropy: expected target of shape %[4%] %(int64 class ids%) or %[4, 3%] %(float class probabilities%)",
          F.cross_entropy, x, ml.rand({4, 2}))
    fails("nll_loss: expected target of shape %[4, 5%] %(the input %[4, 3, 5%] without its class dim%), got %[4%]",
          F.nll_loss, ml.randn({4, 3, 5}), ml.tensor({0, 1, 2, 0}, {dtype = "int64"}))
    fails("cross_entropy: weight must be a 1%-D tensor of 3 elements %(one per class%), got %[4%]",
          F.cross_entropy, x, ml.tensor({0, 1, 2, 0}, {dtype = "int64"}), {weight = ml.ones({4})})
    fails("binary_cross_entropy_with_logits: pos_weight of shape %[4%] cannot be broadcast to the input's shape %[4, 3%]",
          F.binary_cross_entropy_with_logits, x, ml.rand({4, 3}), {pos_weight = ml.ones({4})})
    fails("gaussian_nll_loss: var of shape %[3%] is of incorrect size for input %[4, 3%]",
          F.gaussian_nll_loss, x, x, ml.ones({3}))
    fails("cross_entropy: input must be %[C%] or %[N, C, d1, ...%], got a 0%-dim tensor",
          F.cross_entropy, ml.tensor(1), ml.tensor(0, {dtype = "int64"}))
  end)

  it("with a class id outside [0, C) that is not ignore_index", function()
    fails("cross_entropy: target class id 3 is out of range: expected 0 <= id < 3",
          F.cross_entropy, x, ml.tensor({0, 3, 1, 2}, {dtype = "int64"}))
    fails("nll_loss: target class id %-1 is out of range: expected 0 <= id < 3 .*ignore_index %(5%)",
          F.nll_loss, x, ml.tensor({0, -1, 1, 2}, {dtype = "int64"}), {ignore_index = 5})
    fails("cross_entropy: target class id %-100 is out of range", F.cross_entropy, x,
          ml.tensor({0, -100, 1, 2}, {dtype = "int64"}), {ignore_index = 1})
  end)

  it("with probabilities outside [0, 1] for binary_cross_entropy", function()
    fails("binary_cross_entropy: all elements of input should be between 0 and 1",
          F.binary_cross_entropy, ml.tensor({0.5, 1.5}), ml.tensor({1, 0}))
    fails("binary_cross_entropy: all elements of input should be between 0 and 1",
          F.binary_cross_entropy, ml.tensor({-0.1, 0.5}), ml.tensor({1, 0}))
  end)

  it("with a negative var", function()
    fails("gaussian_nll_loss: var has negative entries", F.gaussian_nll_loss, x, x,
          ml.full({4, 3}, -1))
  end)

  it("with an unknown reduction or option", function()
    fails("mse_loss: unknown reduction 'avg' %(expected \"mean\", \"sum\" or \"none\"%)", F.mse_loss, x, x, {reduction = "avg"})
    fails("cross_entropy: unknown reduction 'batchmean'", F.cross_entropy, x,
          ml.tensor({0, 1, 2, 0}, {dtype = "int64"}), {reduction = "batchmean"})
    fails("kl_div: unknown reduction 'avg' %(expected \"mean\", \"sum\", \"batchmean\" or \"none\"%)",
          F.kl_div, x, x, {reduction = "avg"})
    fails("smooth_l1_loss: unknown option 'delta' %(expected one of: reduction, beta%)",
          F.smooth_l1_loss, x, x, {delta = 1})
    fails("mse_loss: unknown option 'size_average'", F.mse_loss, x, x, {size_average = true})
    fails("smooth_l1_loss: beta must be >= 0, got %-1", F.smooth_l1_loss, x, x, {beta = -1})
    fails("cross_entropy: label_smoothing must be between 0 and 1, got 1.5", F.cross_entropy, x,
          ml.tensor({0, 1, 2, 0}, {dtype = "int64"}), {label_smoothing = 1.5})
  end)

  it("with the wrong target dtype", function()
    fails("cross_entropy: a target of shape %[4%] holds class ids and must be int64, got float32",
          F.cross_entropy, x, ml.tensor({0, 1, 2, 0}))
    fails("nll_loss: target must hold int64 class ids, got float32", F.nll_loss, x, ml.tensor({0, 1, 2, 0}))
    fails("cross_entropy: target must hold int64 class ids, got uint8", F.cross_entropy, x,
          ml.tensor({0, 1, 2, 0}, {dtype = "uint8"}))
    fails("mse_loss: input must be a floating point tensor, got int64", F.mse_loss,
          ml.tensor({1, 2}, {dtype = "int64"}), ml.tensor({1, 2}))
    fails("cross_entropy: ignore_index is not supported with class%-probability", F.cross_entropy,
          x, x:softmax(2), {ignore_index = 1})
  end)
end)
