-- The layers of issue 16's Transformer part beyond the PyTorch fixtures
-- (layers_fixture_spec, transformer_spec): gradcheck in float64, bad input
-- errors, the modules' parameters, init, reprs and modes, dropout, thread-count
-- independence, and the eval-mode / no-grad paths.
local ml = require "moonlight"
local nn, F, T = ml.nn, ml.F, ml.testing
local err = require("test_util").err

local function f64(shape, scale)
  return (ml.randn(shape, {dtype = "float64"}) * (scale or 1)):requires_grad_(true)
end

describe("gradcheck (float64)", function()
  before_each(function() ml.manual_seed(3) end)

  it("layer_norm: input, weight and bias; with and without affine", function()
    local x, w, b = f64({3, 2, 5}), f64({2, 5}), f64({2, 5})
    T.gradcheck(function(a, ww, bb) return F.layer_norm(a, {2, 5}, {weight = ww, bias = bb}) end, {x, w, b})
    T.gradcheck(function(a) return F.layer_norm(a, {5}, {eps = 1e-3}) end, {f64({4, 5})})
  end)

  it("group_norm: input, weight and bias; spatial dims and none", function()
    T.gradcheck(function(a, w, b) return F.group_norm(a, 2, {weight = w, bias = b}) end,
                {f64({2, 4, 3}), f64({4}), f64({4})})
    T.gradcheck(function(a, w) return F.group_norm(a, 3, {weight = w}) end, {f64({2, 3}), f64({3})})
    T.gradcheck(function(a) return F.group_norm(a, 1) end, {f64({1, 2, 2, 3})})
  end)

  it("embedding: the weight, with repeats, padding_idx and scale_grad_by_freq", function()
    local ids = ml.tensor({{1, 3, 1}, {0, 3, 3}}, {dtype = "int64"})
    -- (a padding id that occurs has a zero gradient by design, not the derivative:
    -- layers_fixture_spec checks that row against PyTorch)
    T.gradcheck(function(w) return F.embedding(ids, w, {padding_idx = 2}) end, {f64({4, 3})})
    -- scale_grad_by_freq divides by the counts on purpose (not a derivative): the
    -- plain gradient over the counts
    local w = f64({5, 2})
    F.embedding(ids, w, {scale_grad_by_freq = true}):sum():backward()
    T.assert_close(w.grad, ml.tensor({{1, 1}, {1, 1}, {0, 0}, {1, 1}, {0, 0}}, {dtype = "float64"}))
  end)

  it("scaled_dot_product_attention: q, k, v and a float mask; causal; a boolean mask", function()
    local q, k, v, m = f64({2, 3, 4}), f64({2, 5, 4}), f64({2, 5, 2}), f64({3, 5})
    T.gradcheck(function(a, b, c, d) return F.scaled_dot_product_attention(a, b, c, {attn_mask = d}) end,
                {q, k, v, m})
    T.gradcheck(function(a, b, c) return F.scaled_dot_product_attention(a, b, c, {is_causal = true, scale = 0.7}) end,
                {f64({1, 4, 3}), f64({1, 4, 3}), f64({1, 4, 2})})
    local bm = ml.tensor({{1, 0, 1, 1, 0}, {1, 1, 0, 0, 0}, {0, 0, 0, 1, 1}}):gt(0)
    T.gradcheck(function(a, b, c) return F.scaled_dot_product_attention(a, b, c, {attn_mask = bm}) end,
                {f64({2, 3, 4}), f64({2, 5, 4}), f64({2, 5, 2})})
  end)

  it("a whole TransformerEncoderLayer (float64, dropout 0, pre-norm and post-norm)", function()
    for _, norm_first in ipairs({false, true}) do
      local layer = nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 6, dropout = 0.0, batch_first = true,
                                                      norm_first = norm_first, dtype = "float64"})
      T.gradcheck(function(x) return layer(x) end, {f64({2, 3, 4})})
    end
  end)
end)

