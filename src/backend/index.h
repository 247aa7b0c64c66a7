/* Backend family: indexing (gather, index_select, their adjoints, one_hot).
 *
 * Contract: tensors contiguous; index int64 holding 0-based positions already
 * checked against the dim's size by ops/index.c. */
#ifndef ML_BACKEND_INDEX_H
#define ML_BACKEND_INDEX_H

#include "../tensor.h"
#include "table.h"

/* The family's entries (see table.h):
 *  - gather: out[i][j][k] = x[i][index[i][j][k]][k] for dim 1 (torch.gather).
 *  - scatter_add: out (zeroed by the caller) += src scattered by index: gather's
 *    adjoint.
 *  - index_select: out = x taken at index (1-D) along dim.
 *  - index_add: out (zeroed by the caller) += src added at index along dim:
 *    index_select's adjoint.
 *  - one_hot: out[..., c] = (labels[...] == c), out float or int64. */
#define ML_INDEX_ENTRIES(X, P)                                                           \
    X(P, int, gather, (const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out)) \
    X(P, int, scatter_add,                                                               \
      (ml_tensor * out, int dim, const ml_tensor *index, const ml_tensor *src))          \
    X(P, int, index_select,                                                              \
      (const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out))              \
    X(P, int, index_add, (ml_tensor * out, int dim, const ml_tensor *index, const ml_tensor *src)) \
    X(P, int, one_hot, (const ml_tensor *labels, int64_t n, ml_tensor *out))

typedef struct ml_index_ops {
    ML_INDEX_ENTRIES(ML_BACKEND_FIELD, _)
} ml_index_ops;

#endif
