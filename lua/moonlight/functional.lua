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

return F
