/* Fused optimizer updates: one pass per parameter over its gradient and state,
 * in place, without autograd (optimizers run outside the graph). */
#ifndef ML_OPS_OPTIM_H
#define ML_OPS_OPTIM_H

#include "../backend/optim.h"
#include "../tensor.h"

/* Adam / AdamW (a->decoupled). param, exp_avg, exp_avg_sq (and max_exp_avg_sq with
 * amsgrad) are contiguous tensors of one shape, dtype and device; grad has that
 * shape (a non-contiguous grad is copied first). Returns 0, or -1 with ml_error. */
int ml_adam_step(ml_tensor *param, ml_tensor *grad, ml_tensor *exp_avg, ml_tensor *exp_avg_sq,
                 ml_tensor *max_exp_avg_sq, const ml_adam_args *a);
/* The same over n parameters at once (params[i] with grads[i], ..., args[i]; a
 * max_exp_avg_sqs entry NULL without amsgrad): each set checked as above, then one
 * pass split across threads where the backend has one (the CPU's), else one
 * ml_adam_step each. */
int ml_adam_step_multi(int n, ml_tensor *const *params, ml_tensor *const *grads,
                       ml_tensor *const *exp_avgs, ml_tensor *const *exp_avg_sqs,
                       ml_tensor *const *max_exp_avg_sqs, const ml_adam_args *args);
/* SGD with optional momentum buffer (NULL when momentum is 0). */
int ml_sgd_step(ml_tensor *param, ml_tensor *grad, ml_tensor *momentum_buf, const ml_sgd_args *a);

#endif
