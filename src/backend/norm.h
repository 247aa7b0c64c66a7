/* Backend family: layer_norm and group_norm, one pair of kernels for both.
 *
 * Contract: x contiguous [rows, n], each row normalised over its n elements,
 *   y = (x - mean) * rstd * w + b,   rstd = 1 / sqrt(var + eps), var biased,
 * with mean and rstd [rows] written for backward. The affine weight and bias
 * (either may be NULL) hold groups * segs values: a row is cut into segs segments
 * of seg_len elements (n = segs * seg_len), and segment s of row r uses
 * w[(r % groups) * segs + s].
 *   layer_norm over the last dims (n elements):  groups 1, segs n, seg_len 1;
 *   group_norm of [N, C, *] in g groups:  rows N * g, groups g, segs C / g,
 *   seg_len prod(*).
 * Sums over a row run in double; the weight and bias gradients are summed in
 * blocks of rows fixed by the shape alone, the blocks added in order, so no
 * result depends on the thread count (or, on CUDA, on the scheduling). */
#ifndef ML_BACKEND_NORM_H
#define ML_BACKEND_NORM_H

#include "../tensor.h"
#include "table.h"

typedef struct ml_norm_geom {
    int64_t rows, n;             /* x is [rows, n] */
    int64_t groups, segs, seg_len; /* the affine layout above */
    double eps;
} ml_norm_geom;

/* The family's entries (see table.h):
 *  - forward: y [rows, n], mean and rstd [rows] (x's dtype) from x; w, b may be NULL.
 *  - backward: from g = dL/dy [rows, n] and what forward saved, gx [rows, n],
 *    gw and gb [groups * segs]; each output may be NULL (not wanted). gw, gb are
 *    written, not accumulated. w may be NULL (no affine weight: 1). */
#define ML_NORM_ENTRIES(X, P)                                                            \
    X(P, int, forward,                                                                   \
      (const ml_tensor *x, const ml_tensor *w, const ml_tensor *b, const ml_norm_geom *geo, \
       ml_tensor *y, ml_tensor *mean, ml_tensor *rstd))                                  \
    X(P, int, backward,                                                                  \
      (const ml_tensor *x, const ml_tensor *w, const ml_tensor *mean, const ml_tensor *rstd, \
       const ml_tensor *g, const ml_norm_geom *geo, ml_tensor *gx, ml_tensor *gw,          \
       ml_tensor *gb))

typedef struct ml_norm_ops {
    ML_NORM_ENTRIES(ML_BACKEND_FIELD, _)
} ml_norm_ops;

/* Rows per block of the weight and bias gradients' partial sums: about 16384
 * elements a block, and at most 64 blocks (a function of the shape alone, shared
 * by both backends so that they add in the same order). */
static inline int64_t ml_norm_row_block(int64_t rows, int64_t n) {
    int64_t rb = n > 0 ? (16384 + n - 1) / n : rows;
    if (rb < 1) rb = 1;
    if (rows > 0 && (rows + rb - 1) / rb > 64) rb = (rows + 63) / 64;
    return rb;
}

#endif
