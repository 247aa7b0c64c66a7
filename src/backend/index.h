/* Backend family: indexing (gather, index_select, their adjoints, one_hot).
 *
 * Contract: tensors contiguous; index int64 holding 0-based positions already
 * checked against the dim's size by ops/index.c. */
#ifndef ML_BACKEND_INDEX_H
#define ML_BACKEND_INDEX_H

#include "../tensor.h"

typedef struct ml_index_ops {
    /* out[i][j][k] = x[i][index[i][j][k]][k] for dim 1 (torch.gather) */
    int (*gather)(const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out);
    /* out (zeroed by the caller) += src scattered by index: gather's adjoint */
    int (*scatter_add)(ml_tensor *out, int dim, const ml_tensor *index, const ml_tensor *src);
    /* out = x taken at index (1-D) along dim */
    int (*index_select)(const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out);
    /* out (zeroed by the caller) += src added at index along dim: index_select's adjoint */
    int (*index_add)(ml_tensor *out, int dim, const ml_tensor *index, const ml_tensor *src);
    /* out[..., c] = (labels[...] == c), out float or int64 */
    int (*one_hot)(const ml_tensor *labels, int64_t n, ml_tensor *out);
} ml_index_ops;

#endif
