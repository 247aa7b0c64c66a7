-- Autograd through the Lua API: accumulation, explicit gradients, errors, grad
-- mode, detach, and a gradcheck of every differentiable op.
local ml = require "moonlight"
local T = ml.testing

local function f64(shape, opts)
  local t = ml.randn(shape, {dtype = "float64"})
  if opts and opts.positive then t = t:abs() + 0.5 end
  t.requires_grad = true
  return t
end

describe("autograd", function()
  it("accumulates gradients over two backwards", function()
    local x = ml.tensor({1, 2, 3}, {requires_grad = true})
    ;(x * x):sum():backward()
    T.assert_close(x.grad, {2, 4, 6})
    ;(x * 3):sum():backward()
    T.assert_close(x.grad, {5, 7, 9})
  end)

  it("takes an explicit gradient for a non-scalar output", function()
    local x = ml.tensor({{1, 2}, {3, 4}}, {requires_grad = true})
    local y = x * x
    y:backward(ml.tensor({{1, 0}, {0.5, 2}}))
    T.assert_close(x.grad, {{2, 0}, {3, 16}})
  end)

  it("refuses an implicit gradient for a non-scalar output", function()
    local x = ml.tensor({1, 2}, {requires_grad = true})
    local ok, err = pcall(function() (x * 2):backward() end)
    assert.is_false(ok)
    assert.matches("grad can be implicitly created only for scalar outputs %(got shape %[2%]%)", err)
  end)

  it("refuses a gradient of the wrong shape", function()
    local x = ml.tensor({1, 2}, {requires_grad = true})
    local ok, err = pcall(function() (x * 2):backward(ml.ones({3})) end)
    assert.is_false(ok)
    assert.matches("backward: grad of shape %[3%] for a tensor of shape %[2%]", err)
  end)

  it("refuses a second backward through a freed graph", function()
    local x = ml.tensor({1, 2}, {requires_grad = true})
    local loss = (x:exp()):sum()
    loss:backward()
    local ok, err = pcall(function() loss:backward() end)
    assert.is_false(ok)
    assert.matches("backward through the graph a second time", err)
  end)

  it("records nothing under ml.no_grad and restores the mode, also after an error", function()
    local x = ml.tensor({1, 2}, {requires_grad = true})
    local y = ml.no_grad(function() return x * 2 end)
    assert.is_false(y.requires_grad)
    assert.is_nil(y.grad_fn)
    assert.is_true(ml.is_grad_enabled())
    assert.is_false(pcall(ml.no_grad, function() error("boom") end))
    assert.is_true(ml.is_grad_enabled())
    assert.is_true((x * 2).requires_grad)
  end)

  it("detach cuts the graph and shares the data", function()
    local x = ml.tensor({1, 2}, {requires_grad = true})
    local d = (x * 2):detach()
    assert.is_false(d.requires_grad)
    assert.is_true(d.is_leaf)
    local y = (d * x):sum()
    y:backward()
    T.assert_close(x.grad, {2, 4}) -- d is a constant
  end)

  it("leaves grad nil for leaves backward never reached", function()
    local a = ml.tensor({1, 2}, {requires_grad = true})
    local b = ml.tensor({3, 4}, {requires_grad = true})
    local _ = b * 2
    ;(a * a):sum():backward()
    assert.is_not_nil(a.grad)
    assert.is_nil(b.grad)
  end)

  it("sums gradients of a tensor used twice", function()
    local x = ml.tensor({1, 2, 3}, {requires_grad = true})
    local y = (x * x + x:exp()):sum()
    y:backward()
    T.assert_close(x.grad, (x:detach() * 2 + x:detach():exp()))
  end)

  it("carries gradients through dtype casts, in the input's dtype", function()
    local x = ml.tensor({1, 2}, {dtype = "float64", requires_grad = true})
    ;(x:float() * ml.tensor({3, 4})):sum():backward()
    assert.are.equal("float64", x.grad.dtype)
    T.assert_close(x.grad, ml.tensor({3, 4}, {dtype = "float64"}))
  end)

  it("names the nodes it records", function()
    local x = ml.tensor({1, 2}, {requires_grad = true})
    assert.are.equal("MulBackward", (x * x).grad_fn)
    assert.are.equal("GatherBackward", x:gather(1, ml.tensor({1}, {dtype = "int64"})).grad_fn)
    assert.are.equal("IndexSelectBackward", x:index_select(1, ml.tensor({0}, {dtype = "int64"})).grad_fn)
  end)
end)

