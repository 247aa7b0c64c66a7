/* Convolutions (NCHW): conv1d, conv2d, conv_transpose2d, with their backward rules
 * (input, weight, bias). Inputs are borrowed; the result is a new reference or
 * NULL with ml_error set (a message naming the function, the shapes and what was
 * expected). */
#ifndef ML_OPS_CONV_H
#define ML_OPS_CONV_H

#include "../tensor.h"

/* PyTorch's keyword arguments, per spatial dim ([0] height, [1] width; conv1d
 * reads [1]). pad_same: padding = "same" (stride 1; the extra pad of an even
 * kernel goes after, as PyTorch). output_padding: conv_transpose2d only. */
typedef struct ml_conv_opts {
    int64_t stride[2], padding[2], dilation[2], output_padding[2];
    int64_t groups;
    bool pad_same;
} ml_conv_opts;

/* The defaults: stride 1, padding 0, dilation 1, groups 1. */
ml_conv_opts ml_conv_opts_default(void);

/* x [N, C_in, H, W] (or unbatched [C_in, H, W]), w [C_out, C_in / groups, kh, kw],
 * b [C_out] or NULL -> [N, C_out, OH, OW] (unbatched: [C_out, OH, OW]). */
ml_tensor *ml_conv2d(ml_tensor *x, ml_tensor *w, ml_tensor *b, const ml_conv_opts *o);
/* x [N, C_in, L] (or [C_in, L]), w [C_out, C_in / groups, k], b [C_out] or NULL. */
ml_tensor *ml_conv1d(ml_tensor *x, ml_tensor *w, ml_tensor *b, const ml_conv_opts *o);
/* x [N, C_in, H, W] (or [C_in, H, W]), w [C_in, C_out / groups, kh, kw], b [C_out]
 * or NULL -> [N, C_out, (H - 1) s - 2 p + d (k - 1) + output_padding + 1, ...]. */
ml_tensor *ml_conv_transpose2d(ml_tensor *x, ml_tensor *w, ml_tensor *b, const ml_conv_opts *o);

#endif
