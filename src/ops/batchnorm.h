/* Batch normalisation over dim 1 of x [N, C, ...] (F.batch_norm), forward and
 * backward (input, weight, bias). Inputs are borrowed; the result is a new
 * reference or NULL with ml_error set. */
#ifndef ML_OPS_BATCHNORM_H
#define ML_OPS_BATCHNORM_H

#include "../tensor.h"

/* running_mean / running_var [C] (both or neither; required unless training) are
 * updated in place when training; weight / bias [C] or NULL. */
ml_tensor *ml_batch_norm(ml_tensor *x, ml_tensor *running_mean, ml_tensor *running_var,
                         ml_tensor *weight, ml_tensor *bias, bool training, double momentum,
                         double eps);

/* max_pool2d(batch_norm(x, ...), {kh, kw}) with stride kh, kw, no padding, dilation 1,
 * floor mode, computed without storing the normalised x: the pooled output [N, C,
 * H / kh, W / kw], its node "BatchNormMaxPool2dBackward". x 4-D. The values are
 * the unfused pair's; the gradients' sums run in another order (float rounding).
 * nn.Sequential runs a BatchNorm2d followed by such a MaxPool2d (a ReLU between
 * them moved after) through it (lua/moonlight/nn.lua). */
ml_tensor *ml_batch_norm_max_pool2d(ml_tensor *x, ml_tensor *running_mean, ml_tensor *running_var,
                                    ml_tensor *weight, ml_tensor *bias, bool training,
                                    double momentum, double eps, int64_t kh, int64_t kw);

#endif
