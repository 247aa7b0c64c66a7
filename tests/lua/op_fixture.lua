-- What the PyTorch fixture specs (ops_, tensor_maths_, layers_, conv_fixture_spec)
-- share: a fixture entry {shape, dtype, data} as a tensor, and the checks of a
-- case's outputs and input gradients. Each case runs in float32, checked at float32
-- tolerance, and in float64, checked tightly; an output that is not float matches
-- exactly.
local ml = require "moonlight"
local T = ml.testing
local assert = require "luassert" -- busted's assert (a required module does not get the spec's)

local M = {}

M.DTYPES = {"float32", "float64"}
M.TOL = {
  float32 = {rtol = 1.3e-6, atol = 1e-5},
  float64 = {rtol = 1e-9, atol = 1e-10},
}

-- The entry e as a tensor: its "float" dtype is float_dtype; a shape of {} is a
-- 0-d tensor, data of {} a tensor of zeros (an empty one). With requires_grad, a
-- float entry (unless marked nograd) is a leaf that records its gradient.
function M.build(e, float_dtype, requires_grad)
  local dtype = e.dtype == "float" and float_dtype or e.dtype
  local t
  if #e.shape == 0 then
    t = ml.tensor(e.data[1], {dtype = dtype})
  elseif #e.data == 0 then
    t = ml.zeros(e.shape, {dtype = dtype})
  else
    t = ml.tensor(e.data, {dtype = dtype}):view(e.shape)
  end
  if requires_grad and e.dtype == "float" and not e.nograd then t.requires_grad = true end
  return t
end

-- got matches the entry e in dtype's tolerance (exactly where e is not float);
-- opts: msg, equal_nan
function M.assert_matches(got, e, dtype, opts)
  local want = M.build(e, dtype, false)
  local tol = want.dtype:match("float") and M.TOL[dtype] or {}
  T.assert_close(got, want, {rtol = tol.rtol, atol = tol.atol, equal_nan = opts.equal_nan, msg = opts.msg})
end

-- After backward: the gradient of each input against case c's grads. An entry that
-- is a tensor must match; false (not a float input, or one marked nograd) and
-- "none" (torch left it None) mean the input has no gradient. opts: equal_nan
function M.assert_grads(c, inputs, dtype, opts)
  opts = opts or {}
  for i, g in ipairs(c.grads) do
    if type(g) == "table" then
      assert(inputs[i].grad ~= nil, c.name .. ": input " .. i .. " got no gradient")
      M.assert_matches(inputs[i].grad, g, dtype,
                       {equal_nan = opts.equal_nan, msg = c.name .. " gradient of input " .. i})
    else
      assert(inputs[i].grad == nil, c.name .. ": input " .. i .. " should get no gradient")
    end
  end
end

-- the case's inputs as tensors of dtype, leaves where the case has gradients
function M.inputs(c, dtype)
  local inputs = {}
  for i, e in ipairs(c.inputs) do inputs[i] = M.build(e, dtype, c.grads ~= nil) end
  return inputs
end

return M
