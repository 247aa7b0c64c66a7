/* Backend family: fused losses (one pass forward, one pass backward).
 *
 * Every tensor handed to a kernel is contiguous, of the input's float dtype (class
 * ids: int64), already shape-checked and broadcast by ops/loss.c:
 *
 *  - elementwise kinds (MSE .. GAUSSIAN_NLL): input, target, and the optional
 *    weight / extra all have the input's shape. The per-element loss is
 *    out[i] ("none"), or sum_i l[i] (/ p.norm for "mean", set by the caller).
 *    The per-element formulas are in loss_formulas.h, shared by every backend.
 *  - class kinds (NLL, CROSS_ENTROPY, CROSS_ENTROPY_PROBS): input is seen as
 *    [n, c, inner] (class dim in the middle); target is int64 [n, inner] class
 *    ids, or for _PROBS float [n, c, inner] probabilities; weight is [c] or NULL.
 *    The "none" output is [n, inner]. For NLL and CROSS_ENTROPY with "mean", the
 *    forward kernel sets p.norm to the summed weight of the targets that are
 *    not ignore_index (PyTorch's divisor); for _PROBS the caller sets it (n*inner).
 *    CROSS_ENTROPY* forward writes each row's logsumexp into aux (float64
 *    [n*inner]) when given; backward reads it instead of recomputing it.
 *
 * The gradient in the forward pass: for the kinds of ml_loss_grad_in_forward
 * (mse_loss, cross_entropy with ids or probabilities), forward is given a
 * grad_cache (input's shape and dtype) when the input's gradient will be wanted,
 * and writes into it the gradient for a grad_out of 1 (of 1 per output element
 * for "none"), the mean's divisor included, in the same pass that reads the
 * input. Backward is then scale_grad: that gradient times grad_out, in place.
 * Every backend does this, so ops/loss.c has one autograd path for all devices.
 *
 * Sums are deterministic: a backend adds the per-element losses (and the weights
 * of "mean") in an order fixed by the sizes alone, never by the number of threads
 * or blocks that ran.
 *
 * A kernel that finds bad data (a class id outside [0, c), a probability outside
 * [0, 1], a negative var) returns -1 with ml_error set, naming the loss. */
#ifndef ML_BACKEND_LOSS_H
#define ML_BACKEND_LOSS_H

#include "../tensor.h"
#include "table.h"

typedef enum { ML_REDUCTION_NONE, ML_REDUCTION_MEAN, ML_REDUCTION_SUM } ml_reduction;

typedef enum {
    /* elementwise */
    ML_LOSS_MSE,
    ML_LOSS_L1,
    ML_LOSS_SMOOTH_L1,      /* smooth_l1 */
    ML_LOSS_BCE,            /* weight (optional) */
    ML_LOSS_BCE_LOGITS,     /* weight, extra = pos_weight (both optional) */
    ML_LOSS_KL_DIV,         /* kl_div */
    ML_LOSS_POISSON_NLL,    /* poisson_nll */
    ML_LOSS_GAUSSIAN_NLL,   /* extra = var (required), gaussian_nll */
    /* over a class dim */
    ML_LOSS_NLL,            /* weight, cls (ignore_index) */
    ML_LOSS_CROSS_ENTROPY,  /* weight, cls */
    ML_LOSS_CROSS_ENTROPY_PROBS, /* weight, cls (label_smoothing) */
    ML_LOSS_COUNT
} ml_loss_kind;

/* The PyTorch name of a loss kind ("mse_loss", "cross_entropy", ...). */
const char *ml_loss_name(ml_loss_kind kind);

static inline bool ml_loss_is_class_kind(ml_loss_kind k) {
    return k >= ML_LOSS_NLL && k < ML_LOSS_COUNT;
}

/* The kinds whose forward makes the input's gradient when given a grad_cache. */
static inline bool ml_loss_grad_in_forward(ml_loss_kind k) {
    return k == ML_LOSS_MSE || k == ML_LOSS_CROSS_ENTROPY || k == ML_LOSS_CROSS_ENTROPY_PROBS;
}

