/* Backend family: fused optimizer updates (moments and parameter in one pass). */
#ifndef ML_BACKEND_OPTIM_H
#define ML_BACKEND_OPTIM_H

#include "../tensor.h"
#include "table.h"

typedef struct ml_adam_args {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad, decoupled;   /* decoupled: AdamW's weight decay */
    bool maximize;             /* ascend: the gradient's sign is flipped */
    int64_t step;              /* 1 on the first update, for bias correction */
} ml_adam_args;

typedef struct ml_sgd_args {
    double lr, momentum, dampening, weight_decay;
    bool nesterov, maximize;
    bool first_step;           /* the momentum buffer starts as the gradient */
} ml_sgd_args;

/* The family's entries (see ML_BACKEND_FIELD in backend.h):
 *  - adam_step: all contiguous, same shape and dtype; max_exp_avg_sq only with
 *    amsgrad.
 *  - sgd_step: momentum_buf NULL when momentum is 0.
 *  - adam_step_multi: the updates of n parameters in one call (one pass split
 *    across threads on the CPU), args[i] for params[i]; each set checked as for
 *    adam_step, max_exp_avg_sqs[i] NULL without amsgrad. */
#define ML_OPTIM_ENTRIES(X, P)                                                           \
    X(P, int, adam_step,                                                                 \
      (ml_tensor * param, const ml_tensor *grad, ml_tensor *exp_avg, ml_tensor *exp_avg_sq, \
       ml_tensor *max_exp_avg_sq, const ml_adam_args *a))                                \
    X(P, int, sgd_step,                                                                  \
      (ml_tensor * param, const ml_tensor *grad, ml_tensor *momentum_buf,                \
       const ml_sgd_args *a))                                                            \
    X(P, int, adam_step_multi,                                                           \
      (int n, ml_tensor *const *params, ml_tensor *const *grads,                         \
       ml_tensor *const *exp_avgs, ml_tensor *const *exp_avg_sqs,                        \
       ml_tensor *const *max_exp_avg_sqs, const ml_adam_args *args))

typedef struct ml_optim_ops {
    ML_OPTIM_ENTRIES(ML_BACKEND_FIELD, _)
} ml_optim_ops;

#endif
