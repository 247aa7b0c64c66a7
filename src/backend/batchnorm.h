/* Backend family: batch normalisation over [n, c, s] (s = the spatial elements of
 * a channel: h * w for BatchNorm2d, l or 1 for BatchNorm1d).
 *
 * training: mean[c] and var[c] (biased) over the n * s elements of channel c;
 * invstd = 1 / sqrt(var + eps); the running statistics (when given) become
 * (1 - momentum) * running + momentum * batch, with the unbiased variance
 * var * m / (m - 1) (m = n * s > 1), as PyTorch. Otherwise mean = running_mean and
 * invstd = 1 / sqrt(running_var + eps). Then
 *   y = (x - mean[c]) * invstd[c] * weight[c] + bias[c]   (weight 1, bias 0 when NULL)
 * Per-channel sums are in double, each channel's by one thread in a fixed order.
 *
 * Contract: x, y, g, gx contiguous [n, c, s], one float dtype; the [c] tensors
 * contiguous, of that dtype. */
#ifndef ML_BACKEND_BATCHNORM_H
#define ML_BACKEND_BATCHNORM_H

#include "../tensor.h"
#include "pool.h"
#include "table.h"

typedef struct ml_bn_args {
    int64_t n, c, s;                  /* x seen as [n, c, s] */
    bool training;
    double momentum, eps;
    const ml_tensor *weight, *bias;   /* [c] or NULL */
    ml_tensor *running_mean, *running_var; /* [c] or NULL (both or neither) */
    ml_tensor *mean, *invstd;         /* [c], written by forward, read by backward */
} ml_bn_args;

/* The family's entries (see table.h):
 *  - forward: mean, invstd (and the running statistics when training), then y.
 *  - backward: from g (y's gradient), x and the saved mean/invstd: gx (when not
 *    NULL), gw = sum g * (x - mean) * invstd and gb = sum g per channel (each when
 *    not NULL). training: gx = weight * invstd * (g - mean(g) - xhat * mean(g xhat))
 *    per channel; otherwise gx = g * weight * invstd.
 *  - max_pool_forward: forward, then max pooling (pool.h's max_forward) of its y
 *    without storing y: y_pool [n, c, oh, ow] and codes (uint8, that shape), each
 *    the maximum's place in its window, ki kw + kj (the first maximum in row-major
 *    window order; a NaN wins, the last NaN when several, as pool.h). geom (x's n,
 *    c, h, w) has windows that tile without overlap or padding: kernel == stride,
 *    no padding, dilation 1, oh = h / kh, ow = w / kw (rows and columns past the
 *    last whole window are in no window), kh kw <= 256. codes NULL: none wanted
 *    (inference).
 *  - max_pool_backward: backward for y's gradient g_pool routed to the codes'
 *    positions (max_backward's g: g_pool there, 0 elsewhere), without storing that g. */
#define ML_BATCHNORM_ENTRIES(X, P)                                                       \
    X(P, int, forward, (const ml_tensor *x, ml_bn_args *args, ml_tensor *y))              \
    X(P, int, backward,                                                                  \
      (const ml_tensor *g, const ml_tensor *x, const ml_bn_args *args, ml_tensor *gx,     \
       ml_tensor *gw, ml_tensor *gb))                                                    \
    X(P, int, max_pool_forward,                                                          \
      (const ml_tensor *x, ml_bn_args *args, const ml_pool_geom *geom, ml_tensor *y_pool, \
       ml_tensor *codes))                                                                  \
    X(P, int, max_pool_backward,                                                         \
      (const ml_tensor *g_pool, const ml_tensor *codes, const ml_tensor *x,              \
       const ml_bn_args *args, const ml_pool_geom *geom, ml_tensor *gx, ml_tensor *gw,   \
       ml_tensor *gb))

typedef struct ml_batchnorm_ops {
    ML_BATCHNORM_ENTRIES(ML_BACKEND_FIELD, _)
} ml_batchnorm_ops;

#endif
