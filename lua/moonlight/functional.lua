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

-- issue 16, layers (branch l3): normalisation, embeddings, attention
-- (src/lua/{norm,embedding,attention}.c)
F.layer_norm = core.layer_norm
F.group_norm = core.group_norm
F.embedding = core.embedding
F.scaled_dot_product_attention = core.scaled_dot_product_attention

return F
