-- The activations, F.pad and the tensor maths of issue 16 against PyTorch: every
-- output and the gradient of every float input from tests/fixtures/tensor_maths.lua
-- (scripts/fixtures/gen_tensor_maths.py). Each case runs in float32 (float32
-- tolerance) and float64 (tightly); the differentiable ones also pass gradcheck in
-- float64 from the fixture's inputs.
local ml = require "moonlight"
local T = ml.testing
local F = ml.F
local fixture = require "op_fixture"

local cases = dofile("tests/fixtures/tensor_maths.lua")

-- how the spec calls each op of the fixture (the public API, as a user writes it);
-- x is the list of inputs, a the args; each returns every output
local OPS = {
  gelu = function(x, a) return F.gelu(x[1], {approximate = a.approximate}) end,
  silu = function(x) return F.silu(x[1]) end,
  leaky_relu = function(x, a)
    if a.negative_slope then return F.leaky_relu(x[1], {negative_slope = a.negative_slope}) end
    return F.leaky_relu(x[1])
  end,
  elu = function(x, a) return F.elu(x[1], a.alpha) end,
  softplus = function(x, a) return F.softplus(x[1], {beta = a.beta, threshold = a.threshold}) end,
  isnan = function(x) return x[1]:isnan() end,
  isinf = function(x) return ml.isinf(x[1]) end,
  pad = function(x, a) return F.pad(x[1], a.pads, {mode = a.mode, value = a.value}) end,
  var = function(x, a)
    return x[1]:var(a.dim, {correction = a.correction, unbiased = a.unbiased, keepdim = a.keepdim})
  end,
  std = function(x, a) return x[1]:std(a.dim, {correction = a.correction, keepdim = a.keepdim}) end,
  norm = function(x, a) return x[1]:norm(a.p, a.dim, {keepdim = a.keepdim}) end,
  cumsum = function(x, a) return x[1]:cumsum(a.dim) end,
  masked_fill = function(x, a) return x[1]:masked_fill(x[2], a.value) end,
  masked_fill_tensor = function(x) return x[1]:masked_fill(x[2], x[3]) end,
  sort = function(x, a) return x[1]:sort(a.dim, {descending = a.descending}) end,
  argsort = function(x, a) return x[1]:argsort(a.dim, {descending = a.descending}) end,
  topk = function(x, a) return x[1]:topk(a.k, a.dim, {largest = a.largest}) end,
  chunk = function(x, a) return x[1]:chunk(a.n, a.dim) end,
  split = function(x, a) return x[1]:split(a.size, a.dim) end,
  all = function(x, a) return x[1]:all(a.dim, a.keepdim) end,
  any = function(x, a) return ml.any(x[1], a.dim, a.keepdim) end,
  permute = function(x, a) return x[1]:permute(a.dims) end,
  transpose = function(x, a) return x[1]:transpose(a.dim0, a.dim1) end,
  unsqueeze = function(x, a) return x[1]:unsqueeze(a.dim) end,
  squeeze = function(x, a) return x[1]:squeeze(a.dim) end,
}

local build = fixture.build

-- the fixture's loss: the sum of each float output times its upstream gradient
local function loss_of(c, outs, dtype)
  local loss
  for i, g in ipairs(c.grad_out) do
    if g then
      local term = (outs[i] * build(g, dtype, false)):sum()
      loss = loss and loss + term or term
    end
  end
  return loss
end

for _, dtype in ipairs(fixture.DTYPES) do
  describe("tensor maths match PyTorch in " .. dtype, function()
    for _, c in ipairs(cases) do
      it(c.name, function()
        local fn = assert(OPS[c.op], "no Lua call for fixture op " .. c.op)
        local inputs = fixture.inputs(c, dtype)
        local outs = table.pack(fn(inputs, c.args))
        assert.are.equal(#c.outs, outs.n, c.name .. ": number of outputs")
        for i, e in ipairs(c.outs) do
          fixture.assert_matches(outs[i], e, dtype, {equal_nan = true, msg = c.name .. " output " .. i})
        end
        if c.grads then
          loss_of(c, outs, dtype):backward()
          fixture.assert_grads(c, inputs, dtype, {equal_nan = true})
        end
      end)
    end
  end)
end

-- gradcheck from the fixture's inputs, where the op is smooth there (a NaN output,
-- a norm of a zero row or with ties has no finite-difference slope)
local function smooth(c)
  for _, e in ipairs(c.outs) do
    for _, v in ipairs(e.data) do
      if v ~= v or v == math.huge or v == -math.huge then return false end
    end
  end
  return not c.name:match("zero row") and not c.name:match("ties") and not c.name:match("constant row")
end

describe("tensor maths gradcheck in float64", function()
  for _, c in ipairs(cases) do
    if c.grads and smooth(c) then
      it(c.name, function()
        local inputs, leaves = {}, {}
        for i, e in ipairs(c.inputs) do
          inputs[i] = build(e, "float64", true)
          if e.dtype == "float" and c.grads[i] ~= "none" then leaves[#leaves + 1] = inputs[i] end
        end
        local function f(...)
          local given, k = {...}, 0
          local xs = {}
          for i, e in ipairs(c.inputs) do
            if e.dtype == "float" and c.grads[i] ~= "none" then
              k = k + 1
              xs[i] = given[k]
            else
              xs[i] = inputs[i]
            end
          end
          return OPS[c.op](xs, c.args) -- gradcheck ignores the integer outputs
        end
        if #leaves > 0 then assert.is_true(T.gradcheck(f, leaves)) end
      end)
    end
  end
end)
