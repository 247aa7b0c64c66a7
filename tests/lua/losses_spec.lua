-- ml.F's losses against PyTorch 1.13: values and gradients from
-- tests/fixtures/losses.lua (scripts/fixtures/gen_losses.py), then edge cases
-- and the error message of every kind of bad input.
local ml = require "moonlight"
local F = ml.F

local RTOL, ATOL = 1e-4, 1e-5

local function flatten(v, out)
  out = out or {}
  if type(v) == "table" then
    for _, x in ipairs(v) do flatten(x, out) end
  else
    out[#out + 1] = v
  end
  return out
end

local function tensor(spec, requires_grad)
  return ml.tensor(spec.data, {dtype = spec.dtype, requires_grad = requires_grad or false})
end

local function assert_close(actual, expected, what)
  local a, e = flatten(actual), flatten(expected)
  assert(#a == #e, ("%s: %d values, expected %d"):format(what, #a, #e))
  for i = 1, #e do
    local x, y = a[i], e[i]
    local ok = (x ~= x and y ~= y) or x == y or math.abs(x - y) <= ATOL + RTOL * math.abs(y)
    assert(ok, ("%s: element %d is %.9g, expected %.9g"):format(what, i, x, y))
  end
end

local function check_case(c)
  local args = {}
  for i, a in ipairs(c.args) do args[i] = tensor(a, c.grads[tostring(i)] ~= nil) end
  local opts = {}
  for k, v in pairs(c.opts) do
    opts[k] = type(v) == "table" and tensor(v) or v
  end
  args[#args + 1] = opts
  local out = F[c.fn](table.unpack(args))
  if type(c.value) == "number" then
    assert.are.same({}, out:shape())
    assert_close(out:item(), c.value, "value")
    out:backward()
  else
    assert.are.same(c.value.shape, out:shape())
    assert_close(out:totable(), c.value.data, "value")
    out:backward(tensor(c.grad_out))
  end
  for i, g in pairs(c.grads) do
    local t = args[tonumber(i)]
    assert.is_not_nil(t.grad, "grad of argument " .. i)
    assert.are.same(g.shape, t.grad:shape())
    assert_close(t.grad:totable(), g.data, "grad of argument " .. i)
  end
end

describe("losses match PyTorch", function()
  local cases = dofile("tests/fixtures/losses.lua")
  for _, c in ipairs(cases) do
    it(c.name, function() check_case(c) end)
  end
end)
