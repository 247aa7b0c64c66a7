/* Backend family: 2-D convolution (NCHW), forward and the two backward products.
 *
 * One geometry describes a convolution of an input x [n, c_in, h, w] with a weight
 * w [c_out, c_in / groups, kh, kw] into y [n, c_out, oh, ow]:
 *
 *   y[b, o, i, j] = bias[o] + sum over c of group(o), ki, kj of
 *       w[o, c, ki, kj] * x[b, c, i * sh - ph + ki * dh, j * sw - pw + kj * dw]
 *
 * where x outside [0, h) x [0, w) reads as 0. ph/pw are the pads before the first
 * row/column; oh/ow are given (not derived), so an asymmetric "same" padding is
 * the leading pad plus an output that reaches past the input's end. conv1d is
 * this with h = kh = 1; conv_transpose2d is backward_input (its forward) and
 * forward (its input gradient) with the roles of x and y swapped.
 *
 * Contract: every tensor contiguous, one float dtype (float32 or float64), on the
 * backend's device; outputs are written whole (never accumulated into). */
#ifndef ML_BACKEND_CONV_H
#define ML_BACKEND_CONV_H

#include "../tensor.h"
#include "table.h"

typedef struct ml_conv_geom {
    int64_t n, c_in, h, w;    /* x [n, c_in, h, w] */
    int64_t c_out, kh, kw;    /* weight [c_out, c_in / groups, kh, kw] */
    int64_t oh, ow;           /* y [n, c_out, oh, ow] */
    int64_t sh, sw;           /* stride */
    int64_t ph, pw;           /* leading pad */
    int64_t dh, dw;           /* dilation */
    int64_t groups;           /* divides c_in and c_out */
} ml_conv_geom;

/* The family's entries (see table.h):
 *  - forward: y = conv(x, w) (+ bias [c_out] per channel when bias is not NULL).
 *  - backward_input: gx [n, c_in, h, w] = the gradient of conv(x, w) with respect to
 *    x for the output gradient g [n, c_out, oh, ow] (+ bias [c_in] per channel when
 *    not NULL: conv_transpose2d's bias).
 *  - backward_weight: gw [c_out, c_in / groups, kh, kw] = the gradient with respect
 *    to w, summed over the batch in a fixed order (the bits do not depend on the
 *    threads); gb [c_out] = g summed over n, oh, ow when gb is not NULL. */
#define ML_CONV_ENTRIES(X, P)                                                            \
    X(P, int, forward,                                                                   \
      (const ml_tensor *x, const ml_tensor *w, const ml_tensor *bias,                    \
       const ml_conv_geom *geom, ml_tensor *y))                                          \
    X(P, int, backward_input,                                                            \
      (const ml_tensor *g, const ml_tensor *w, const ml_tensor *bias,                    \
       const ml_conv_geom *geom, ml_tensor *gx))                                         \
    X(P, int, backward_weight,                                                           \
      (const ml_tensor *x, const ml_tensor *g, const ml_conv_geom *geom, ml_tensor *gw,   \
       ml_tensor *gb))

typedef struct ml_conv_ops {
    ML_CONV_ENTRIES(ML_BACKEND_FIELD, _)
} ml_conv_ops;

#endif
