-- Convolution, pooling and batch norm against PyTorch: forward values and the
-- gradient of every tensor input and weight, from tests/fixtures/conv.lua
-- (scripts/fixtures/gen_conv.py), in float32 (float32 tolerance) and float64
-- (tight); batch norm's running statistics after the call. Then gradcheck in
-- float64 on a few of them.
local ml = require "moonlight"
local F, T = ml.F, ml.testing
local fixture = require "op_fixture"

local cases = dofile("tests/fixtures/conv.lua")

-- the options without the positional ones (kernel_size, output_size)
local function rest(opts, ...)
  local drop, o = {}, {}
  for _, k in ipairs({...}) do drop[k] = true end
  for k, v in pairs(opts) do if not drop[k] then o[k] = v end end
  return o
end

local CALL = {
  conv2d = function(x, o) return F.conv2d(x[1], x[2], x[3], o) end,
  conv1d = function(x, o) return F.conv1d(x[1], x[2], x[3], o) end,
  conv_transpose2d = function(x, o) return F.conv_transpose2d(x[1], x[2], x[3], o) end,
  max_pool2d = function(x, o) return F.max_pool2d(x[1], o.kernel_size, rest(o, "kernel_size")) end,
  max_pool2d_indices = function(x, o)
    return select(2, F.max_pool2d(x[1], o.kernel_size, rest(o, "kernel_size")))
  end,
  avg_pool2d = function(x, o) return F.avg_pool2d(x[1], o.kernel_size, rest(o, "kernel_size")) end,
  adaptive_avg_pool2d = function(x, o) return F.adaptive_avg_pool2d(x[1], o.output_size) end,
  batch_norm = function(x, o)
    local i, rm, rv = 2, nil, nil
    if o.stats then rm, rv, i = x[2], x[3], 4 end
    return F.batch_norm(x[1], rm, rv, {weight = o.affine and x[i] or nil, bias = o.affine and x[i + 1] or nil,
                                       training = o.training, momentum = o.momentum, eps = o.eps})
  end,
}

for _, dtype in ipairs(fixture.DTYPES) do
  describe("convolution, pooling, batch norm match PyTorch in " .. dtype, function()
    for _, c in ipairs(cases) do
      it(c.name, function()
        local inputs = fixture.inputs(c, dtype)
        local out = CALL[c.op](inputs, c.opts)
        fixture.assert_matches(out, c.out, dtype, {msg = c.name .. " forward"})
        for k, e in pairs(c.after or {}) do
          local pos = k == "running_mean" and 2 or 3
          fixture.assert_matches(inputs[pos], e, dtype, {msg = c.name .. " " .. k})
        end
        if c.grads then
          out:backward(fixture.build(c.grad_out, dtype, false))
          fixture.assert_grads(c, inputs, dtype)
        end
      end)
    end
  end)
end

describe("gradcheck in float64", function()
  local function r(shape) return ml.randn(shape, {dtype = "float64", requires_grad = true}) end
  before_each(function() ml.manual_seed(3) end)

  it("conv2d: input, weight, bias; stride, padding, dilation, groups", function()
    assert.is_true(T.gradcheck(function(x, w, b)
      return F.conv2d(x, w, b, {stride = {2, 1}, padding = {1, 2}, dilation = {1, 2}, groups = 2})
    end, {r({2, 4, 5, 6}), r({6, 2, 3, 2}), r({6})}))
  end)
  it("conv2d padding same with an even kernel", function()
    assert.is_true(T.gradcheck(function(x, w) return F.conv2d(x, w, nil, {padding = "same"}) end,
                               {r({1, 2, 4, 5}), r({3, 2, 2, 4})}))
  end)
  it("conv1d", function()
    assert.is_true(T.gradcheck(function(x, w, b) return F.conv1d(x, w, b, {stride = 2, padding = 1}) end,
                               {r({2, 3, 7}), r({2, 3, 3}), r({2})}))
  end)
  it("conv_transpose2d", function()
    assert.is_true(T.gradcheck(function(x, w, b)
      return F.conv_transpose2d(x, w, b, {stride = 2, padding = 1, output_padding = 1, groups = 2})
    end, {r({2, 4, 3, 3}), r({4, 1, 3, 3}), r({2})}))
  end)
  it("max_pool2d and avg_pool2d", function()
    assert.is_true(T.gradcheck(function(x) return F.max_pool2d(x, 3, {stride = 2, padding = 1}) end,
                               {r({2, 2, 5, 6})}))
    assert.is_true(T.gradcheck(function(x)
      return F.avg_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true, count_include_pad = false})
    end, {r({2, 2, 6, 5})}))
  end)
  it("adaptive_avg_pool2d", function()
    assert.is_true(T.gradcheck(function(x) return F.adaptive_avg_pool2d(x, {3, 4}) end, {r({2, 2, 7, 5})}))
  end)
  it("batch_norm training and eval", function()
    local rm, rv = ml.zeros({3}, {dtype = "float64"}), ml.ones({3}, {dtype = "float64"})
    assert.is_true(T.gradcheck(function(x, w, b)
      return F.batch_norm(x, nil, nil, {weight = w, bias = b, training = true})
    end, {r({4, 3, 2, 2}), r({3}), r({3})}))
    assert.is_true(T.gradcheck(function(x, w, b)
      return F.batch_norm(x, rm, rv, {weight = w, bias = b, training = false})
    end, {r({4, 3, 5}), r({3}), r({3})}))
  end)
end)
