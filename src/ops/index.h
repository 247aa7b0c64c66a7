/* Indexing: torch.gather / scatter_add, index_select / index_add, one_hot.
 *
 * dims are 0-based (negative from the end); index *values* are 0-based positions
 * (they are data, as in PyTorch) held in int64 tensors, checked against the size of
 * the dim they index ("gather: index 12 out of range for dim 2 of size 10"). */
#ifndef ML_OPS_INDEX_H
#define ML_OPS_INDEX_H

#include "../tensor.h"

/* out[i][j][k] = x[i][index[i][j][k]][k] (dim 1); index has x's number of dims and
 * no dim larger than x's except dim; out has index's shape. Backward: scatter_add. */
ml_tensor *ml_gather(ml_tensor *x, int dim, ml_tensor *index);
/* x with src (index's shape) added at the positions index names along dim
 * (torch.scatter_add, out of place). Differentiable in x and src. */
ml_tensor *ml_scatter_add(ml_tensor *x, int dim, ml_tensor *index, ml_tensor *src);
/* x taken at the positions of a 1-D index along dim. Backward: index_add. */
ml_tensor *ml_index_select(ml_tensor *x, int dim, ml_tensor *index);
/* x with src (x's shape, index's length along dim) added at index along dim
 * (torch.index_add, out of place). Differentiable in x and src. */
ml_tensor *ml_index_add(ml_tensor *x, int dim, ml_tensor *index, ml_tensor *src);
/* labels (int64, or uint8) [...] -> int64 [..., n] with a 1 at each label;
 * n = -1 takes max(labels) + 1, as torch.nn.functional.one_hot. */
ml_tensor *ml_one_hot(ml_tensor *labels, int64_t n);

/* For backward rules (no autograd): zeros of shape, with src scatter-added
 * (scatter_add) or index-added (index_add) along dim. index is trusted. */
ml_tensor *ml_scatter_add_new(int ndim, const int64_t *shape, int dim, ml_tensor *index,
                              ml_tensor *src);
ml_tensor *ml_index_add_new(int ndim, const int64_t *shape, int dim, ml_tensor *index,
                            ml_tensor *src);

/* The smallest and largest value of the contiguous, non-empty int64 tensor t (on
 * a device, two reductions and a wait for them); 0 or -1. */
int ml_index_bounds(const ml_tensor *t, int64_t *lo, int64_t *hi);

#endif
