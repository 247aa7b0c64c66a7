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
/* Sums g down to a shape it was broadcast from (the adjoint of broadcasting). */
ml_tensor *ml_sum_to_shape(ml_tensor *g, int ndim, const int64_t *shape);

#endif
