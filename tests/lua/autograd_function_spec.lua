-- ml.autograd.Function: user-defined ops with a backward written in Lua
-- (torch.autograd.Function), the engine calling back into Lua, gradcheck on them,
-- and a custom loss with a hand-written gradient trained as the built-in one.
local ml = require "moonlight"
local testing = ml.testing

local Function = ml.autograd.Function

local Cube = Function:extend("Cube")
function Cube.forward(ctx, x)
  ctx:save_for_backward(x)
  return x * x * x
end
function Cube.backward(ctx, g)
  local x = ctx.saved_tensors[1]
  return g * 3 * x * x
end

-- x ^ k with k a plain number argument
local Power = Function:extend("Power")
function Power.forward(ctx, x, k)
  ctx:save_for_backward(x)
  ctx.k = k
  return x ^ k
end
function Power.backward(ctx, g)
  local x = ctx.saved_tensors[1]
  return g * ctx.k * x ^ (ctx.k - 1), nil
end

local function leaf(t)
  return ml.tensor(t, {dtype = "float64", requires_grad = true})
end

describe("autograd.Function", function()
  it("computes forward and the Lua backward's gradient", function()
    local x = leaf({{1, -2, 3}, {0.5, 4, -1}})
    local y = Cube.apply(x)
    assert.are.equal("CubeBackward", y.grad_fn)
    assert.is_true(y.requires_grad)
    testing.assert_close(y, x:detach() ^ 3)
    y:sum():backward()
    testing.assert_close(x.grad, x:detach() ^ 2 * 3)
  end)

  it("passes gradcheck, alone and inside a graph of built-in ops", function()
    ml.manual_seed(3)
    local x = ml.randn({3, 4}, {dtype = "float64"}):requires_grad_(true)
    local w = ml.randn({4}, {dtype = "float64"}):requires_grad_(true)
    assert.is_true(testing.gradcheck(Cube.apply, {x}))
    assert.is_true(testing.gradcheck(function(a, b)
      return Cube.apply(a * b):tanh() + Power.apply(a, 2)
    end, {x, w}))
  end)

  it("takes non-tensor arguments and reports needs_input_grad", function()
    local seen
    local Scale = Function:extend("Scale")
    function Scale.forward(ctx, a, s, b)
      seen = ctx.needs_input_grad
      ctx.s = s
      return a * s + b
    end
    function Scale.backward(ctx, g)
      return g * ctx.s, nil, g
    end
    local a, b = leaf({1, 2}), ml.tensor({3, 4}, {dtype = "float64"})
    local y = Scale.apply(a, 2.5, b)
    assert.are.same({true, false, false}, seen)
    y:sum():backward()
    testing.assert_close(a.grad, ml.tensor({2.5, 2.5}, {dtype = "float64"}))
    assert.is_nil(b.grad)
    local p = leaf({2, 3})
    Power.apply(p, 3):sum():backward()
    testing.assert_close(p.grad, ml.tensor({12, 27}, {dtype = "float64"}))
  end)

  it("records nothing when no argument requires grad or grad mode is off", function()
    local x = ml.tensor({1, 2, 3})
    local y = Cube.apply(x)
    assert.is_nil(y.grad_fn)
    assert.is_false(y.requires_grad)
    local z = ml.no_grad(function() return Cube.apply(leaf({1, 2})) end)
    assert.is_nil(z.grad_fn)
  end)

  it("handles several outputs, used or not", function()
    local SinCos = Function:extend("SinCos")
    local got
    function SinCos.forward(ctx, x)
      ctx:save_for_backward(x)
      return x:sin(), x:cos(), "not a tensor"
    end
    function SinCos.backward(ctx, gs, gc, gn)
      got = {gs, gc, gn}
      local x = ctx.saved_tensors[1]
      local g = ml.zeros_like(x)
      if gs then g = g + gs * x:cos() end
      if gc then g = g - gc * x:sin() end
      return g
    end
    local x = leaf({0.3, -1.2, 2})
    local s, c, str = SinCos.apply(x)
    assert.are.equal("not a tensor", str)
    assert.are.equal("SinCosBackward", s.grad_fn)
    assert.are.equal("SinCosBackward", c.grad_fn)
    ;(s * 2 + c * 3):sum():backward()
    local xd = x:detach()
    testing.assert_close(x.grad, xd:cos() * 2 - xd:sin() * 3)
    assert.is_nil(got[3])
    -- only the second output reaches the loss: the first gradient is zeros
    local x2 = leaf({0.5, 1})
    local _, c2 = SinCos.apply(x2)
    c2:sum():backward()
    testing.assert_close(got[1], ml.zeros({2}, {dtype = "float64"}))
    testing.assert_close(x2.grad, -x2:detach():sin())
    assert.is_true(testing.gradcheck(function(v)
      local a, b = SinCos.apply(v)
      return a * b
    end, {leaf({0.1, 0.7, -2})}))
  end)

  it("gives nil for unreached outputs without materialized grads, and none to non-differentiable ones", function()
    local Two = Function:extend("Two")
    local got
    function Two.forward(ctx, x)
      ctx:set_materialize_grads(false)
      local idx = x:argmax(1)
      local m = x * 2
      ctx:mark_non_differentiable(m)
      return x * 3, m, idx
    end
    function Two.backward(ctx, g1, g2, g3)
      got = {g1 ~= nil, g2 ~= nil, g3 ~= nil}
      return g1 * 3
    end
    local x = leaf({1, 5, 2})
    local a, m, idx = Two.apply(x)
    assert.is_nil(m.grad_fn)
    assert.is_nil(idx.grad_fn)
    assert.are.equal("int64", idx.dtype)
    a:sum():backward()
    assert.are.same({true, false, false}, got)
    testing.assert_close(x.grad, ml.full({3}, 3, {dtype = "float64"}))
  end)

  it("takes any number of tensor inputs (more than one engine node holds)", function()
    local Sum6 = Function:extend("Sum6")
    function Sum6.forward(ctx, ...)
      local args = table.pack(...)
      ctx.n = args.n
      ctx:save_for_backward(...)
      local s = args[1]
      for i = 2, args.n do s = s * args[i] end
      return s
    end
    function Sum6.backward(ctx, g)
      local xs, out = ctx.saved_tensors, {}
      for i = 1, ctx.n do
        local p = g
        for k = 1, ctx.n do
          if k ~= i then p = p * xs[k] end
        end
        out[i] = p
      end
      return table.unpack(out, 1, ctx.n)
    end
    ml.manual_seed(8)
    local inputs = {}
    for i = 1, 11 do
      inputs[i] = (ml.rand({2, 3}, {dtype = "float64"}) + 0.5):requires_grad_(i ~= 5)
    end
    assert.is_true(testing.gradcheck(Sum6.apply, inputs))
    local y = Sum6.apply(table.unpack(inputs))
    y:sum():backward()
    assert.is_nil(inputs[5].grad)
    local prod = ml.ones({2, 3}, {dtype = "float64"})
    for k = 1, 11 do if k ~= 7 then prod = prod * inputs[k]:detach() end end
    testing.assert_close(inputs[7].grad, prod)
  end)

  it("sums a broadcast gradient to the input's shape and casts it to its dtype", function()
    local AddRow = Function:extend("AddRow")
    function AddRow.forward(_, x, b) return x + b end
    function AddRow.backward(_, g) return g, g:float() end
    local x, b = leaf({{1, 2}, {3, 4}, {5, 6}}), leaf({10, 20})
    AddRow.apply(x, b):sum():backward()
    assert.are.equal("float64", b.grad.dtype)
    testing.assert_close(b.grad, ml.tensor({3, 3}, {dtype = "float64"}))
  end)

  it("raises the backward's errors naming the Function, with the Lua message", function()
    local Bad = Function:extend("Bad")
    function Bad.forward(_, x) return x * 2 end
    function Bad.backward(_, g) error("my own failure") end
    local x = leaf({1, 2})
    local ok, err = pcall(function() Bad.apply(x):sum():backward() end)
    assert.is_false(ok)
    assert.matches("Bad.backward: .*autograd_function_spec.lua:%d+: my own failure", err)

    local Shape = Function:extend("Shape")
    function Shape.forward(_, x) return x * 2 end
    function Shape.backward(_, g) return ml.ones({3}, {dtype = "float64"}) end
    ok, err = pcall(function() Shape.apply(leaf({1, 2})):sum():backward() end)
    assert.is_false(ok)
    assert.matches("Shape.backward: gradient 1 has shape %[3%], its input %[2%]", err)

    local Many = Function:extend("Many")
    function Many.forward(_, x) return x * 2 end
    function Many.backward(_, g) return g, g end
    ok, err = pcall(function() Many.apply(leaf({1, 2})):sum():backward() end)
    assert.matches("Many.backward returned 2 gradients for 1 forward arguments", err)

    local Str = Function:extend("Str")
    function Str.forward(_, x, k) return x * k end
    function Str.backward(_, g) return g, "two" end
    ok, err = pcall(function() Str.apply(leaf({1, 2}), 2):sum():backward() end)
    assert.matches("Str.backward: gradient 2 is a string; a gradient is a tensor or nil", err)

    local NoBackward = Function:extend("NoBackward")
    function NoBackward.forward(_, x) return x * 2 end
    ok, err = pcall(function() NoBackward.apply(leaf({1})):sum():backward() end)
    assert.matches("NoBackward.backward is not implemented", err)
  end)

  it("refuses a second backward through the same graph", function()
    local x = leaf({1, 2})
    local y = Cube.apply(x):sum()
    y:backward()
    local ok, err = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.matches("second time", err)
  end)

  it("frees ctx and its saved tensors after backward, and when the graph is dropped", function()
    local alive = setmetatable({}, {__mode = "k"})
    local Keep = Function:extend("Keep")
    function Keep.forward(ctx, x)
      alive[ctx] = true
      ctx:save_for_backward(x, x * 2)
      return x * 2
    end
    function Keep.backward(_, g) return g * 2 end
    local function count()
      collectgarbage()
      collectgarbage()
      local n = 0
      for _ in pairs(alive) do n = n + 1 end
      return n
    end
    local x = leaf({1, 2, 3})
    for _ = 1, 5 do Keep.apply(x):sum():backward() end
    assert.are.equal(0, count())
    -- outputs dropped without backward: freed once collected (the registry
    -- entry goes at the next apply or backward)
    for _ = 1, 5 do Keep.apply(x) end
    collectgarbage()
    collectgarbage()
    Cube.apply(leaf({1})):sum():backward()
    assert.are.equal(0, count())
  end)

  it("errors naming the bad name given to extend", function()
    local ok, err = pcall(Function.extend, Function, "has space")
    assert.is_false(ok)
    assert.matches("Function:extend: expected a name", err)
  end)

  -- The main use: a loss whose gradient is written by hand. MSE with its
  -- analytic gradient 2 (x - y) / n trains the same weights as F.mse_loss.
  it("trains with a custom loss whose gradient is hand-written, as with the built-in loss", function()
    local MyMSE = Function:extend("MyMSE")
    function MyMSE.forward(ctx, input, target)
      local diff = input - target
      ctx:save_for_backward(diff)
      return (diff * diff):mean()
    end
    function MyMSE.backward(ctx, g)
      local diff = ctx.saved_tensors[1]
      local grad = diff * (2 / diff:numel()) * g
      return grad, -grad
    end
    local nn, optim, F = ml.nn, ml.optim, ml.F
    local function train(loss_fn)
      ml.manual_seed(1)
      local model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
      local opt = optim.Adam(model:parameters(), {lr = 1e-2})
      local x, y = ml.randn({16, 6}), ml.randn({16, 3})
      local losses = {}
      for step = 1, 20 do
        opt:zero_grad()
        local loss = loss_fn(model(x), y)
        loss:backward()
        opt:step()
        losses[step] = loss:item()
      end
      return losses, model:parameters()
    end
    local l1, p1 = train(MyMSE.apply)
    local l2, p2 = train(F.mse_loss)
    assert.is_true(l1[20] < l1[1] * 0.8)
    testing.assert_close(ml.tensor(l1), ml.tensor(l2), {rtol = 1e-5, atol = 1e-6})
    for i = 1, #p1 do testing.assert_close(p1[i]:detach(), p2[i]:detach(), {rtol = 1e-4, atol = 1e-5}) end
    assert.is_true(testing.gradcheck(function(a, b) return MyMSE.apply(a, b) end,
                                     {leaf({{0.1, 2}, {3, -1}}), leaf({{1, 1}, {0, 2}})}))
  end)
end)
