/* Backend family: 2-D pooling over NCHW planes (max, average, adaptive average).
 *
 * x [n, c, h, w] gives y [n, c, oh, ow]; each plane (n, c) is pooled on its own.
 * Window (i, j) of max and avg pooling covers rows i * sh - ph + ki * dh for
 * ki < kh (dh = 1 for avg) and likewise columns; positions outside the input are
 * skipped (max) or counted as zeros (avg with count_include_pad, up to the padded
 * edge, as PyTorch). Adaptive average pooling's window (i, j) is rows
 * [floor(i h / oh), ceil((i + 1) h / oh)) and likewise columns (k*, s*, p*, d*
 * unused).
 *
 * Contract: x, y, g, gx contiguous, one float dtype; idx int64 contiguous of y's
 * shape, each element the row-major position h_pos * w + w_pos of the maximum in
 * its plane (PyTorch's return_indices). Outputs are written whole. */
#ifndef ML_BACKEND_POOL_H
#define ML_BACKEND_POOL_H

#include "../tensor.h"
#include "table.h"

typedef struct ml_pool_geom {
    int64_t n, c, h, w;   /* x [n, c, h, w] */
    int64_t oh, ow;       /* y [n, c, oh, ow] */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    bool count_include_pad; /* avg: pads count in the divisor */
} ml_pool_geom;

/* The family's entries (see table.h):
 *  - max_forward: y = the maximum of each window, idx its position (the first
 *    maximum in row-major window order; a NaN wins, the last NaN when several, as
 *    PyTorch's CPU kernel); a dilated window wholly in the padding gives -inf and
 *    position -1 (no gradient). idx NULL: no positions wanted (inference).
 *  - max_backward: gx = g routed to the positions idx (summed where windows
 *    overlap), 0 elsewhere.
 *  - avg_forward / avg_backward: the window mean and its gradient.
 *  - adaptive_avg_forward / adaptive_avg_backward: the same over adaptive windows. */
#define ML_POOL_ENTRIES(X, P)                                                            \
    X(P, int, max_forward,                                                               \
      (const ml_tensor *x, const ml_pool_geom *geom, ml_tensor *y, ml_tensor *idx))      \
    X(P, int, max_backward,                                                              \
      (const ml_tensor *g, const ml_tensor *idx, const ml_pool_geom *geom, ml_tensor *gx)) \
    X(P, int, avg_forward, (const ml_tensor *x, const ml_pool_geom *geom, ml_tensor *y))  \
    X(P, int, avg_backward, (const ml_tensor *g, const ml_pool_geom *geom, ml_tensor *gx)) \
    X(P, int, adaptive_avg_forward,                                                      \
      (const ml_tensor *x, const ml_pool_geom *geom, ml_tensor *y))                       \
    X(P, int, adaptive_avg_backward,                                                     \
      (const ml_tensor *g, const ml_pool_geom *geom, ml_tensor *gx))

typedef struct ml_pool_ops {
    ML_POOL_ENTRIES(ML_BACKEND_FIELD, _)
} ml_pool_ops;

#endif