/* Each loss's own options; a kernel reads those of its kind only. */
typedef struct ml_smooth_l1_opts {
    double beta;              /* the L1/L2 crossover, >= 0 */
} ml_smooth_l1_opts;
typedef struct ml_kl_div_opts {
    bool log_target;          /* the target holds log-probabilities */
} ml_kl_div_opts;
typedef struct ml_poisson_nll_opts {
    bool log_input;           /* the input is log(rate) */
    bool full;                /* add Stirling's term where target > 1 */
    double eps;               /* log(x + eps) when not log_input */
} ml_poisson_nll_opts;
typedef struct ml_gaussian_nll_opts {
    bool full;                /* add 0.5 log(2 pi) */
    double eps;               /* var's floor for the value */
} ml_gaussian_nll_opts;
typedef struct ml_class_opts {
    int64_t n, c, inner;      /* the input as [n, c, inner] */
    int64_t ignore_index;     /* nll, cross_entropy with ids: rows with it count for nothing */
    double label_smoothing;   /* cross_entropy: in [0, 1] */
} ml_class_opts;

/* What a loss call is, apart from its tensors: small and plain, so the autograd
 * node keeps a copy of it for backward. */
typedef struct ml_loss_params {
    ml_loss_kind kind;
    ml_reduction reduction;
    double norm;              /* the divisor of "mean" (see above) */
    ml_smooth_l1_opts smooth_l1;
    ml_kl_div_opts kl_div;
    ml_poisson_nll_opts poisson_nll;
    ml_gaussian_nll_opts gaussian_nll;
    ml_class_opts cls;        /* the class kinds */
} ml_loss_params;

typedef struct ml_loss_args {
    ml_loss_params p;
    const ml_tensor *input, *target;
    const ml_tensor *weight;  /* elementwise weight (input's shape) or class weights [c]; or NULL */
    const ml_tensor *extra;   /* pos_weight or var (input's shape); or NULL */
    ml_tensor *aux;           /* cross_entropy: logsumexp per row, float64 [n*inner]; or NULL
                               * (forward: not wanted, with a grad_cache) */
    ml_tensor *grad_cache;    /* forward: NULL, or (kinds of ml_loss_grad_in_forward) where
                               * to write the input's gradient for a grad_out of 1 */
} ml_loss_args;

/* The family's entries (see ML_BACKEND_FIELD in table.h):
 *  - forward: out is the reduced 0-dim loss, or the per-element (per-row) losses
 *    for "none"; sets a->p.norm for nll / cross_entropy with ids (see above);
 *    writes a->aux and a->grad_cache when given.
 *  - backward: grad_out is the gradient of out (0-dim, or out's shape for
 *    "none"); writes grad_input when not NULL, and grad_extra (var's gradient,
 *    input's shape) when not NULL. Reads the saved operands (not used after a
 *    forward that wrote a grad_cache).
 *  - scale_grad: grad holds what forward wrote into grad_cache; multiplies it in
 *    place by grad_out (0-dim, or the "none" output's shape: then each element by
 *    its own element's or row's grad_out, a row's zeros staying zeros). Nothing to
 *    do for a 0-dim grad_out of 1. */
#define ML_LOSS_ENTRIES(X, P)                                                            \
    X(P, int, forward, (ml_loss_args * a, ml_tensor *out))                               \
    X(P, int, backward,                                                                  \
      (const ml_loss_args *a, const ml_tensor *grad_out, ml_tensor *grad_input,          \
       ml_tensor *grad_extra))                                                           \
    X(P, int, scale_grad,                                                                \
      (const ml_loss_params *p, const ml_tensor *grad_out, ml_tensor *grad))

typedef struct ml_loss_ops {
    ML_LOSS_ENTRIES(ML_BACKEND_FIELD, _)
} ml_loss_ops;

#endif
