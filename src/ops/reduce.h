/* Reductions over all elements (dim = ML_ALL_DIMS, giving a 0-dim tensor) or one dim. */
#ifndef ML_OPS_REDUCE_H
#define ML_OPS_REDUCE_H

#include "../tensor.h"
#include "shape.h"

ml_tensor *ml_sum(ml_tensor *x, int dim, bool keepdim);
ml_tensor *ml_mean(ml_tensor *x, int dim, bool keepdim);
/* values (and 0-based int64 positions into *indices when indices is not NULL) */
ml_tensor *ml_max(ml_tensor *x, int dim, bool keepdim, ml_tensor **indices);
ml_tensor *ml_min(ml_tensor *x, int dim, bool keepdim, ml_tensor **indices);
ml_tensor *ml_argmax(ml_tensor *x, int dim, bool keepdim);
ml_tensor *ml_argmin(ml_tensor *x, int dim, bool keepdim);
ml_tensor *ml_logsumexp(ml_tensor *x, int dim, bool keepdim);
/* uint8: 1 where every (all) / some (any) element is nonzero (NaN is), as torch's
 * all/any; not differentiable. */
ml_tensor *ml_all(ml_tensor *x, int dim, bool keepdim);
ml_tensor *ml_any(ml_tensor *x, int dim, bool keepdim);
/* Variance / standard deviation over dim (ML_ALL_DIMS: all elements): the squared
 * deviations from the mean summed and divided by max(0, n - correction) (torch's;
 * correction 1 is the unbiased estimate). Float tensors only. */
ml_tensor *ml_var(ml_tensor *x, int dim, double correction, bool keepdim);
ml_tensor *ml_std(ml_tensor *x, int dim, double correction, bool keepdim);
/* The vector p-norm over dim (ML_ALL_DIMS: all elements), torch.norm /
 * linalg.vector_norm: p 2 (Frobenius over all), 1, INFINITY (max |x|), -INFINITY
 * (min |x|), 0 (the count of nonzeros), any other: (sum |x|^p)^(1/p). Float only. */
ml_tensor *ml_norm(ml_tensor *x, double p, int dim, bool keepdim);
/* Sums g down to a shape it was broadcast from (the adjoint of broadcasting). */
ml_tensor *ml_sum_to_shape(ml_tensor *g, int ndim, const int64_t *shape);

#endif
