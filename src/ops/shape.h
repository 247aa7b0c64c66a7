/* Shape ops: views sharing storage (no copy) where strides allow, all
 * differentiable. dims are 0-based here; negative dims count from the end. */
#ifndef ML_OPS_SHAPE_H
#define ML_OPS_SHAPE_H

#include "../tensor.h"

/* shape may hold one -1 (inferred). view needs compatible strides; reshape copies
 * when it must. */
ml_tensor *ml_view(ml_tensor *t, int ndim, const int64_t *shape);
ml_tensor *ml_reshape(ml_tensor *t, int ndim, const int64_t *shape);
ml_tensor *ml_transpose(ml_tensor *t, int d0, int d1);
ml_tensor *ml_permute(ml_tensor *t, const int *dims);
ml_tensor *ml_narrow(ml_tensor *t, int dim, int64_t start, int64_t length);
ml_tensor *ml_select(ml_tensor *t, int dim, int64_t index);
ml_tensor *ml_squeeze(ml_tensor *t, int dim);        /* dim < -ndim... : ML_ALL_DIMS squeezes all */
ml_tensor *ml_unsqueeze(ml_tensor *t, int dim);
ml_tensor *ml_expand(ml_tensor *t, int ndim, const int64_t *shape);
ml_tensor *ml_flatten(ml_tensor *t, int start_dim, int end_dim);

/* Broadcast shape of a and b into shape/ndim; -1 with a message naming fname. */
int ml_broadcast_shapes(const char *fname, int na, const int64_t *sa, int nb,
                        const int64_t *sb, int *ndim, int64_t *shape);
/* A stride-0 view of t with the given (broadcast) shape; no autograd. */
ml_tensor *ml_expand_raw(const ml_tensor *t, int ndim, const int64_t *shape);

#define ML_ALL_DIMS (-1000)

#endif
