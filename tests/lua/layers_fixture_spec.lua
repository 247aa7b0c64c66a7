-- F.layer_norm, F.group_norm, F.embedding and F.scaled_dot_product_attention
-- against PyTorch: forward values and the gradient of every tensor input (weights,
-- biases, float masks) from tests/fixtures/layers.lua
-- (scripts/fixtures/gen_transformer.py). Each case runs in float32 (checked at
-- float32 tolerance) and in float64 (checked tightly).
local ml = require "moonlight"
local F = ml.F
local fixture = require "op_fixture"

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

for _, dtype in ipairs(fixture.DTYPES) do
  describe("layers match PyTorch in " .. dtype, function()
    for _, c in ipairs(cases) do
      it(c.name, function()
        local inputs = fixture.inputs(c, dtype)
        local out = OPS[c.op](inputs, c.args)
        fixture.assert_matches(out, c.out, dtype, {msg = c.name .. " forward"})
        out:backward(fixture.build(c.grad_out, dtype, false))
        fixture.assert_grads(c, inputs, dtype)
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
