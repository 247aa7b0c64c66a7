-- ml.summary for the layers of issue 16's Transformer part, digit for digit with
-- torchinfo 1.7.2's tables (tests/fixtures/summary_layers.lua, written by
-- scripts/fixtures/gen_summary_layers.py from torchinfo's own code): rows for
-- containers never called (the encoder's ModuleList), MultiheadAttention's
-- out_proj (never called either) left out, parameters of a non-leaf counted as
-- leftover, mult-adds by parameter name, at depth 3 and 5.
local ml = require "moonlight"
local nn = ml.nn

local want = dofile("tests/fixtures/summary_layers.lua")

local TinyLM = nn.Module:extend("TinyLM")
function TinyLM:init()
  self.embed = nn.Embedding(100, 16, {padding_idx = 0})
  local layer = nn.TransformerEncoderLayer(16, 4, {dim_feedforward = 32, dropout = 0.1})
  self.encoder = nn.TransformerEncoder(layer, 2, nn.LayerNorm(16))
  self.head = nn.Linear(16, 100)
end
function TinyLM:forward(ids) return self.head(self.encoder(self.embed(ids))) end

local Norms = nn.Module:extend("Norms")
function Norms:init()
  self.gn = nn.GroupNorm(2, 6)
  self.ln = nn.LayerNorm({6, 5})
  self.frozen = nn.LayerNorm(5)
  self.frozen:requires_grad_(false)
end
function Norms:forward(x) return self.frozen(self.ln(self.gn(x))) end

local Attn = nn.Module:extend("Attn")
function Attn:init()
  self.attn = nn.MultiheadAttention(8, 2)
  self.proj = nn.Linear(8, 3)
end
function Attn:forward(x) return self.proj((self.attn(x, x, x))) end

local models = {
  tiny_lm = {TinyLM, {input_size = {10, 2}, dtypes = {"int64"}}},
  norms = {Norms, {input_size = {4, 6, 5}}},
  attn = {Attn, {input_size = {5, 3, 8}}},
}

describe("ml.summary matches torchinfo 1.7.2 for", function()
  for _, name in ipairs({"tiny_lm", "norms", "attn"}) do
    local w = want[name]
    for _, depth in ipairs({3, 5}) do
      it(name .. " at depth " .. depth, function()
        local Model, opts = models[name][1], models[name][2]
        local o = {depth = depth}
        for k, v in pairs(opts) do o[k] = v end
        local s = ml.summary(Model(), o)
        assert.are.equal(w["depth" .. depth]:gsub("\n$", ""), tostring(s))
        assert.are.equal(w.total_params, s.total_params)
        assert.are.equal(w.trainable_params, s.trainable_params)
        assert.are.equal(w.total_mult_adds, s.total_mult_adds)
        assert.are.equal(w.total_output_bytes, s.total_output_bytes)
        assert.are.equal(w.total_param_bytes, s.total_param_bytes)
      end)
    end
  end
end)
