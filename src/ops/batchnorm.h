/* Batch normalisation over dim 1 of x [N, C, ...] (F.batch_norm), forward and
 * backward (input, weight, bias). Inputs are borrowed; the result is a new
 * reference or NULL with ml_error set. */
#ifndef ML_OPS_BATCHNORM_H
#define ML_OPS_BATCHNORM_H

#include "../tensor.h"

/* running_mean / running_var [C] (both or neither; required unless training) are
 * updated in place when training; weight / bias [C] or NULL. */
ml_tensor *ml_batch_norm(ml_tensor *x, ml_tensor *running_mean, ml_tensor *running_var,
                         ml_tensor *weight, ml_tensor *bias, bool training, double momentum,
                         double eps);

#endif
