/* Joining tensors: cat along an existing dim, stack along a new one (as torch.cat
 * and torch.stack), both differentiable. dims are 0-based, negative from the end
 * (stack's dim ranges over the ndim + 1 dims of its result). The result has the
 * promoted dtype of the inputs (uint8 < int64 < float32 < float64). */
#ifndef ML_OPS_CAT_H
#define ML_OPS_CAT_H

#include "../tensor.h"

ml_tensor *ml_cat(int n, ml_tensor *const *ts, int dim);
ml_tensor *ml_stack(int n, ml_tensor *const *ts, int dim);

#endif
