/* Backend family: fused losses (one pass forward, one pass backward).
 *
 * The loss issue defines the kinds and their arguments here; every tensor handed
 * to a kernel is contiguous and already shape-checked by ops/loss.c. */
#ifndef ML_BACKEND_LOSS_H
#define ML_BACKEND_LOSS_H

#include "../tensor.h"

typedef enum { ML_REDUCTION_NONE, ML_REDUCTION_MEAN, ML_REDUCTION_SUM } ml_reduction;

typedef enum {
    ML_LOSS_MSE,
    ML_LOSS_COUNT
} ml_loss_kind;

typedef struct ml_loss_args {
    ml_loss_kind kind;
    ml_reduction reduction;
    const ml_tensor *input, *target;
    const ml_tensor *weight, *extra;  /* per-loss: class weights, pos_weight, var */
    double beta, eps, label_smoothing;
    int64_t ignore_index;
    bool log_input, full, log_target;
} ml_loss_args;

typedef struct ml_loss_ops {
    /* out: the reduced 0-dim loss, or the per-element losses for "none" */
    int (*forward)(const ml_loss_args *args, ml_tensor *out);
    /* grad_out: the gradient of out; writes grad_input (and grad_extra when set) */
    int (*backward)(const ml_loss_args *args, const ml_tensor *grad_out, ml_tensor *grad_input,
                    ml_tensor *grad_extra);
} ml_loss_ops;

#endif