describe("bad input", function()
  it("layer_norm names the shapes", function()
    local e = err(F.layer_norm, ml.randn({2, 3}), {4})
    assert.matches("layer_norm: input of shape [2, 3] does not end with normalized_shape [4]", e, 1, true)
    e = err(F.layer_norm, ml.randn({2, 4}), {4}, {weight = ml.ones({3})})
    assert.matches("layer_norm: weight of shape [3], expected [4]", e, 1, true)
    e = err(F.layer_norm, ml.randn({2, 4}), "x")
    assert.matches("layer_norm: normalized_shape must be an array of sizes", e, 1, true)
    e = err(F.layer_norm, ml.randn({2, 4}), {4}, {epsilon = 1})
    assert.matches("layer_norm: unknown option 'epsilon'", e, 1, true)
    e = err(F.layer_norm, ml.tensor({1, 2}, {dtype = "int64"}), {2})
    assert.matches("layer_norm: expected a float32 or float64 input, got int64", e, 1, true)
  end)

  it("group_norm names groups, channels and shapes", function()
    local e = err(F.group_norm, ml.randn({2, 6, 5}), 4)
    assert.matches("group_norm: num_groups 4 must divide the 6 channels of the input of shape [2, 6, 5]", e, 1, true)
    e = err(F.group_norm, ml.randn({6}), 2)
    assert.matches("group_norm: expected an input of shape [N, C, *] (at least 2 dims), got [6]", e, 1, true)
    e = err(F.group_norm, ml.randn({2, 6}), 3, {bias = ml.zeros({3})})
    assert.matches("group_norm: bias of shape [3], expected [6]", e, 1, true)
  end)

  it("embedding names the id and num_embeddings", function()
    local w = ml.randn({10, 3})
    local e = err(F.embedding, ml.tensor({{1, 12}}, {dtype = "int64"}), w)
    assert.matches("embedding: id 12 out of range for num_embeddings 10", e, 1, true)
    e = err(F.embedding, ml.tensor({-1}, {dtype = "int64"}), w)
    assert.matches("embedding: id -1 out of range for num_embeddings 10", e, 1, true)
    e = err(F.embedding, ml.tensor({1, 2}), w)
    assert.matches("embedding: ids must be an int64 tensor of 0-based ids, got float32", e, 1, true)
    e = err(F.embedding, ml.tensor({1}, {dtype = "int64"}), w, {padding_idx = 10})
    assert.matches("embedding: padding_idx 10 must be within num_embeddings 10", e, 1, true)
    e = err(function() return nn.Embedding(5, 2)(ml.tensor({5}, {dtype = "int64"})) end)
    assert.matches("Embedding(5, 2) got input [1]: embedding: id 5 out of range for num_embeddings 5", e, 1, true)
  end)

  it("scaled_dot_product_attention names the shapes of a mask that does not broadcast", function()
    local q, k = ml.randn({2, 3, 4}), ml.randn({2, 5, 4})
    local e = err(F.scaled_dot_product_attention, q, k, k, {attn_mask = ml.zeros({3, 4})})
    assert.matches("scaled_dot_product_attention: attn_mask of shape [3, 4] does not broadcast to the attention "
                   .. "weights' shape [2, 3, 5] (q [2, 3, 4], k [2, 5, 4])", e, 1, true)
    e = err(F.scaled_dot_product_attention, q, ml.randn({2, 5, 3}), k)
    assert.matches("q of shape [2, 3, 4] and k of shape [2, 5, 3] differ in their last dim", e, 1, true)
    e = err(F.scaled_dot_product_attention, q, k, ml.randn({2, 6, 4}))
    assert.matches("k of shape [2, 5, 4] and v of shape [2, 6, 4] differ", e, 1, true)
    e = err(F.scaled_dot_product_attention, q, k, k, {attn_mask = ml.zeros({3, 5}), is_causal = true})
    assert.matches("give attn_mask or is_causal, not both", e, 1, true)
    e = err(F.scaled_dot_product_attention, q, k, k, {dropout_p = 1.5})
    assert.matches("dropout_p must be in [0, 1], got 1.5", e, 1, true)
  end)

  it("modules say what they expected", function()
    assert.matches("num_channels %(6%) must be divisible by num_groups %(4%)", err(nn.GroupNorm, 4, 6))
    assert.matches("embed_dim %(10%) must be divisible by num_heads %(3%)", err(nn.MultiheadAttention, 10, 3))
    local e = err(function() return nn.LayerNorm(4)(ml.randn({2, 3})) end)
    assert.matches("LayerNorm((4,), eps=1e-05, elementwise_affine=True) got input [2, 3]", e, 1, true)
    local mha = nn.MultiheadAttention(4, 2)
    e = err(function() return mha(ml.randn({3, 2, 4}), ml.randn({3, 2, 4}), ml.randn({3, 2, 4}),
                                 {key_padding_mask = ml.zeros({2, 4}):gt(0)}) end)
    assert.matches("key_padding_mask has shape [2, 4], expected [2, 3] ([N, S])", e, 1, true)
    e = err(function() return mha(ml.randn({3, 2, 4}), ml.randn({3, 2, 4}), ml.randn({3, 2, 4}),
                                 {attn_mask = ml.zeros({3, 2})}) end)
    assert.matches("the 2-D attn_mask has shape [3, 2], expected [3, 3] ([L, S])", e, 1, true)
    e = err(nn.TransformerEncoderLayer, 8, 2, {activation = "swish"})
    assert.matches("activation must be \"relu\", \"gelu\", a function or a module", e, 1, true)
  end)
end)

