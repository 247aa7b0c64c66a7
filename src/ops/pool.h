/* 2-D pooling (NCHW, or unbatched [C, H, W]: any leading dims are planes):
 * max_pool2d, avg_pool2d, adaptive_avg_pool2d, with their backward rules. Inputs
 * are borrowed; the result is a new reference or NULL with ml_error set. */
#ifndef ML_OPS_POOL_H
#define ML_OPS_POOL_H

#include "../tensor.h"

/* PyTorch's arguments, [0] height, [1] width. stride 0 means kernel_size (its
 * default). dilation: max_pool2d only. */
typedef struct ml_pool_opts {
    int64_t kernel[2], stride[2], padding[2], dilation[2];
    bool ceil_mode, count_include_pad;
} ml_pool_opts;

/* x [N, C, H, W] or [C, H, W] -> the window maxima; *indices (when not NULL) gets
 * the int64 positions h * W + w of each maximum in its plane (return_indices). */
ml_tensor *ml_max_pool2d(ml_tensor *x, const ml_pool_opts *o, ml_tensor **indices);
ml_tensor *ml_avg_pool2d(ml_tensor *x, const ml_pool_opts *o);
/* x [N, C, H, W] or [C, H, W] -> [.., oh, ow] */
ml_tensor *ml_adaptive_avg_pool2d(ml_tensor *x, int64_t oh, int64_t ow);

#endif
