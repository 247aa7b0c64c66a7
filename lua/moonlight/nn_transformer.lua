-- The layers of issue 16's Transformer part, added to ml.nn by nn.lua:
-- nn.LayerNorm, nn.GroupNorm, nn.Embedding, nn.MultiheadAttention,
-- nn.TransformerEncoderLayer, nn.TransformerEncoder and nn.ModuleList (which the
-- encoder holds its layers in), plus the nn.init functions they use. PyTorch's
-- constructor arguments, parameter and buffer names, initialisation and
-- train()/eval() behaviour, so state dicts move between the two. The math is
-- one C call per op (F.layer_norm, F.embedding, F.scaled_dot_product_attention,
-- F.linear); this file is bookkeeping.
--
-- Loaded as `require("moonlight.nn_transformer")(nn)` at the end of nn.lua (a
-- function of nn, since nn is still loading then).
local core = require "moonlight.core"
local util = require "moonlight.util"

return function(nn)
  local Module = nn.Module
  local is_tensor, is_module = core.is_tensor, nn.is_module
  local check_options = util.check_options
  local pyfloat = util.format_number
  local guarded = nn._guarded

  local function pybool(b) return b and "True" or "False" end
  local function shape_str(x)
    if not is_tensor(x) then return type(x) end
    return "[" .. table.concat(x:shape(), ", ") .. "]"
  end
  -- a Lua array of sizes as Python prints a tuple: (256,) or (3, 4)
  local function pytuple(t)
    if #t == 1 then return "(" .. t[1] .. ",)" end
    return "(" .. table.concat(t, ", ") .. ")"
  end
  local function check_positive(fname, what, v, level)
    if math.type(v) ~= "integer" or v <= 0 then
      error(("%s: %s must be a positive integer, got %s"):format(fname, what, tostring(v)), level or 4)
    end
  end
  local function factory(opts) return {dtype = opts.dtype, device = opts.device} end

  ----------------------------------------------------------------------------
  -- nn.init: the functions these layers need (kept if nn.lua already has them)
  ----------------------------------------------------------------------------

  local init = nn.init
  -- fan_in, fan_out of a weight as PyTorch computes them (dims 1 and 2 times the
  -- receptive field, the product of the rest)
  local function fans(t, fname)
    local s = t:shape()
    if #s < 2 then error(("%s: fan in and fan out need a tensor with at least 2 dims"):format(fname), 3) end
    local recept = 1
    for i = 3, #s do recept = recept * s[i] end
    return s[2] * recept, s[1] * recept
  end

  init.normal_ = init.normal_ or function(t, mean, std)
    mean, std = mean or 0, std or 1
    core.no_grad(function()
      t:copy_(core.randn(t:shape(), {dtype = t.dtype}) * std + mean)
    end)
    return t
  end
  init.ones_ = init.ones_ or function(t)
    core.no_grad(function() t:fill_(1) end)
    return t
  end
  -- U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))
  init.xavier_uniform_ = init.xavier_uniform_ or function(t, gain)
    local fi, fo = fans(t, "xavier_uniform_")
    local a = (gain or 1) * math.sqrt(6 / (fi + fo))
    return init.uniform_(t, -a, a)
  end
  -- N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))
  init.xavier_normal_ = init.xavier_normal_ or function(t, gain)
    local fi, fo = fans(t, "xavier_normal_")
    return init.normal_(t, 0, (gain or 1) * math.sqrt(2 / (fi + fo)))
  end

  ----------------------------------------------------------------------------
  -- a deep copy of a module (copy.deepcopy of torch, which TransformerEncoder's
  -- _get_clones uses): parameters and buffers copied, children copied, plain
  -- fields copied (tables deeply, functions by reference)
  ----------------------------------------------------------------------------

  local function copy_value(v, memo)
    if type(v) ~= "table" then return v end
    if memo[v] then return memo[v] end
    if is_module(v) then return nn._deepcopy(v, memo) end
    local c = {}
    memo[v] = c
    for k, x in next, v do c[copy_value(k, memo)] = copy_value(x, memo) end
    return setmetatable(c, getmetatable(v))
  end

  local function copy_tensor(t, memo)
    if memo[t] then return memo[t] end
    local c = core.no_grad(function() return t:clone() end)
    memo[t] = c
    return c
  end

  function nn._deepcopy(m, memo)
    memo = memo or {}
    if memo[m] then return memo[m] end
    local c = setmetatable({}, getmetatable(m))
    memo[m] = c
    for k, v in next, m do
      if k ~= "_params" and k ~= "_buffers" and k ~= "_modules" then
        rawset(c, k, is_tensor(v) and copy_tensor(v, memo) or copy_value(v, memo))
      end
    end
    local params, buffers, modules = {names = {}, map = {}}, {names = {}, map = {}}, {names = {}, map = {}}
    rawset(c, "_params", params)
    rawset(c, "_buffers", buffers)
    rawset(c, "_modules", modules)
    for _, name in ipairs(rawget(m, "_params").names) do
      local p = rawget(m, "_params").map[name]
      local q = memo[p] or nn.Parameter(copy_tensor(p, memo), p.requires_grad)
      memo[p] = q
      params.names[#params.names + 1] = name
      params.map[name] = q
    end
    for _, name in ipairs(rawget(m, "_buffers").names) do
      buffers.names[#buffers.names + 1] = name
      buffers.map[name] = copy_tensor(rawget(m, "_buffers").map[name], memo)
    end
    for _, name in ipairs(rawget(m, "_modules").names) do
      modules.names[#modules.names + 1] = name
      modules.map[name] = nn._deepcopy(rawget(m, "_modules").map[name], memo)
    end
    return c
  end

  ----------------------------------------------------------------------------
  -- nn.ModuleList(modules): children "0", "1", ... (state dict keys
  -- "layers.0.weight" as PyTorch); list[i] is the i-th, 1-based; #list
  ----------------------------------------------------------------------------

  local ModuleList = nn.ModuleList or Module:extend("ModuleList")
  if not rawget(nn, "ModuleList") then
    nn.ModuleList = ModuleList
    function ModuleList:init(modules)
      if modules ~= nil and (type(modules) ~= "table" or is_module(modules)) then
        error(("nn.ModuleList: expected an array of modules, got %s"):format(type(modules)), 3)
      end
      for i, m in ipairs(modules or {}) do
        if not is_module(m) then
          error(("nn.ModuleList: entry %d is a %s, expected an nn.Module"):format(i, type(m)), 3)
        end
        self[tostring(i - 1)] = m
      end
    end
    function ModuleList:forward()
      error("ModuleList: a ModuleList has no forward (call its modules)", 2)
    end
    nn._module_list(ModuleList) -- append, ml[i], #ml: as Sequential's
  end

  ----------------------------------------------------------------------------
  -- nn.LayerNorm(normalized_shape, {eps = 1e-5, elementwise_affine = true,
  -- bias = true, dtype, device}): weight ones, bias zeros, of normalized_shape
  ----------------------------------------------------------------------------

  local layer_norm, group_norm = core.layer_norm, core.group_norm

  local LayerNorm = Module:extend("LayerNorm")
  nn.LayerNorm = LayerNorm
  function LayerNorm:init(normalized_shape, opts)
    if math.type(normalized_shape) == "integer" then normalized_shape = {normalized_shape} end
    if type(normalized_shape) ~= "table" or is_tensor(normalized_shape) or #normalized_shape == 0 then
      error(("nn.LayerNorm: normalized_shape must be a size or an array of sizes, got %s")
            :format(tostring(normalized_shape)), 3)
    end
    local shape = {}
    for i, d in ipairs(normalized_shape) do
      if math.type(d) ~= "integer" or d < 0 then
        error(("nn.LayerNorm: normalized_shape[%d] must be a non-negative integer, got %s"):format(i, tostring(d)), 3)
      end
      shape[i] = d
    end
    opts = check_options("nn.LayerNorm", opts, {eps = "number", elementwise_affine = "boolean",
                                                bias = "boolean", dtype = "string", device = "string"})
    self.normalized_shape, self.eps = shape, opts.eps or 1e-5
    self.elementwise_affine = opts.elementwise_affine ~= false
    if self.elementwise_affine then
      self.weight = nn.Parameter(core.ones(shape, factory(opts)))
      if opts.bias ~= false then self.bias = nn.Parameter(core.zeros(shape, factory(opts)))
      else self:register_parameter("bias", nil) end
    else
      self:register_parameter("weight", nil)
      self:register_parameter("bias", nil)
    end
  end
  function LayerNorm:forward(x)
    local p = rawget(self, "_params").map
    return guarded(self, layer_norm, x, self.normalized_shape, {weight = p.weight, bias = p.bias, eps = self.eps})
  end
  function LayerNorm:extra_repr()
    return ("%s, eps=%s, elementwise_affine=%s"):format(pytuple(self.normalized_shape), pyfloat(self.eps),
                                                        pybool(self.elementwise_affine))
  end

  ----------------------------------------------------------------------------
  -- nn.GroupNorm(num_groups, num_channels, {eps = 1e-5, affine = true, dtype, device})
  ----------------------------------------------------------------------------

  local GroupNorm = Module:extend("GroupNorm")
  nn.GroupNorm = GroupNorm
  function GroupNorm:init(num_groups, num_channels, opts)
    check_positive("nn.GroupNorm", "num_groups", num_groups)
    check_positive("nn.GroupNorm", "num_channels", num_channels)
    if num_channels % num_groups ~= 0 then
      error(("nn.GroupNorm: num_channels (%d) must be divisible by num_groups (%d)"):format(num_channels,
            num_groups), 3)
    end
    opts = check_options("nn.GroupNorm", opts, {eps = "number", affine = "boolean", dtype = "string",
                                                device = "string"})
    self.num_groups, self.num_channels, self.eps = num_groups, num_channels, opts.eps or 1e-5
    self.affine = opts.affine ~= false
    if self.affine then
      self.weight = nn.Parameter(core.ones({num_channels}, factory(opts)))
      self.bias = nn.Parameter(core.zeros({num_channels}, factory(opts)))
    else
      self:register_parameter("weight", nil)
      self:register_parameter("bias", nil)
    end
  end
  function GroupNorm:forward(x)
    local p = rawget(self, "_params").map
    return guarded(self, group_norm, x, self.num_groups, {weight = p.weight, bias = p.bias, eps = self.eps})
  end
  function GroupNorm:extra_repr()
    return ("%d, %d, eps=%s, affine=%s"):format(self.num_groups, self.num_channels, pyfloat(self.eps),
                                                pybool(self.affine))
  end

  ----------------------------------------------------------------------------
  -- nn.Embedding(num_embeddings, embedding_dim, {padding_idx, scale_grad_by_freq,
  -- sparse = false, _weight, dtype, device}): weight N(0, 1), the padding row zero
  ----------------------------------------------------------------------------

  local embedding = core.embedding

  local Embedding = Module:extend("Embedding")
  nn.Embedding = Embedding
  local embedding_options = {padding_idx = "integer", scale_grad_by_freq = "boolean", sparse = "boolean",
                             max_norm = "number", norm_type = "number", _weight = "tensor",
                             dtype = "string", device = "string"}
  function Embedding:init(num_embeddings, embedding_dim, opts)
    check_positive("nn.Embedding", "num_embeddings", num_embeddings)
    if math.type(embedding_dim) ~= "integer" or embedding_dim < 0 then
      error(("nn.Embedding: embedding_dim must be a non-negative integer, got %s"):format(tostring(embedding_dim)), 3)
    end
    opts = check_options("nn.Embedding", opts, embedding_options)
    if opts.max_norm ~= nil then
      error("nn.Embedding: max_norm is not supported (it renormalises the weight in place during forward)", 3)
    end
    if opts.sparse then error("nn.Embedding: sparse gradients are not supported (sparse = false)", 3) end
    local pad = opts.padding_idx
    if pad ~= nil then
      if pad >= num_embeddings or pad < -num_embeddings then
        error(("nn.Embedding: padding_idx %d must be within num_embeddings %d (%d..%d)"):format(pad,
              num_embeddings, -num_embeddings, num_embeddings - 1), 3)
      end
      if pad < 0 then pad = num_embeddings + pad end
    end
    self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, pad
    self.scale_grad_by_freq, self.sparse = opts.scale_grad_by_freq == true, false
    self.max_norm, self.norm_type = nil, opts.norm_type or 2.0
    local w = opts._weight
    if w ~= nil then
      local s = w:shape()
      if #s ~= 2 or s[1] ~= num_embeddings or s[2] ~= embedding_dim then
        error(("nn.Embedding: _weight of shape %s, expected [%d, %d]"):format(shape_str(w), num_embeddings,
              embedding_dim), 3)
      end
      self.weight = nn.Parameter(w)
    else
      w = init.normal_(core.zeros({num_embeddings, embedding_dim}, {dtype = opts.dtype}))
      if pad ~= nil then core.no_grad(function() w:select(1, pad + 1):zero_() end) end
      if opts.device then w = w:to(opts.device) end
      self.weight = nn.Parameter(w)
    end
  end
  function Embedding:forward(ids)
    return guarded(self, embedding, ids, rawget(self, "_params").map.weight,
                   {padding_idx = self.padding_idx, scale_grad_by_freq = self.scale_grad_by_freq})
  end
  function Embedding:extra_repr()
    local s = ("%d, %d"):format(self.num_embeddings, self.embedding_dim)
    if self.padding_idx ~= nil then s = s .. (", padding_idx=%d"):format(self.padding_idx) end
    if self.scale_grad_by_freq then s = s .. ", scale_grad_by_freq=True" end
    return s
  end
  -- nn.Embedding.from_pretrained(weight, {freeze = true, padding_idx, scale_grad_by_freq})
  function Embedding.from_pretrained(weight, opts)
    if not is_tensor(weight) or weight:dim() ~= 2 then
      error(("nn.Embedding.from_pretrained: expected a 2-D weight, got %s"):format(shape_str(weight)), 2)
    end
    opts = check_options("nn.Embedding.from_pretrained", opts, {freeze = "boolean", padding_idx = "integer",
                                                               scale_grad_by_freq = "boolean"})
    local s = weight:shape()
    local e = Embedding(s[1], s[2], {_weight = weight, padding_idx = opts.padding_idx,
                                     scale_grad_by_freq = opts.scale_grad_by_freq})
    e.weight.requires_grad = opts.freeze == false
    return e
  end

  ----------------------------------------------------------------------------
  -- nn.MultiheadAttention(embed_dim, num_heads, {dropout = 0, bias = true,
  -- add_bias_kv = false, add_zero_attn = false, kdim, vdim, batch_first = false,
  -- dtype, device}); forward(query, key, value, {key_padding_mask, need_weights =
  -- true, attn_mask, average_attn_weights = true, is_causal}) returns the output
  -- and the attention weights (nil when need_weights is false), as torch 1.13's.
  ----------------------------------------------------------------------------

  local linear, attention = core.linear, core._attention

  local NDQLinear = nn.Linear:extend("NonDynamicallyQuantizableLinear")

  local MultiheadAttention = Module:extend("MultiheadAttention")
  nn.MultiheadAttention = MultiheadAttention
  local mha_options = {dropout = "number", bias = "boolean", add_bias_kv = "boolean", add_zero_attn = "boolean",
                       kdim = "integer", vdim = "integer", batch_first = "boolean", dtype = "string",
                       device = "string"}

  function MultiheadAttention:init(embed_dim, num_heads, opts)
    local fname = "nn.MultiheadAttention"
    check_positive(fname, "embed_dim", embed_dim)
    check_positive(fname, "num_heads", num_heads)
    opts = check_options(fname, opts, mha_options)
    if embed_dim % num_heads ~= 0 then
      error(("%s: embed_dim (%d) must be divisible by num_heads (%d)"):format(fname, embed_dim, num_heads), 3)
    end
    local p = opts.dropout or 0
    if p < 0 or p > 1 then error(("%s: dropout must be a probability in [0, 1], got %s"):format(fname, p), 3) end
    self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, p
    self.kdim, self.vdim = opts.kdim or embed_dim, opts.vdim or embed_dim
    self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
    self.batch_first, self.head_dim = opts.batch_first == true, embed_dim // num_heads
    local f = {dtype = opts.dtype}
    if self._qkv_same_embed_dim then
      self.in_proj_weight = nn.Parameter(core.zeros({3 * embed_dim, embed_dim}, f))
      self:register_parameter("q_proj_weight", nil)
      self:register_parameter("k_proj_weight", nil)
      self:register_parameter("v_proj_weight", nil)
    else
      self.q_proj_weight = nn.Parameter(core.zeros({embed_dim, embed_dim}, f))
      self.k_proj_weight = nn.Parameter(core.zeros({embed_dim, self.kdim}, f))
      self.v_proj_weight = nn.Parameter(core.zeros({embed_dim, self.vdim}, f))
      self:register_parameter("in_proj_weight", nil)
    end
    local bias = opts.bias ~= false
    if bias then self.in_proj_bias = nn.Parameter(core.zeros({3 * embed_dim}, f))
    else self:register_parameter("in_proj_bias", nil) end
    self.out_proj = NDQLinear(embed_dim, embed_dim, {bias = bias, dtype = opts.dtype})
    if opts.add_bias_kv then
      self.bias_k = nn.Parameter(core.zeros({1, 1, embed_dim}, f))
      self.bias_v = nn.Parameter(core.zeros({1, 1, embed_dim}, f))
    end
    self.add_zero_attn = opts.add_zero_attn == true
    -- PyTorch's _reset_parameters
    local pm = rawget(self, "_params").map
    if self._qkv_same_embed_dim then init.xavier_uniform_(pm.in_proj_weight)
    else
      init.xavier_uniform_(pm.q_proj_weight)
      init.xavier_uniform_(pm.k_proj_weight)
      init.xavier_uniform_(pm.v_proj_weight)
    end
    if pm.in_proj_bias then
      init.constant_(pm.in_proj_bias, 0)
      init.constant_(self.out_proj.bias, 0)
    end
    if pm.bias_k then
      init.xavier_normal_(pm.bias_k)
      init.xavier_normal_(pm.bias_v)
    end
    if opts.device then self:to(opts.device) end
  end

  local mha_forward_options = {key_padding_mask = "tensor", need_weights = "boolean", attn_mask = "tensor",
                               average_attn_weights = "boolean", is_causal = "boolean"}

  -- a mask as an additive float mask of dtype dt: a boolean (uint8) one is -inf
  -- where it is 1 (PyTorch's MultiheadAttention: True = not allowed to attend)
  local function additive(mask, dt)
    if mask.dtype == "uint8" then
      local opts = {dtype = dt, device = mask.device}
      return core.where(mask, core.full({}, -math.huge, opts), core.zeros({}, opts))
    end
    if mask.dtype ~= "float32" and mask.dtype ~= "float64" then
      error(("masks must be boolean (uint8) or float, got %s"):format(mask.dtype), 0)
    end
    return mask.dtype == dt and mask or mask:to(dt)
  end

  -- t [.., n] with a zero appended on the last dim (a mask for one more key)
  local function pad_last(t)
    local s = t:shape()
    s[#s] = 1
    return core.cat({t, core.zeros(s, {dtype = t.dtype, device = t.device})}, -1)
  end

  -- The in-projection: q, k, v [N, L|S, E] from the batch-first inputs, one
  -- product for self-attention (query, key and value the same tensor), else one per input
  local function in_projection(self, query, key, value)
    local pm = rawget(self, "_params").map
    local e, b = self.embed_dim, pm.in_proj_bias
    local function bias_part(i) return b and b:narrow(1, i * e + 1, e) or nil end
    if self._qkv_same_embed_dim then
      local w = pm.in_proj_weight
      if query == key and key == value then
        local qkv = linear(query, w, b)
        return qkv:narrow(-1, 1, e), qkv:narrow(-1, e + 1, e), qkv:narrow(-1, 2 * e + 1, e)
      end
      local function wpart(i) return w:narrow(1, i * e + 1, e) end
      return linear(query, wpart(0), bias_part(0)), linear(key, wpart(1), bias_part(1)),
             linear(value, wpart(2), bias_part(2))
    end
    return linear(query, pm.q_proj_weight, bias_part(0)), linear(key, pm.k_proj_weight, bias_part(1)),
           linear(value, pm.v_proj_weight, bias_part(2))
  end

  local function mha_forward(self, query, key, value, opts)
    local fname = "MultiheadAttention"
    opts = check_options(fname, opts, mha_forward_options)
    if not is_tensor(query) or not is_tensor(key) or not is_tensor(value) then
      error(("query, key and value must be tensors, got %s, %s and %s"):format(type(query), type(key),
            type(value)), 0)
    end
    local batched = query:dim() == 3
    if not batched and query:dim() ~= 2 then
      error(("query must be [L, E] (unbatched) or 3-D (batched), got %s"):format(shape_str(query)), 0)
    end
    if key:dim() ~= query:dim() or value:dim() ~= query:dim() then
      error(("query %s, key %s and value %s must have the same number of dims"):format(shape_str(query),
            shape_str(key), shape_str(value)), 0)
    end
    local kpm = opts.key_padding_mask
    -- everything below works batch first: [N, L, E]
    local same_kv, same_qk = key == value, query == key
    if not batched then
      query, key, value = query:unsqueeze(1), key:unsqueeze(1), value:unsqueeze(1)
      if kpm then kpm = kpm:unsqueeze(1) end
    elseif not self.batch_first then
      query, key, value = query:transpose(1, 2), key:transpose(1, 2), value:transpose(1, 2)
    end
    if same_qk and same_kv then key, value = query, query elseif same_kv then value = key end
    local qs, ks = query:shape(), key:shape()
    local n, l, s, e, h = qs[1], qs[2], ks[2], self.embed_dim, self.num_heads
    if qs[3] ~= e then
      error(("query of shape %s, expected embed_dim %d in its last dim"):format(shape_str(query), e), 0)
    end
    if ks[1] ~= n or value:shape()[1] ~= n or value:shape()[2] ~= s then
      error(("key %s and value %s do not match query %s (batch and source lengths)"):format(shape_str(key),
            shape_str(value), shape_str(query)), 0)
    end
    local q, k, v = in_projection(self, query, key, value)
    local dt = q.dtype
    -- masks: additive float masks broadcasting to [N, H, L, S]
    local mask = opts.attn_mask
    if opts.is_causal and opts.attn_mask == nil then
      -- the upper triangle (j > i) masked
      local rows = core.arange(l, {dtype = "int64", device = q.device}):view({l, 1})
      local cols = core.arange(s, {dtype = "int64", device = q.device}):view({1, s})
      mask = cols:gt(rows)
    end
    if mask ~= nil then
      mask = additive(mask, dt)
      if mask:dim() == 2 then
        local ms = mask:shape()
        if ms[1] ~= l or ms[2] ~= s then
          error(("the 2-D attn_mask has shape %s, expected [%d, %d] ([L, S])"):format(shape_str(mask), l, s), 0)
        end
      elseif mask:dim() == 3 then
        local ms = mask:shape()
        if ms[1] ~= n * h or ms[2] ~= l or ms[3] ~= s then
          error(("the 3-D attn_mask has shape %s, expected [%d, %d, %d] ([N * num_heads, L, S])"):format(
                shape_str(mask), n * h, l, s), 0)
        end
        mask = mask:reshape({n, h, l, s})
      else
        error(("attn_mask must be 2-D or 3-D, got %s"):format(shape_str(mask)), 0)
      end
    end
    if kpm ~= nil then
      local ks2 = kpm:shape()
      if #ks2 ~= 2 or ks2[1] ~= n or ks2[2] ~= s then
        error(("key_padding_mask has shape %s, expected [%d, %d] ([N, S])"):format(shape_str(kpm), n, s), 0)
      end
      kpm = additive(kpm, dt)
    end
    local pm = rawget(self, "_params").map
    if pm.bias_k then
      k = core.cat({k, pm.bias_k:expand({n, 1, e})}, 2)
      v = core.cat({v, pm.bias_v:expand({n, 1, e})}, 2)
      if mask then mask = pad_last(mask) end
      if kpm then kpm = pad_last(kpm) end
      s = s + 1
    end
    -- heads: [N, L, E] -> [N, H, L, hd]
    local hd = self.head_dim
    q = q:reshape({n, l, h, hd}):transpose(2, 3)
    k = k:reshape({n, s, h, hd}):transpose(2, 3)
    v = v:reshape({n, s, h, hd}):transpose(2, 3)
    if self.add_zero_attn then
      k = core.cat({k, core.zeros({n, h, 1, hd}, {dtype = dt, device = q.device})}, 3)
      v = core.cat({v, core.zeros({n, h, 1, hd}, {dtype = dt, device = q.device})}, 3)
      if mask then mask = pad_last(mask) end
      if kpm then kpm = pad_last(kpm) end
      s = s + 1
    end
    if kpm then
      kpm = kpm:view({n, 1, 1, s})
      mask = mask and mask + kpm or kpm
    end
    local p = self.training and self.dropout or 0
    local out, weights = attention(q, k, v, {attn_mask = mask, dropout_p = p})
    -- [N, H, L, hd] -> [N, L, E] -> out_proj
    out = out:transpose(2, 3):reshape({n, l, e})
    local op = rawget(self.out_proj, "_params").map
    out = linear(out, op.weight, op.bias)
    if opts.need_weights ~= false then
      if opts.average_attn_weights ~= false then weights = weights:mean(2) end
      if not batched then weights = weights:squeeze(1) end
    else
      weights = nil
    end
    if not batched then out = out:squeeze(1)
    elseif not self.batch_first then out = out:transpose(1, 2) end
    return out, weights
  end

  function MultiheadAttention:forward(query, key, value, opts)
    local ok, out, weights = pcall(mha_forward, self, query, key, value, opts)
    if ok then return out, weights end
    error(("%s got query %s: %s"):format(self:_short_name(), shape_str(query), tostring(out)), 2)
  end
  function MultiheadAttention:_short_name()
    return ("MultiheadAttention(embed_dim=%d, num_heads=%d)"):format(self.embed_dim, self.num_heads)
  end

  ----------------------------------------------------------------------------
  -- nn.TransformerEncoderLayer(d_model, nhead, {dim_feedforward = 2048, dropout =
  -- 0.1, activation = "relu" | "gelu" | a function or module, layer_norm_eps =
  -- 1e-5, batch_first = false, norm_first = false, bias = true, dtype, device});
  -- dim_feedforward, dropout and activation may also follow nhead positionally.
  -- forward(src, src_mask, src_key_padding_mask) or forward(src, {src_mask,
  -- src_key_padding_mask, is_causal}).
  ----------------------------------------------------------------------------

  local function activation_fn(act, fname)
    if act == nil or act == "relu" then return core.relu end
    if act == "gelu" then
      -- looked up at call time: ml.F.gelu comes with the activations' op list
      return function(x)
        local F = require "moonlight.functional"
        if not F.gelu then error(fname .. ": activation 'gelu' needs ml.F.gelu, which this build lacks", 0) end
        return F.gelu(x)
      end
    end
    if type(act) == "function" or is_module(act) then return act end
    error(("%s: activation must be \"relu\", \"gelu\", a function or a module, got %s"):format(fname,
          tostring(act)), 4)
  end

  local encoder_layer_options = {dim_feedforward = "integer", dropout = "number", activation = "string|function|table",
                                 layer_norm_eps = "number", batch_first = "boolean", norm_first = "boolean",
                                 bias = "boolean", dtype = "string", device = "string"}

  local TransformerEncoderLayer = Module:extend("TransformerEncoderLayer")
  nn.TransformerEncoderLayer = TransformerEncoderLayer
  function TransformerEncoderLayer:init(d_model, nhead, ...)
    local fname = "nn.TransformerEncoderLayer"
    check_positive(fname, "d_model", d_model)
    check_positive(fname, "nhead", nhead)
    -- positional dim_feedforward, dropout, activation, then an options table
    local args, opts = table.pack(...), nil
    local positional = {"dim_feedforward", "dropout", "activation"}
    local given = {}
    for i = 1, args.n do
      local a = args[i]
      if type(a) == "table" and not is_module(a) then
        if i ~= args.n then error(fname .. ": the options table must come last", 3) end
        opts = a
      elseif positional[i] then
        given[positional[i]] = a
      else
        error(("%s: unexpected argument %d (%s)"):format(fname, i + 2, tostring(a)), 3)
      end
    end
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    for k, v in pairs(given) do o[k] = v end
    o = check_options(fname, o, encoder_layer_options)
    local dff, p = o.dim_feedforward or 2048, o.dropout or 0.1
    check_positive(fname, "dim_feedforward", dff)
    local f = {dtype = o.dtype, device = o.device}
    local bias = o.bias ~= false
    self.self_attn = MultiheadAttention(d_model, nhead, {dropout = p, bias = bias, batch_first = o.batch_first,
                                                         dtype = o.dtype, device = o.device})
    self.linear1 = nn.Linear(d_model, dff, {bias = bias, dtype = f.dtype, device = f.device})
    self.dropout = nn.Dropout(p)
    self.linear2 = nn.Linear(dff, d_model, {bias = bias, dtype = f.dtype, device = f.device})
    self.norm_first = o.norm_first == true
    local eps = o.layer_norm_eps or 1e-5
    self.norm1 = nn.LayerNorm(d_model, {eps = eps, bias = bias, dtype = f.dtype, device = f.device})
    self.norm2 = nn.LayerNorm(d_model, {eps = eps, bias = bias, dtype = f.dtype, device = f.device})
    self.dropout1 = nn.Dropout(p)
    self.dropout2 = nn.Dropout(p)
    self.batch_first = o.batch_first == true
    -- a module activation is a child (as in PyTorch), a name or function a field
    self.activation = activation_fn(o.activation, fname)
  end

  -- (src_mask, src_key_padding_mask, is_causal) from forward's arguments
  local function encoder_masks(fname, a, b)
    if type(a) == "table" and not is_tensor(a) then
      local o = check_options(fname, a, {src_mask = "tensor", mask = "tensor", src_key_padding_mask = "tensor",
                                         is_causal = "boolean"})
      return o.src_mask or o.mask, o.src_key_padding_mask, o.is_causal == true
    end
    return a, b, false
  end

  function TransformerEncoderLayer:_sa_block(x, mask, kpm, causal)
    x = self.self_attn(x, x, x, {attn_mask = mask, key_padding_mask = kpm, need_weights = false,
                                 is_causal = causal and mask == nil or nil})
    return self.dropout1(x)
  end
  function TransformerEncoderLayer:_ff_block(x)
    return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
  end
  function TransformerEncoderLayer:forward(src, a, b)
    local mask, kpm, causal = encoder_masks("TransformerEncoderLayer", a, b)
    local x = src
    if self.norm_first then
      x = x + self:_sa_block(self.norm1(x), mask, kpm, causal)
      x = x + self:_ff_block(self.norm2(x))
    else
      x = self.norm1(x + self:_sa_block(x, mask, kpm, causal))
      x = self.norm2(x + self:_ff_block(x))
    end
    return x
  end

  ----------------------------------------------------------------------------
  -- nn.TransformerEncoder(encoder_layer, num_layers, norm | {norm,
  -- enable_nested_tensor, mask_check}): num_layers deep copies of encoder_layer
  -- (PyTorch's _get_clones: every layer starts with the same weights) in
  -- self.layers, then the optional norm.
  ----------------------------------------------------------------------------

  local TransformerEncoder = Module:extend("TransformerEncoder")
  nn.TransformerEncoder = TransformerEncoder
  function TransformerEncoder:init(encoder_layer, num_layers, norm)
    local fname = "nn.TransformerEncoder"
    if not is_module(encoder_layer) then
      error(("%s: encoder_layer must be an nn.Module, got %s"):format(fname, type(encoder_layer)), 3)
    end
    check_positive(fname, "num_layers", num_layers)
    if type(norm) == "table" and not is_module(norm) then
      local o = check_options(fname, norm, {norm = "table", enable_nested_tensor = "boolean", mask_check = "boolean"})
      norm = o.norm
    end
    if norm ~= nil and not is_module(norm) then
      error(("%s: norm must be an nn.Module or nil, got %s"):format(fname, type(norm)), 3)
    end
    local layers = {}
    for i = 1, num_layers do layers[i] = nn._deepcopy(encoder_layer) end
    self.layers = ModuleList(layers)
    self.num_layers = num_layers
    if norm ~= nil then self.norm = norm end
  end
  function TransformerEncoder:forward(src, a, b)
    local mask, kpm, causal = encoder_masks("TransformerEncoder", a, b)
    local out = src
    local layers = self.layers
    for i = 1, #layers do
      out = layers[i](out, {src_mask = mask, src_key_padding_mask = kpm, is_causal = causal})
    end
    local norm = rawget(self, "_modules").map.norm
    if norm then out = norm(out) end
    return out
  end
end