describe("modules", function()
  it("have PyTorch's parameter names, shapes, init and reprs", function()
    ml.manual_seed(1)
    local ln = nn.LayerNorm({3, 4}, {eps = 1e-6})
    assert.are.equal("LayerNorm((3, 4), eps=1e-06, elementwise_affine=True)", tostring(ln))
    assert.are.equal(12.0, ln.weight:sum():item())
    assert.are.equal(0.0, ln.bias:sum():item())
    assert.are.equal("LayerNorm((5,), eps=1e-05, elementwise_affine=False)",
                     tostring(nn.LayerNorm(5, {elementwise_affine = false})))
    assert.are.equal(0, #nn.LayerNorm(5, {elementwise_affine = false}):parameters())
    assert.are.equal("GroupNorm(2, 6, eps=1e-05, affine=True)", tostring(nn.GroupNorm(2, 6)))
    local emb = nn.Embedding(1000, 16, {padding_idx = -1})
    assert.are.equal("Embedding(1000, 16, padding_idx=999)", tostring(emb))
    assert.are.equal(0.0, emb.weight[1000]:abs():sum():item())
    local w = emb.weight:narrow(1, 1, 999)
    local mean = w:mean():item()
    local var = ((w - mean) ^ 2):mean():item()
    assert.is_true(math.abs(mean) < 0.05 and math.abs(var - 1) < 0.05, "N(0, 1) init")
    local mha = nn.MultiheadAttention(8, 2)
    local names = {}
    for n, p in mha:named_parameters() do names[#names + 1] = n .. "=" .. table.concat(p:shape(), "x") end
    assert.are.same({"in_proj_weight=24x8", "in_proj_bias=24", "out_proj.weight=8x8", "out_proj.bias=8"}, names)
    assert.are.equal(0.0, mha.in_proj_bias:abs():sum():item())
    assert.are.equal(0.0, mha.out_proj.bias:abs():sum():item())
    local bound = math.sqrt(6 / (8 + 24)) -- xavier_uniform on [24, 8]
    assert.is_true(mha.in_proj_weight:abs():max():item() <= bound)
    assert.is_true(mha.in_proj_weight:abs():max():item() > 0.8 * bound)
    local kv = nn.MultiheadAttention(8, 2, {kdim = 3, vdim = 5, add_bias_kv = true, bias = false})
    names = {}
    for n in kv:named_parameters() do names[#names + 1] = n end
    assert.are.same({"q_proj_weight", "k_proj_weight", "v_proj_weight", "bias_k", "bias_v", "out_proj.weight"},
                    names)
    assert.is_nil(kv.in_proj_weight)
  end)

  it("TransformerEncoder clones its layer: same weights, separate tensors", function()
    local layer = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 12})
    local enc = nn.TransformerEncoder(layer, 3)
    assert.are.equal(3, #enc.layers)
    local a, b = enc.layers[1].linear1.weight, enc.layers[3].linear1.weight
    T.assert_close(a, layer.linear1.weight)
    T.assert_close(b, layer.linear1.weight)
    ml.no_grad(function() a:fill_(0) end)
    assert.is_true(b:abs():sum():item() > 0, "a layer's weight is its own")
    assert.is_true(a.requires_grad and a.is_leaf)
    assert.are.equal(0.1, enc.layers[2].dropout.p)
    assert.are.equal(3 * 12, #enc:parameters())
  end)

  it("dropout acts in train mode only; eval is deterministic", function()
    local layer = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0.5, batch_first = true})
    local x = ml.randn({2, 5, 8})
    layer:eval()
    T.assert_close(layer(x), layer(x), {rtol = 0, atol = 0})
    layer:train()
    local a, b = layer(x), layer(x)
    assert.is_true((a - b):abs():max():item() > 1e-3, "training draws new dropout masks")
    local mha = nn.MultiheadAttention(8, 2, {dropout = 0.5, batch_first = true})
    mha:eval()
    local o1, w1 = mha(x, x, x)
    local o2 = mha(x, x, x)
    T.assert_close(o1, o2, {rtol = 0, atol = 0})
    T.assert_close(w1:sum(-1), ml.ones({2, 5}), {rtol = 1e-6, atol = 1e-6})
  end)

  it("sdpa dropout keeps the expectation and zeroes about p of the weights", function()
    ml.manual_seed(7)
    local q, k = ml.randn({4, 32, 8}), ml.randn({4, 32, 8})
    local v = ml.eye(32):view({1, 32, 32}):expand({4, 32, 32})
    local plain = F.scaled_dot_product_attention(q, k, v)
    local p = 0.25
    local sum = ml.zeros({4, 32, 32})
    local zeros = 0
    for _ = 1, 20 do
      local out = F.scaled_dot_product_attention(q, k, v, {dropout_p = p})
      zeros = zeros + out:eq(0):float():mean():item()
      sum = sum + out
    end
    assert.is_true(math.abs(zeros / 20 - p) < 0.02, "dropped fraction " .. zeros / 20)
    assert.is_true(((sum / 20) - plain):abs():mean():item() < 0.01)
    assert.are.equal(0.0, F.scaled_dot_product_attention(q, k, v, {dropout_p = 1}):abs():sum():item())
  end)

  it("a fully masked query row gives NaN, as PyTorch 2's math path", function()
    local q = ml.randn({2, 3})
    local m = ml.tensor({{1, 1}, {0, 0}}):gt(0)
    local out = F.scaled_dot_product_attention(q, ml.randn({2, 3}), ml.randn({2, 3}), {attn_mask = m})
    assert.are.equal(3, out[2]:ne(out[2]):sum():item())
    assert.are.equal(0, out[1]:ne(out[1]):sum():item())
  end)

  it("the is_causal option of TransformerEncoderLayer equals an explicit causal mask", function()
    local layer = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0.0, batch_first = true})
    local x = ml.randn({2, 5, 8})
    local cols = ml.arange(5, {dtype = "int64"}):view({1, 5})
    local rows = ml.arange(5, {dtype = "int64"}):view({5, 1})
    local mask = ml.where(cols:gt(rows), -math.huge, 0)
    T.assert_close(layer(x, {is_causal = true}), layer(x, mask), {rtol = 1e-6, atol = 1e-6})
  end)
