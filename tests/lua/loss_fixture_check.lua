-- The loss specs' checks, shared: a case from a PyTorch-generated fixture
-- (tests/fixtures/losses.lua, loss_target_grad.lua) is run through ml.F and its value
-- and gradients compared at rtol 1e-4 / atol 1e-5 (NaN matches NaN); and a tensor
-- compared with a reference tensor at a tolerance scaled by the reference's largest
-- element (the specs that check kernels against float64 ops).
local ml = require "moonlight"
local F = ml.F
local assert = require "luassert" -- busted's assert (a required module does not get the spec's)

local M = {RTOL = 1e-4, ATOL = 1e-5}

local function flatten(v, out)
  out = out or {}
  if type(v) == "table" then
    for _, x in ipairs(v) do flatten(x, out) end
  else
    out[#out + 1] = v
  end
  return out
end

-- A fixture's {data = ..., dtype = ...} as a tensor.
function M.tensor(spec, requires_grad)
  return ml.tensor(spec.data, {dtype = spec.dtype, requires_grad = requires_grad or false})
end

function M.assert_close(actual, expected, what)
  local a, e = flatten(actual), flatten(expected)
  assert(#a == #e, ("%s: %d values, expected %d"):format(what, #a, #e))
  for i = 1, #e do
    local x, y = a[i], e[i]
    local ok = (x ~= x and y ~= y) or x == y or math.abs(x - y) <= M.ATOL + M.RTOL * math.abs(y)
    assert(ok, ("%s: element %d is %.9g, expected %.9g"):format(what, i, x, y))
  end
end

-- a and b (tensors of as many elements) agree: each element within tol of b's, in
-- units of (b's largest finite magnitude + its own); NaN matches NaN.
function M.close(a, b, what, tol)
  local x, y = a:double():reshape({-1}):totable(), b:double():reshape({-1}):totable()
  assert.are.equal(#y, #x, what .. ": sizes")
  local scale = 0
  for i = 1, #y do if y[i] == y[i] then scale = math.max(scale, math.abs(y[i])) end end
  for i = 1, #y do
    local ok = (x[i] ~= x[i] and y[i] ~= y[i]) or x[i] == y[i]
               or math.abs(x[i] - y[i]) <= tol * (scale + math.abs(y[i])) + 1e-12
    assert(ok, ("%s: element %d is %.9g, expected %.9g"):format(what, i, x[i], y[i]))
  end
end

-- Runs case c: F[c.fn](args..., opts), the value, backward, then the gradient of
-- every argument c.grads names; with no_other_grads, the arguments it does not name
-- (among the first two) must get none.
function M.check_case(c, no_other_grads)
  local args = {}
  for i, a in ipairs(c.args) do args[i] = M.tensor(a, c.grads[tostring(i)] ~= nil) end
  local opts = {}
  for k, v in pairs(c.opts) do
    opts[k] = type(v) == "table" and M.tensor(v) or v
  end
  args[#args + 1] = opts
  local out = F[c.fn](table.unpack(args))
  if type(c.value) == "number" then
    assert.are.same({}, out:shape())
    M.assert_close(out:item(), c.value, "value")
    out:backward()
  else
    assert.are.same(c.value.shape, out:shape())
    M.assert_close(out:totable(), c.value.data, "value")
    out:backward(M.tensor(c.grad_out))
  end
  for i, g in pairs(c.grads) do
    local t = args[tonumber(i)]
    assert.is_not_nil(t.grad, "grad of argument " .. i)
    assert.are.same(g.shape, t.grad:shape())
    M.assert_close(t.grad:totable(), g.data, "grad of argument " .. i)
  end
  if no_other_grads then
    for i = 1, 2 do
      if c.grads[tostring(i)] == nil then
        assert.is_nil(args[i].grad, "argument " .. i .. " should get no grad")
      end
    end
  end
end

return M
