/* torch.nn.functional.pad: constant, reflect and replicate padding, forward and
 * backward, on any device (composed of copies into views and index_select). */
#ifndef ML_OPS_PAD_H
#define ML_OPS_PAD_H

#include "../tensor.h"

typedef enum { ML_PAD_CONSTANT, ML_PAD_REFLECT, ML_PAD_REPLICATE } ml_pad_mode;

/* x padded: pads holds npads numbers (even, at most 2 per dim of x) in PyTorch's
 * order, the (before, after) padding of the last dim, then of the one before it,
 * and so on. Constant: the new elements are `value` (cast to x's dtype), negative
 * pads cut elements off. Reflect (the elements mirrored about the edge, each pad
 * smaller than its dim) and replicate (the edge element repeated, non-empty dims):
 * the last 1, 2 or 3 dims of an input with 1 or 2 dims more (a batch, channels), as
 * torch; pads not negative. Differentiable. */
ml_tensor *ml_pad(ml_tensor *x, int npads, const int64_t *pads, ml_pad_mode mode, double value);

#endif