end)

describe("edge cases", function()
  it("no rows, no ids, only padding ids", function()
    local x = ml.zeros({0, 5}):requires_grad_(true)
    local w, b = ml.ones({5}):requires_grad_(true), ml.zeros({5}):requires_grad_(true)
    local y = F.layer_norm(x, {5}, {weight = w, bias = b})
    assert.are.same({0, 5}, y:shape())
    y:sum():backward()
    assert.are.same({0, 5}, x.grad:shape())
    T.assert_close(w.grad, ml.zeros({5}))
    T.assert_close(b.grad, ml.zeros({5}))
    local e = ml.randn({4, 3}):requires_grad_(true)
    local none = F.embedding(ml.zeros({0}, {dtype = "int64"}), e)
    assert.are.same({0, 3}, none:shape())
    none:sum():backward()
    T.assert_close(e.grad, ml.zeros({4, 3}))
    e.grad = nil
    F.embedding(ml.full({2, 3}, 1, {dtype = "int64"}), e, {padding_idx = 1}):sum():backward()
    T.assert_close(e.grad, ml.zeros({4, 3}))
    assert.are.same({3}, F.embedding(ml.tensor(2, {dtype = "int64"}), e):shape())
  end)
end)

describe("many rows", function()
  it("float32 weight and bias gradients over more than 64 row blocks match float64", function()
    -- [2000, 600]: 28 rows a block would make 72 blocks; the cap makes 63 of 32 rows
    ml.manual_seed(4)
    local x = ml.randn({2000, 600})
    local g = ml.randn({2000, 600})
    local function grads(dtype)
      local xx = x:to(dtype):detach():requires_grad_(true)
      local w = ml.ones({600}, {dtype = dtype}):requires_grad_(true)
      local b = ml.zeros({600}, {dtype = dtype}):requires_grad_(true)
      F.layer_norm(xx, {600}, {weight = w, bias = b}):backward(g:to(dtype))
      return xx.grad, w.grad, b.grad
    end
    local a = table.pack(grads("float32"))
    local d = table.pack(grads("float64"))
    for i = 1, 3 do T.assert_close(a[i]:double(), d[i], {rtol = 1e-4, atol = 1e-4}) end
  end)
end)

describe("determinism", function()
  it("norm and embedding gradients do not depend on the thread count", function()
    local function run()
      ml.manual_seed(11)
      local x = ml.randn({512, 96}, {requires_grad = true})
      local w, b = ml.randn({96}, {requires_grad = true}), ml.randn({96}, {requires_grad = true})
      local y = F.layer_norm(x, {96}, {weight = w, bias = b})
      local g = F.group_norm(x:view({64, 8, 96}), 4, {weight = ml.ones({8}), bias = ml.zeros({8})})
      local ids = (ml.rand({4000}) * 50):long()
      local e = ml.randn({50, 96}, {requires_grad = true})
      local z = F.embedding(ids, e);
      ((y * y):sum() + (g * g):sum() + z:sum() * 0.5 + (z * z):sum()):backward()
      return {x.grad, w.grad, b.grad, e.grad}
    end
    local saved = ml.get_num_threads()
    ml.set_num_threads(1)
    local one = run()
    ml.set_num_threads(3)
    local two = run()
    ml.set_num_threads(saved)
    for i = 1, #one do T.assert_close(two[i], one[i], {rtol = 0, atol = 0}) end
  end)
end)
