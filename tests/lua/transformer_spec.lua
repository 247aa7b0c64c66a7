-- Module level against PyTorch: small nn.TransformerEncoder and
-- nn.MultiheadAttention models that PyTorch saved as safetensors
-- (scripts/fixtures/gen_transformer.py) load into the same Moonlight models with
-- strict = true and give the same outputs (train mode with dropout 0, and eval
-- mode), input gradients and parameter gradients.
local ml = require "moonlight"
local nn, F, T = ml.nn, ml.F, ml.testing

local TOL = {rtol = 1e-4, atol = 1e-5}

local function load(name)
  local sd = ml.load("tests/fixtures/transformer_" .. name .. ".safetensors")
  local io = ml.load("tests/fixtures/transformer_" .. name .. "_io.safetensors")
  return sd, io
end

local function close(a, b, what) T.assert_close(a, b, {rtol = TOL.rtol, atol = TOL.atol, msg = what}) end

-- the model's parameter gradients against io["grad.<name>"]
local function check_param_grads(model, io)
  local n = 0
  for name, p in model:named_parameters() do
    local want = io["grad." .. name]
    assert(want ~= nil, "the fixture has no gradient for " .. name)
    assert(p.grad ~= nil, name .. " got no gradient")
    close(p.grad, want, "gradient of " .. name)
    n = n + 1
  end
  return n
end

local function encoder_check(model, sd, io, opts)
  local res = model:load_state_dict(sd, {strict = true})
  assert.are.same({}, res.missing_keys)
  assert.are.same({}, res.unexpected_keys)
  -- train mode (dropout 0): outputs and gradients
  model:train()
  local src = io.src:detach():requires_grad_(true)
  local out = model(src, {src_mask = io.mask, src_key_padding_mask = io.src_key_padding_mask})
  close(out, io.train_out, "train-mode output")
  out:backward(io.grad_out)
  close(src.grad, io["grad.src"], "gradient of src")
  local n = check_param_grads(model, io)
  assert.is_true(n >= (opts and opts.min_params or 1))
  -- eval mode
  model:eval()
  local ev = ml.no_grad(function()
    return model(io.src, {src_mask = io.mask, src_key_padding_mask = io.src_key_padding_mask})
  end)
  close(ev, io.eval_out, "eval-mode output")
end

describe("nn.TransformerEncoder matches PyTorch", function()
  it("batch first, post-norm, relu, final LayerNorm, causal src_mask and key padding mask", function()
    local sd, io = load("encoder")
    local layer = nn.TransformerEncoderLayer(16, 4, {dim_feedforward = 24, dropout = 0.0, batch_first = true})
    local model = nn.TransformerEncoder(layer, 2, nn.LayerNorm(16))
    encoder_check(model, sd, io, {min_params = 26})
  end)

  it("sequence first, norm_first, layer_norm_eps, three layers, batch 1, no masks", function()
    local sd, io = load("encoder_norm_first")
    local layer = nn.TransformerEncoderLayer(12, 3, {dim_feedforward = 20, dropout = 0.0, norm_first = true,
                                                     layer_norm_eps = 1e-4})
    encoder_check(nn.TransformerEncoder(layer, 3), sd, io, {min_params = 36})
  end)

  it("activation = \"gelu\"", function()
    if not F.gelu then
      pending("ml.F.gelu is not in this build yet (it comes with the activations' op list)")
      return
    end
    local sd, io = load("encoder_gelu")
    local layer = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0.0, activation = "gelu",
                                                    batch_first = true})
    encoder_check(nn.TransformerEncoder(layer, 1), sd, io, {min_params = 12})
  end)

  it("saves a state dict PyTorch's names load from (same keys and shapes)", function()
    local sd = load("encoder")
    local layer = nn.TransformerEncoderLayer(16, 4, {dim_feedforward = 24, dropout = 0.0, batch_first = true})
    local mine = nn.TransformerEncoder(layer, 2, nn.LayerNorm(16)):state_dict()
    local n = 0
    for k, v in pairs(sd) do
      assert(mine[k] ~= nil, "missing " .. k)
      assert.are.same(v:shape(), mine[k]:shape())
      n = n + 1
    end
    for k in pairs(mine) do assert(sd[k] ~= nil, "extra " .. k) end
    assert.are.equal(26, n)
  end)
end)

local function mha_check(model, sd, io, call)
  model:load_state_dict(sd, {strict = true})
  model:train()
  local q = io.query:detach():requires_grad_(true)
  local k = io["grad.key"] and io.key:detach():requires_grad_(true) or q
  local v = io["grad.value"] and io.value:detach():requires_grad_(true) or q
  local out, w = call(model, q, k, v)
  close(out, io.out, "output")
  local loss = (out * io.grad_out):sum()
  if io.weights then
    close(w, io.weights, "attention weights")
    loss = loss + (w * io.grad_weights):sum()
  else
    assert.is_nil(w)
  end
  loss:backward()
  close(q.grad, io["grad.query"], "gradient of query")
  if io["grad.key"] then
    close(k.grad, io["grad.key"], "gradient of key")
    close(v.grad, io["grad.value"], "gradient of value")
  end
  check_param_grads(model, io)
end

describe("nn.MultiheadAttention matches PyTorch", function()
  it("need_weights (averaged), a boolean attn_mask and a key padding mask", function()
    local sd, io = load("mha")
    mha_check(nn.MultiheadAttention(12, 3), sd, io, function(m, q, k, v)
      return m(q, k, v, {attn_mask = io.attn_mask, key_padding_mask = io.key_padding_mask})
    end)
  end)

  it("kdim and vdim, add_bias_kv, add_zero_attn, per-head weights, batch_first", function()
    local sd, io = load("mha_kv")
    local m = nn.MultiheadAttention(8, 2, {kdim = 5, vdim = 7, add_bias_kv = true, add_zero_attn = true,
                                           batch_first = true})
    mha_check(m, sd, io, function(mm, q, k, v) return mm(q, k, v, {average_attn_weights = false}) end)
  end)

  it("self-attention without bias, unbatched, a float attn_mask", function()
    local sd, io = load("mha_self")
    mha_check(nn.MultiheadAttention(6, 2, {bias = false}), sd, io, function(m, q, k, v)
      return m(q, k, v, {attn_mask = io.attn_mask})
    end)
  end)
end)
