/* Losses (torch.nn.functional's): shape/dtype checks, autograd, dispatch to the
 * backend's fused kernels. Each returns a new reference (a 0-dim tensor for
 * "mean"/"sum", per-element losses for "none") or NULL with ml_error set. */
#ifndef ML_OPS_LOSS_H
#define ML_OPS_LOSS_H

#include "../backend/loss.h"
#include "../tensor.h"

typedef struct ml_loss_options {
    ml_reduction reduction;   /* ML_REDUCTION_MEAN by default */
    bool batchmean;           /* kl_div's "batchmean": sum / input.size(0) (reduction MEAN) */
    ml_tensor *weight;        /* bce*: elementwise (broadcast to input); nll/ce: per class [C] */
    ml_tensor *pos_weight;    /* bce_with_logits: broadcast to input */
    double beta;              /* smooth_l1 (1.0) */
    double eps;               /* poisson_nll (1e-8), gaussian_nll (1e-6) */
    double label_smoothing;   /* cross_entropy (0) */
    int64_t ignore_index;     /* nll/ce (-100) */
    bool log_input;           /* poisson_nll (true) */
    bool full;                /* poisson_nll, gaussian_nll (false) */
    bool log_target;          /* kl_div (false) */
} ml_loss_options;

/* PyTorch's defaults for a loss kind. */
void ml_loss_options_init(ml_loss_options *o, ml_loss_kind kind);

/* One entry for every loss. kind ML_LOSS_CROSS_ENTROPY takes int64 class ids or
 * float probabilities (of the input's shape) as target; var is gaussian_nll's
 * (NULL for the others). */
ml_tensor *ml_loss(ml_loss_kind kind, ml_tensor *input, ml_tensor *target, ml_tensor *var,
                   const ml_loss_options *o);

/* Conveniences with the defaults. */
ml_tensor *ml_mse_loss(ml_tensor *input, ml_tensor *target, ml_reduction r);
ml_tensor *ml_cross_entropy(ml_tensor *logits, ml_tensor *target, ml_reduction r);

#endif
