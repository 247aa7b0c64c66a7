-- ml.F: torch.nn.functional. The math is in C; this table gathers it under
-- PyTorch's names. Losses and other families add their functions here.
local core = require "moonlight.core"

local F = {}

F.relu = core.relu
F.sigmoid = core.sigmoid
F.tanh = core.tanh
F.linear = core.linear
-- losses (src/lua/loss.c): mse_loss, l1_loss, smooth_l1_loss, cross_entropy, nll_loss, binary_cross_entropy[_with_logits], kl_div, poisson_nll_loss, gaussian_nll_loss
for name, fn in pairs(core._loss) do F[name] = fn end
F.one_hot = core.one_hot

-- dim is required: Torch7's rank-guessed default was a trap
function F.softmax(x, dim) return core.softmax(x, dim) end
function F.log_softmax(x, dim) return core.log_softmax(x, dim) end

-- activations (issue 16) ------------------------------------------------------
-- The math is the elementwise op list's (src/backend/elementwise_ops.h); these
-- give it PyTorch's signatures: a number where torch takes one positionally
-- (F.leaky_relu(x, 0.2)), or a trailing options table with torch's keyword names
-- and defaults. `inplace` is accepted and computes out of place.
local util = require "moonlight.util"
local check_options, fail = util.check_options, util.fail

-- The options of an activation called as f(x, a, b) (a, b named by names) or
-- f(x, {name = v, ...}): a table holding every name of spec (a {type, default}
-- each), checked.
local function activation_opts(fname, spec, names, a, b)
  if type(a) == "table" and not core.is_tensor(a) then
    if b ~= nil then fail(fname, "options come last, got %s after them", util.typename(b)) end
    return check_options(fname, a, spec)
  end
  local o = {}
  if a ~= nil then o[names[1]] = a end
  if b ~= nil then o[names[2]] = b end
  return check_options(fname, o, spec)
end

local gelu_forms = {none = 0, tanh = 1}
-- F.gelu(x, {approximate = "none" | "tanh"})
function F.gelu(x, opts)
  opts = check_options("F.gelu", opts, {approximate = {"string", "none"}})
  local form = gelu_forms[opts.approximate]
  if not form then
    fail("F.gelu", "approximate must be 'none' or 'tanh', got '%s'", opts.approximate)
  end
  return core.gelu(x, form)
end

-- F.silu(x, inplace)
function F.silu(x) return core.silu(x) end

-- F.leaky_relu(x, negative_slope = 0.01, inplace) or (x, {negative_slope, inplace})
function F.leaky_relu(x, a, b)
  local o = activation_opts("F.leaky_relu", {negative_slope = {"number", 0.01}, inplace = "boolean"},
                            {"negative_slope", "inplace"}, a, b)
  return core.leaky_relu(x, o.negative_slope)
end

-- F.elu(x, alpha = 1.0, inplace) or (x, {alpha, inplace})
function F.elu(x, a, b)
  local o = activation_opts("F.elu", {alpha = {"number", 1.0}, inplace = "boolean"},
                            {"alpha", "inplace"}, a, b)
  return core.elu(x, o.alpha)
end

-- F.softplus(x, beta = 1, threshold = 20) or (x, {beta, threshold})
function F.softplus(x, a, b)
  local o = activation_opts("F.softplus", {beta = {"number", 1}, threshold = {"number", 20}},
                            {"beta", "threshold"}, a, b)
  return core.softplus(x, o.beta, o.threshold)
end

-- F.dropout(x, {p = 0.5, training = true, inplace}): inverted dropout, the kept
-- elements scaled by 1 / (1 - p); the mask is drawn from ml's generator (ml.rand),
-- so a seeded run drops the same elements on every device. nn.Dropout calls it.
-- Without training (or p == 0) x itself comes back, as torch returns its input.
function F.dropout(x, a, b)
  local o = activation_opts("F.dropout", {p = {"number", 0.5}, training = {"boolean", true},
                                          inplace = "boolean"}, {"p", "training"}, a, b)
  local p = o.p
  if p < 0 or p > 1 or p ~= p then
    fail("F.dropout", "dropout probability has to be between 0 and 1, but got %s",
         util.format_number(p))
  end
  if not core.is_tensor(x) or not x.dtype:match("^float") then
    fail("F.dropout", "expected a floating point tensor, got %s",
         core.is_tensor(x) and x.dtype or util.typename(x))
  end
  if not o.training or p == 0 then return x end
  if p == 1 then return x * 0 end
  local keep = 1 - p
  local mask = core.rand(x:shape(), {device = x.device}):lt(keep):to(x.dtype) * (1 / keep)
  return x * mask
end

-- F.pad(x, pads, {mode = "constant" | "reflect" | "replicate", value = 0}), or
-- F.pad(x, pads, mode, value) as torch's positional form. pads in PyTorch's order:
-- (before, after) of the last dim first, then of the one before it, ...
function F.pad(x, pads, a, b)
  local o
  if type(a) == "table" then
    if b ~= nil then fail("F.pad", "options come last, got %s after them", util.typename(b)) end
    o = check_options("F.pad", a, {mode = {"string", "constant"}, value = "number"})
  else
    o = check_options("F.pad", {mode = a, value = b}, {mode = {"string", "constant"}, value = "number"})
  end
  if type(pads) ~= "table" or core.is_tensor(pads) then
    fail("F.pad", "pads must be a table of integers ({left, right, top, bottom, ...}), got %s",
         util.typename(pads))
  end
  if o.mode ~= "constant" and o.value ~= nil and o.value ~= 0 then
    fail("F.pad", "padding mode '%s' takes no value (got %s)", o.mode, util.format_number(o.value))
  end
  return util.call_c(core._pad, x, pads, o.mode, o.value)
end
-- convolution, pooling, batch norm (issue 16; src/lua/conv.c, pool.c, batchnorm.c):
-- F.conv2d(x, w, b, {stride, padding = n | {ph, pw} | "same" | "valid", dilation, groups}),
-- F.max_pool2d(x, k, {stride, padding, dilation, ceil_mode, return_indices}), ...
F.conv1d = core.conv1d
F.conv2d = core.conv2d
F.conv_transpose2d = core.conv_transpose2d
F.max_pool2d = core.max_pool2d
F.avg_pool2d = core.avg_pool2d
F.adaptive_avg_pool2d = core.adaptive_avg_pool2d
F.batch_norm = core.batch_norm
-- normalisation, embeddings, attention
-- (src/lua/{norm,embedding,attention}.c)
F.layer_norm = core.layer_norm
F.group_norm = core.group_norm
F.embedding = core.embedding
F.scaled_dot_product_attention = core.scaled_dot_product_attention

return F
