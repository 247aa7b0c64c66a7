-- F.layer_norm, F.group_norm, F.embedding and F.scaled_dot_product_attention
-- against PyTorch: forward values and the gradient of every tensor input (weights,
-- biases, float masks) from tests/fixtures/layers.lua
-- (scripts/fixtures/gen_transformer.py). Each case runs in float32 (checked at
-- float32 tolerance) and in float64 (checked tightly).
local ml = require "moonlight"
local F = ml.F
local T = ml.testing

local cases = dofile("tests/fixtures/layers.lua")

-- how the spec calls each op; x is the list of inputs, a the args (input
-- positions for weight, bias and attn_mask)
local OPS = {
  layer_norm = function(x, a)
    return F.layer_norm(x[1], a.normalized_shape, {weight = a.weight and x[a.weight],
                                                   bias = a.bias and x[a.bias], eps = a.eps})
  end,
  group_norm = function(x, a)
    return F.group_norm(x[1], a.num_groups, {weight = a.weight and x[a.weight],
                                             bias = a.bias and x[a.bias], eps = a.eps})
  end,
  embedding = function(x, a)
    return F.embedding(x[1], x[2], {padding_idx = a.padding_idx, scale_grad_by_freq = a.scale_grad_by_freq})
  end,
  scaled_dot_product_attention = function(x, a)
    return F.scaled_dot_product_attention(x[1], x[2], x[3], {attn_mask = a.attn_mask and x[a.attn_mask],
                                                             is_causal = a.is_causal, scale = a.scale})
  end,
}

local function build(e, float_dtype, requires_grad)
  local dtype = e.dtype == "float" and float_dtype or e.dtype
  local t
  if #e.shape == 0 then
    t = ml.tensor(e.data[1], {dtype = dtype})
  else
    t = ml.tensor(e.data, {dtype = dtype}):view(e.shape)
  end
  if requires_grad and e.dtype == "float" then t.requires_grad = true end
  return t
end

local tol = {
  float32 = {rtol = 1.3e-6, atol = 1e-5},
  float64 = {rtol = 1e-9, atol = 1e-10},
}

for _, dtype in ipairs({"float32", "float64"}) do
  describe("layers match PyTorch in " .. dtype, function()
    for _, c in ipairs(cases) do
      it(c.name, function()
        local inputs = {}
        for i, e in ipairs(c.inputs) do inputs[i] = build(e, dtype, true) end
        local out = OPS[c.op](inputs, c.args)
        T.assert_close(out, build(c.out, dtype, false),
                       {rtol = tol[dtype].rtol, atol = tol[dtype].atol, msg = c.name .. " forward"})
        out:backward(build(c.grad_out, dtype, false))
        for i, g in ipairs(c.grads) do
          if g then
            assert(inputs[i].grad ~= nil, c.name .. ": input " .. i .. " got no gradient")
            T.assert_close(inputs[i].grad, build(g, dtype, false),
                           {rtol = tol[dtype].rtol, atol = tol[dtype].atol,
                            msg = c.name .. " gradient of input " .. i})
          end
        end
      end)
    end
  end)
end

describe("the layers fixture", function()
  it("covers every op and option of the brief", function()
    local seen = {}
    for _, c in ipairs(cases) do
      seen[c.op] = true
      for k in pairs(c.args) do seen[c.op .. "." .. k] = true end
    end
    for _, k in ipairs({"layer_norm.weight", "layer_norm.bias", "layer_norm.eps", "group_norm.weight",
                        "group_norm.bias", "embedding.padding_idx", "embedding.scale_grad_by_freq",
                        "scaled_dot_product_attention.attn_mask", "scaled_dot_product_attention.is_causal",
                        "scaled_dot_product_attention.scale"}) do
      assert(seen[k], "no fixture case with " .. k)
    end
  end)
end)
