-- Custom losses written in Lua from tensor ops train a model through autograd just
-- like the built-in ones: the tutorial's MSE, ((pred - target):square()):mean(),
-- against F.mse_loss step by step, and finite-difference checks of the gradients of
-- custom and built-in losses (float64).
local ml = require "moonlight"
local F = ml.F

local function flatten(v, out)
  out = out or {}
  if type(v) == "table" then for _, x in ipairs(v) do flatten(x, out) end
  else out[#out + 1] = v end
  return out
end

local function assert_close(a, e, rtol, atol, what)
  a, e = flatten(a), flatten(e)
  assert(#a == #e, what .. ": sizes differ")
  for i = 1, #e do
    assert(math.abs(a[i] - e[i]) <= atol + rtol * math.abs(e[i]),
           ("%s: element %d is %.12g, expected %.12g"):format(what, i, a[i], e[i]))
  end
end

-- Central differences of f (a function of the tensors in inputs giving a 0-dim
-- tensor) against the gradients backward() leaves on them.
local function gradcheck(f, inputs, h, rtol, atol)
  h, rtol, atol = h or 1e-6, rtol or 1e-5, atol or 1e-7
  local leaves = {}
  for i, t in ipairs(inputs) do leaves[i] = t:detach():requires_grad_(true) end
  f(table.unpack(leaves)):backward()
  for i, t in ipairs(inputs) do
    local shape, flat = t:shape(), flatten(t:totable())
    local function with(k, v)
      local c = {table.unpack(flat)}
      c[k] = v
      local args = {table.unpack(inputs)}
      args[i] = ml.tensor(c, {dtype = t.dtype}):reshape(shape)
      return ml.no_grad(function() return f(table.unpack(args)):item() end)
    end
    local numeric = {}
    for k = 1, #flat do
      numeric[k] = (with(k, flat[k] + h) - with(k, flat[k] - h)) / (2 * h)
    end
    assert.is_not_nil(leaves[i].grad, "input " .. i .. " got no gradient")
    assert_close(leaves[i].grad:totable(), numeric, rtol, atol, "gradient of input " .. i)
  end
end

local function mse_custom(pred, target) return ((pred - target):square()):mean() end
local function abs_mean_custom(pred, target) return (target - pred):mean():abs() end

-- a 6-5-4 MLP with a softmax output, as the tutorial's model
local function forward(p, x)
  local h = (x:matmul(p[1]:t()) + p[2]):relu()
  return F.softmax(h:matmul(p[3]:t()) + p[4], -1)
end

local function init(dtype)
  ml.manual_seed(7)
  return {ml.randn({5, 6}, {dtype = dtype}) * 0.5, ml.randn({5}, {dtype = dtype}) * 0.1,
          ml.randn({4, 5}, {dtype = dtype}) * 0.5, ml.randn({4}, {dtype = dtype}) * 0.1}
end

local function data(dtype)
  ml.manual_seed(11)
  local x = ml.randn({8, 6}, {dtype = dtype})
  local labels = {}
  for i = 1, 8 do labels[i] = (i * 3) % 4 end
  local rows = {}
  for i = 1, 8 do
    rows[i] = {0, 0, 0, 0}
    rows[i][labels[i] + 1] = 1
  end
  return x, ml.tensor(rows, {dtype = dtype})
end

describe("a custom loss written in Lua", function()
  it("trains exactly like F.mse_loss", function()
    local x, y = data("float32")
    local pa, pb = init("float32"), init("float32")
    for _, t in ipairs(pa) do t:requires_grad_(true) end
    for _, t in ipairs(pb) do t:requires_grad_(true) end
    local first, last
    for step = 1, 30 do
      local la = mse_custom(forward(pa, x), y)
      local lb = F.mse_loss(forward(pb, x), y)
      assert.are.same({}, la:shape())
      assert_close(la:item(), lb:item(), 1e-5, 1e-7, "loss at step " .. step)
      la:backward()
      lb:backward()
      for i = 1, 4 do
        assert_close(pa[i].grad:totable(), pb[i].grad:totable(), 1e-4, 1e-7,
                     ("step %d, grad of param %d"):format(step, i))
        pa[i] = (pa[i] - pa[i].grad * 0.5):detach():requires_grad_(true)
        pb[i] = (pb[i] - pb[i].grad * 0.5):detach():requires_grad_(true)
      end
      first = first or la:item()
      last = la:item()
    end
    assert.is_true(last < first * 0.9, ("loss went from %g to %g"):format(first, last))
  end)

  it("has the gradient finite differences give (float64)", function()
    local x, y = data("float64")
    local p = init("float64")
    gradcheck(function(w1, b1, w2, b2) return mse_custom(forward({w1, b1, w2, b2}, x), y) end, p)
    gradcheck(function(w1, b1, w2, b2) return abs_mean_custom(forward({w1, b1, w2, b2}, x), y) end, p)
    gradcheck(function(w1, b1, w2, b2) return F.mse_loss(forward({w1, b1, w2, b2}, x), y) end, p)
  end)
end)

describe("built-in losses pass a finite-difference check (float64)", function()
  local function r(shape) return ml.randn(shape, {dtype = "float64"}) end
  local function u(shape, lo, hi) return ml.rand(shape, {dtype = "float64"}) * (hi - lo) + lo end
  local ids = ml.tensor({{0, 2, 1}, {3, -100, 0}}, {dtype = "int64"})
  local ids1 = ml.tensor({0, 2, 3}, {dtype = "int64"})
  local w = u({4}, 0.5, 1.5)
  local cases = {
    {"mse_loss", function(a, b) return F.mse_loss(a, b) end, {r({3, 4}), r({3, 4})}},
    {"l1_loss", function(a) return F.l1_loss(a, ml.zeros({3, 4}, {dtype = "float64"}) + 0.05, {reduction = "sum"}) end, {r({3, 4})}},
    {"smooth_l1_loss", function(a, b) return F.smooth_l1_loss(a, b, {beta = 0.7}) end, {r({3, 4}), r({3, 4})}},
    {"binary_cross_entropy", function(a) return F.binary_cross_entropy(a, ml.rand({3, 4}):double(), {weight = w}) end, {u({3, 4}, 0.1, 0.9)}},
    {"binary_cross_entropy_with_logits", function(a) return F.binary_cross_entropy_with_logits(a, ml.rand({3, 4}):double(), {pos_weight = w}) end, {r({3, 4})}},
    {"kl_div", function(a) return F.kl_div(a, ml.rand({3, 4}):double(), {reduction = "batchmean"}) end, {r({3, 4})}},
    {"poisson_nll_loss", function(a) return F.poisson_nll_loss(a, ml.full({3, 4}, 2):double(), {log_input = false, full = true}) end, {u({3, 4}, 0.5, 2)}},
    {"gaussian_nll_loss", function(a, v) return F.gaussian_nll_loss(a, ml.zeros({3, 4}):double(), v) end, {r({3, 4}), u({3, 1}, 0.5, 2)}},
    {"cross_entropy [N, C, d]", function(a) return F.cross_entropy(a:permute({1, 3, 2}), ids, {weight = w, label_smoothing = 0.2}) end, {r({2, 3, 4})}},
    {"cross_entropy probs", function(a) return F.cross_entropy(a, F.softmax(ml.randn({3, 4}):double(), -1), {weight = w}) end, {r({3, 4})}},
    {"nll_loss", function(a) return F.nll_loss(F.log_softmax(a, -1), ids1, {weight = w}) end, {r({3, 4})}},
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      ml.manual_seed(3)
      local fixed_seed_fn = function(...)
        ml.manual_seed(5) -- the random targets inside are the same on every call
        return c[2](...)
      end
      gradcheck(fixed_seed_fn, c[3])
    end)
  end
end)
