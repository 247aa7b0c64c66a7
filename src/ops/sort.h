/* The sort family: sort, argsort, topk, cumsum along one dim (0-based here,
 * negative from the end; a 0-dim tensor takes dim 0 or -1 as a line of one).
 * Index values are 0-based positions (int64), as torch's. */
#ifndef ML_OPS_SORT_H
#define ML_OPS_SORT_H

#include "../tensor.h"

/* x's elements sorted along dim, ascending (descending when asked), stably (equal
 * elements keep their order; NaN above every number); their positions in x into
 * *indices when indices is not NULL. Differentiable: the gradient goes back to
 * the positions. */
ml_tensor *ml_sort(ml_tensor *x, int dim, bool descending, ml_tensor **indices);
/* The positions that sort x along dim (int64), as torch.argsort. */
ml_tensor *ml_argsort(ml_tensor *x, int dim, bool descending);
/* The k largest (smallest when !largest) elements along dim, in sorted order, and
 * their positions into *indices when not NULL; 0 <= k <= the dim's size. Ties are
 * taken in their order along the dim. Differentiable as sort. */
ml_tensor *ml_topk(ml_tensor *x, int64_t k, int dim, bool largest, ml_tensor **indices);
/* Cumulative sums along dim: float32/float64 accumulated in double, integers (int64,
 * uint8) in int64 with an int64 result, as torch's. Differentiable for floats. */
ml_tensor *ml_cumsum(ml_tensor *x, int dim);

#endif
