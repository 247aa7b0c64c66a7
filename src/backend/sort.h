/* Backend family: sort, and the cumulative sum: the ops along one dim whose every
 * output depends on the other elements of its line in their order, and that are
 * not reductions (src/backend/reduce.h). topk and argsort are sort's outputs
 * narrowed or dropped (src/ops/sort.c).
 *
 * Contract: x contiguous, seen as [outer, n, inner] (n the dim the op runs along, a
 * "line" is one (outer, inner) pair); outputs contiguous of x's shape.
 *  - sort: values (x's dtype) and indices (int64: each value's 0-based position
 *    along n in x) of each line in ascending order, descending when asked. Stable:
 *    equal elements keep their order, so the result is unique and both backends
 *    give the same indices. NaN sorts above every number (last ascending, first
 *    descending), as torch.sort.
 *  - cumsum: out[o][i][j] = x[o][0][j] + ... + x[o][i][j], added in that order
 *    (from the end when reverse: out[o][i][j] = x[o][i][j] + ... + x[o][n-1][j],
 *    cumsum's backward). float32 and float64 accumulate in double (as torch's CPU
 *    kernel), integers in int64; out is x's float dtype, or int64 for an integer x.
 * Kernels return 0 or -1 with ml_error set. */
#ifndef ML_BACKEND_SORT_H
#define ML_BACKEND_SORT_H

#include <stdbool.h>

#include "../tensor.h"
#include "table.h"

#define ML_SORT_ENTRIES(X, P)                                                            \
    X(P, int, sort,                                                                      \
      (const ml_tensor *x, int64_t outer, int64_t n, int64_t inner, bool descending,     \
       ml_tensor *values, ml_tensor *indices))                                           \
    X(P, int, cumsum,                                                                    \
      (const ml_tensor *x, int64_t outer, int64_t n, int64_t inner, bool reverse,        \
       ml_tensor *out))

typedef struct ml_sort_ops {
    ML_SORT_ENTRIES(ML_BACKEND_FIELD, _)
} ml_sort_ops;

#endif
