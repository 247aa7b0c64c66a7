/* Backend family: fused losses (one pass forward, one pass backward).
 *
 * Every tensor handed to a kernel is contiguous, of the input's float dtype (class
 * ids: int64), already shape-checked and broadcast by ops/loss.c:
 *
 *  - elementwise kinds (MSE .. GAUSSIAN_NLL): input, target, and the optional
 *    weight / extra all have the input's shape. The per-element loss is
 *    out[i] ("none"), or sum_i l[i] (/ args->norm for "mean", set by the caller).
 *  - class kinds (NLL, CROSS_ENTROPY, CROSS_ENTROPY_PROBS): input is seen as
 *    [n, c, inner] (class dim in the middle); target is int64 [n, inner] class
 *    ids, or for _PROBS float [n, c, inner] probabilities; weight is [c] or NULL.
 *    The "none" output is [n, inner]. For NLL and CROSS_ENTROPY with "mean", the
 *    forward kernel sets args->norm to the summed weight of the targets that are
 *    not ignore_index (PyTorch's divisor); for _PROBS the caller sets it (n*inner).
 *    CROSS_ENTROPY* forward writes each row's logsumexp into aux (float64
 *    [n*inner]); backward reads it instead of recomputing it.
 *
 * A kernel that finds bad data (a class id outside [0, c), a probability outside
 * [0, 1], a negative var) returns -1 with ml_error set, naming the loss. */
#ifndef ML_BACKEND_LOSS_H
#define ML_BACKEND_LOSS_H

#include "../tensor.h"

typedef enum { ML_REDUCTION_NONE, ML_REDUCTION_MEAN, ML_REDUCTION_SUM } ml_reduction;

typedef enum {
    /* elementwise */
    ML_LOSS_MSE,
    ML_LOSS_L1,
    ML_LOSS_SMOOTH_L1,      /* beta */
    ML_LOSS_BCE,            /* weight (optional) */
    ML_LOSS_BCE_LOGITS,     /* weight, extra = pos_weight (both optional) */
    ML_LOSS_KL_DIV,         /* log_target */
    ML_LOSS_POISSON_NLL,    /* log_input, full, eps */
    ML_LOSS_GAUSSIAN_NLL,   /* extra = var (required), full, eps */
    /* over a class dim */
    ML_LOSS_NLL,            /* weight, ignore_index */
    ML_LOSS_CROSS_ENTROPY,  /* weight, ignore_index, label_smoothing */
    ML_LOSS_CROSS_ENTROPY_PROBS, /* weight, label_smoothing */
    ML_LOSS_COUNT
} ml_loss_kind;

/* The PyTorch name of a loss kind ("mse_loss", "cross_entropy", ...). */
const char *ml_loss_name(ml_loss_kind kind);

typedef struct ml_loss_args {
    ml_loss_kind kind;
    ml_reduction reduction;
    const ml_tensor *input, *target;
    const ml_tensor *weight;  /* elementwise weight (input's shape) or class weights [c]; or NULL */
    const ml_tensor *extra;   /* pos_weight or var (input's shape); or NULL */
    ml_tensor *aux;           /* cross_entropy: logsumexp per row, float64 [n*inner]; or NULL
                               * when grad_cache is given */
    ml_tensor *grad_cache;    /* forward: when not NULL (mse_loss, cross_entropy*, backends
                               * with grad_in_forward), the gradient w.r.t. input for a
                               * grad_out of 1 (for "none": of 1 per output element), input's
                               * shape and dtype, written by the forward pass */
    bool grad_cached;         /* backward: grad_input already holds that gradient; scale it
                               * by grad_out in place */
    double beta, eps, label_smoothing;
    double norm;              /* the divisor of "mean" (see above) */
    int64_t ignore_index;
    int64_t n, c, inner;      /* class kinds: the input as [n, c, inner] */
    bool log_input, full, log_target;
} ml_loss_args;

typedef struct ml_loss_ops {
    /* out: the reduced 0-dim loss, or the per-element losses for "none" */
    int (*forward)(ml_loss_args *args, ml_tensor *out);
    /* grad_out: the gradient of out (0-dim, or out's shape for "none"); writes
     * grad_input when not NULL, and grad_extra (var's gradient, input's shape)
     * when not NULL. */
    int (*backward)(const ml_loss_args *args, const ml_tensor *grad_out, ml_tensor *grad_input,
                    ml_tensor *grad_extra);
    /* true when forward honours args->grad_cache (and backward args->grad_cached):
     * the gradient is made in the pass that reads the input, and backward is at
     * most one scaling pass in place (none when grad_out is 1) */
    bool grad_in_forward;
} ml_loss_ops;

#endif