describe("ml.testing.gradcheck", function()
  ml.manual_seed(7)
  local idx2 = ml.tensor({{0, 2}, {1, 1}, {3, 0}}, {dtype = "int64"})
  local sel = ml.tensor({2, 0, 2}, {dtype = "int64"})
  local mask = ml.tensor({{1, 0, 1, 0}, {0, 0, 1, 1}, {1, 1, 0, 0}}, {dtype = "uint8"})
  -- every differentiable op: name, function, inputs
  local checks = {
    {"add broadcast", function(a, b) return a + b end, {f64({3, 4}), f64({4})}},
    {"sub broadcast", function(a, b) return a - b end, {f64({3, 1}), f64({1, 4})}},
    {"mul broadcast", function(a, b) return a * b end, {f64({3, 4}), f64({3, 1})}},
    {"div broadcast", function(a, b) return a / b end, {f64({3, 4}), f64({4}, {positive = true})}},
    {"pow tensor", function(a, b) return a ^ b end, {f64({3, 4}, {positive = true}), f64({3, 4})}},
    {"pow number", function(a) return a ^ 3 end, {f64({3, 4})}},
    {"pow fractional", function(a) return a ^ 1.5 end, {f64({3, 4}, {positive = true})}},
    {"maximum", function(a, b) return a:maximum(b) end, {f64({3, 4}), f64({4})}},
    {"minimum", function(a, b) return a:minimum(b) end, {f64({3, 4}), f64({3, 4})}},
    {"neg", function(a) return -a end, {f64({3, 4})}},
    {"exp", function(a) return a:exp() end, {f64({3, 4})}},
    {"log", function(a) return a:log() end, {f64({3, 4}, {positive = true})}},
    {"log1p", function(a) return a:log1p() end, {f64({3, 4}, {positive = true})}},
    {"abs", function(a) return a:abs() end, {f64({3, 4})}},
    {"sqrt", function(a) return a:sqrt() end, {f64({3, 4}, {positive = true})}},
    {"square", function(a) return a:square() end, {f64({3, 4})}},
    {"relu", function(a) return a:relu() end, {f64({3, 4})}},
    {"sigmoid", function(a) return a:sigmoid() end, {f64({3, 4})}},
    {"tanh", function(a) return a:tanh() end, {f64({3, 4})}},
    {"reciprocal", function(a) return a:reciprocal() end, {f64({3, 4}, {positive = true})}},
    {"clamp", function(a) return a:clamp(-0.5, 0.5) end, {f64({3, 4})}},
    {"where", function(a, b) return ml.where(mask, a, b) end, {f64({3, 4}), f64({4})}},
    {"sum", function(a) return a:sum() end, {f64({3, 4})}},
    {"sum dim keepdim", function(a) return a:sum(2, true) end, {f64({3, 4})}},
    {"mean dim", function(a) return a:mean(-2) end, {f64({2, 3, 4})}},
    {"max all", function(a) return a:max() end, {f64({3, 4})}},
    {"max dim", function(a) return a:max(2) end, {f64({3, 4})}},
    {"min dim keepdim", function(a) return (a:min(1, true)) end, {f64({3, 4})}},
    {"logsumexp", function(a) return a:logsumexp(2) end, {f64({3, 4})}},
    {"matmul 2-D", function(a, b) return a:matmul(b) end, {f64({3, 5}), f64({5, 2})}},
    {"matmul 1-D", function(a, b) return a:matmul(b) end, {f64({5}), f64({5, 2})}},
    {"matmul batched broadcast", function(a, b) return a:matmul(b) end, {f64({2, 1, 3, 4}), f64({3, 4, 2})}},
    {"matmul transposed view", function(a, b) return a:t():matmul(b) end, {f64({5, 3}), f64({5, 2})}},
    {"linear", function(x, w, b) return ml.linear(x, w, b) end, {f64({4, 5}), f64({3, 5}), f64({3})}},
    {"softmax", function(a) return a:softmax(2) end, {f64({3, 4})}},
    {"log_softmax dim 1", function(a) return a:log_softmax(1) end, {f64({3, 4})}},
    {"gather", function(a) return a:gather(2, idx2) end, {f64({3, 4})}},
    {"index_select", function(a) return a:index_select(2, sel) end, {f64({3, 4})}},
    {"scatter_add", function(a, s) return a:scatter_add(2, idx2, s) end, {f64({3, 4}), f64({3, 2})}},
    {"index_add", function(a, s) return a:index_add(2, sel, s) end, {f64({3, 4}), f64({3, 3})}},
    {"view and transpose", function(a) return a:view({4, 3}):t() * 2 end, {f64({3, 4})}},
    {"reshape of a transpose", function(a) return a:t():reshape({12}) end, {f64({3, 4})}},
    {"narrow, select, squeeze, unsqueeze", function(a)
      return a:narrow(2, 2, 2):select(1, 3):unsqueeze(1):squeeze() end, {f64({3, 4})}},
    {"expand, permute, flatten", function(a)
      return a:expand({2, 3, 4}):permute({3, 1, 2}):flatten() end, {f64({3, 4})}},
  }
  for _, c in ipairs(checks) do
    it(c[1], function()
      assert.is_true(T.gradcheck(c[2], c[3]))
    end)
  end

  it("catches a wrong gradient and names the input and element", function()
    local ok, err = pcall(T.gradcheck, function(a) return a:detach() * a end, {f64({2, 3})})
    assert.is_false(ok)
    assert.matches("gradcheck: gradient of input 1 at {1, 1} %(element 1 of shape %[2, 3%]%) differs", err)
  end)

  it("wants float64 inputs", function()
    local ok, err = pcall(T.gradcheck, function(a) return a end, {ml.ones({2}, {requires_grad = true})})
    assert.is_false(ok)
    assert.matches("input 1 is float32", err)
  end)

  it("leaves the generator and the inputs' grads as they were", function()
    local x = f64({3})
    local state = ml.get_rng_state()
    T.gradcheck(function(a) return a * a end, {x})
    assert.are.equal(state, ml.get_rng_state())
    assert.is_nil(x.grad)
  end)
end)
