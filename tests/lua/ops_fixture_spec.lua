-- Every op against PyTorch: forward values and input gradients from
-- tests/fixtures/ops.lua (scripts/fixtures/gen_ops.py). Each case runs in float32
-- (checked at float32 tolerance) and in float64 (checked tightly).
local ml = require "moonlight"
local fixture = require "op_fixture"

local cases = dofile("tests/fixtures/ops.lua")

-- how the spec calls each op of the fixture; x is the list of inputs, a the args
local OPS = {
  add = function(x) return x[1] + x[2] end,
  sub = function(x) return x[1] - x[2] end,
  mul = function(x) return x[1] * x[2] end,
  div = function(x) return x[1] / x[2] end,
  pow = function(x) return x[1] ^ x[2] end,
  pow_scalar = function(x, a) return x[1] ^ a.p end,
  add_number = function(x, a) return x[1] + a.s end,
  rsub_number = function(x, a) return a.s - x[1] end,
  rdiv_number = function(x, a) return a.s / x[1] end,
  maximum = function(x) return x[1]:maximum(x[2]) end,
  minimum = function(x) return ml.minimum(x[1], x[2]) end,
  neg = function(x) return -x[1] end,
  clamp = function(x, a) return x[1]:clamp({min = a.min, max = a.max}) end,
  where = function(x) return ml.where(x[1], x[2], x[3]) end,
  eq = function(x) return x[1]:eq(x[2]) end,
  lt = function(x) return x[1]:lt(x[2]) end,
  gt = function(x) return x[1]:gt(x[2]) end,
  le = function(x) return x[1]:le(x[2]) end,
  sum_all = function(x) return x[1]:sum() end,
  mean_all = function(x) return x[1]:mean() end,
  sum = function(x, a) return x[1]:sum(a.dim, a.keepdim) end,
  mean = function(x, a) return x[1]:mean(a.dim, a.keepdim) end,
  max = function(x, a) return (x[1]:max(a.dim, a.keepdim)) end,
  min = function(x, a) return (x[1]:min(a.dim, a.keepdim)) end,
  max_indices = function(x, a) return select(2, x[1]:max(a.dim, a.keepdim)) end,
  logsumexp = function(x, a) return x[1]:logsumexp(a.dim, a.keepdim) end,
  argmax = function(x, a) return x[1]:argmax(a.dim) end,
  argmin = function(x, a) return x[1]:argmin(a.dim) end,
  max_all = function(x) return x[1]:max() end,
  min_all = function(x) return x[1]:min() end,
  matmul = function(x) return x[1]:matmul(x[2]) end,
  matmul_bt = function(x) return x[1]:matmul(x[2]:t()) end,
  matmul_at = function(x) return x[1]:t():matmul(x[2]) end,
  linear = function(x) return ml.linear(x[1], x[2], x[3]) end,
  softmax = function(x, a) return x[1]:softmax(a.dim) end,
  log_softmax = function(x, a) return ml.F.log_softmax(x[1], a.dim) end,
  gather = function(x, a) return x[1]:gather(a.dim, x[2]) end,
  index_select = function(x, a) return x[1]:index_select(a.dim, x[2]) end,
  one_hot = function(x, a) return ml.F.one_hot(x[1], a.n) end,
  floor_divide = function(x) return x[1] // x[2] end,
}
-- any other op is the tensor method of that name taking the other inputs (t:sin(),
-- t:maximum(u)): an op added to a list needs a fixture case, not a line here
local function op_fn(name)
  return OPS[name] or function(x)
    local method = assert(x[1][name], "no Lua call for fixture op " .. name)
    return method(x[1], table.unpack(x, 2))
  end
end

-- one golden test per case: the forward value, then the gradient of every input
for _, dtype in ipairs(fixture.DTYPES) do
  describe("ops match PyTorch in " .. dtype, function()
    for _, c in ipairs(cases) do
      it(c.name, function()
        local inputs = fixture.inputs(c, dtype)
        local out = op_fn(c.op)(inputs, c.args)
        fixture.assert_matches(out, c.out, dtype, {msg = c.name .. " forward"})
        if c.grads then
          out:backward(fixture.build(c.grad_out, dtype, false))
          fixture.assert_grads(c, inputs, dtype)
        end
      end)
    end
  end)
end
