/* Losses: PyTorch's shape rules and dtype checks per loss, the operands made
 * contiguous (and broadcast where torch broadcasts: bce weights, pos_weight,
 * gaussian_nll's var), one fused kernel forward, one fused kernel backward.
 *
 * One autograd path for every backend: for the kinds of ml_loss_grad_in_forward
 * (mse_loss, cross_entropy), when the input's gradient will be wanted, the forward
 * kernel writes it (for a grad_out of 1) into a tensor that the node keeps alone;
 * backward scales it by grad_out in place (scale_grad) and hands it on. The other
 * kinds, and those when the input needs no gradient, save their operands and run
 * the backward kernel. */
#include "loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "elementwise.h"
#include "reduce.h"
#include "shape.h"
#include "softmax.h"

static const char *const loss_names[ML_LOSS_COUNT] = {
    "mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss", "gaussian_nll_loss",
    "nll_loss", "cross_entropy", "cross_entropy",
};

const char *ml_loss_name(ml_loss_kind kind) {
    return kind >= 0 && kind < ML_LOSS_COUNT ? loss_names[kind] : "loss";
}

void ml_loss_options_init(ml_loss_options *o, ml_loss_kind kind) {
    memset(o, 0, sizeof *o);
    o->reduction = ML_REDUCTION_MEAN;
    o->beta = 1.0;
    o->eps = kind == ML_LOSS_GAUSSIAN_NLL ? 1e-6 : 1e-8;
    o->ignore_index = -100;
    o->log_input = true;
}

static bool is_class_kind(ml_loss_kind k) { return ml_loss_is_class_kind(k); }

/* Losses whose gradient w.r.t. target is minus the one w.r.t. input. */
static bool target_grad_is_neg(ml_loss_kind k) {
    return k == ML_LOSS_MSE || k == ML_LOSS_L1 || k == ML_LOSS_SMOOTH_L1 ||
           k == ML_LOSS_GAUSSIAN_NLL;
}

/* t as the kernel wants it: dtype dt, contiguous, broadcast to shape. No autograd. */
static ml_tensor *operand(const ml_tensor *t, ml_dtype dt, int ndim, const int64_t *shape) {
    if (t->dtype == dt && ml_is_contiguous(t) && t->ndim == ndim &&
        memcmp(t->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0)
        return ml_tensor_retain((ml_tensor *)t);
    ml_tensor *out = ml_tensor_empty(dt, t->storage->device, ndim, shape);
    if (out && ml_copy_(out, t)) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

static bool broadcasts_to(const ml_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim > ndim) return false;
    for (int i = 0; i < t->ndim; i++) {
        int64_t s = t->shape[t->ndim - 1 - i], d = shape[ndim - 1 - i];
        if (s != d && s != 1) return false;
    }
    return true;
}

typedef struct prepared {
    ml_loss_args args;
    ml_tensor *input, *target, *weight, *extra, *aux, *cache;  /* owned */
    int out_ndim;
    int64_t out_shape[ML_MAX_DIMS];
    bool var_unsqueezed;
} prepared;

static void prepared_release(prepared *p) {
    ml_tensor_release(p->input);
    ml_tensor_release(p->target);
    ml_tensor_release(p->weight);
    ml_tensor_release(p->extra);
    ml_tensor_release(p->aux);
    ml_tensor_release(p->cache);
}

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

static int check_device(const char *fname, const ml_tensor *a, const ml_tensor *b) {
    return b ? ml_check_same_device(fname, a, b) : 0;
}

static int prepare_elementwise(prepared *p, ml_loss_kind kind, ml_tensor *input,
                               ml_tensor *target, ml_tensor *var, const ml_loss_options *o) {
    const char *fname = ml_loss_name(kind);
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    /* torch broadcasts input against target for these (mse/l1/smooth_l1 with a
     * warning); bce, bce_with_logits and gaussian_nll want the same shape */
    bool broadcasts = kind == ML_LOSS_MSE || kind == ML_LOSS_L1 || kind == ML_LOSS_SMOOTH_L1 ||
                      kind == ML_LOSS_KL_DIV || kind == ML_LOSS_POISSON_NLL;
    int nd = input->ndim;
    int64_t shape[ML_MAX_DIMS];
    memcpy(shape, input->shape, sizeof(int64_t) * (size_t)nd);
    if (!ml_same_shape(input, target)) {
        if (!broadcasts)
            return ml_error_set("%s: input %s and target %s must have the same shape", fname,
                                SHAPE(input, a), SHAPE(target, b));
        if (ml_broadcast_shapes(fname, input->ndim, input->shape, target->ndim, target->shape,
                                &nd, shape))
            return -1;
    }
    ml_dtype dt = input->dtype;
    p->input = operand(input, dt, nd, shape);
    p->target = p->input ? operand(target, dt, nd, shape) : NULL;
    if (!p->target) return -1;
    input = p->input; /* the broadcast shape from here on */
    if (kind == ML_LOSS_BCE || kind == ML_LOSS_BCE_LOGITS) {
        const ml_tensor *ws[2] = {o->weight, kind == ML_LOSS_BCE_LOGITS ? o->pos_weight : NULL};
        const char *wn[2] = {"weight", "pos_weight"};
        for (int i = 0; i < 2; i++) {
            if (!ws[i]) continue;
            if (check_device(fname, input, ws[i])) return -1;
            if (!broadcasts_to(ws[i], input->ndim, input->shape))
                return ml_error_set("%s: %s of shape %s cannot be broadcast to the input's "
                                    "shape %s", fname, wn[i], SHAPE(ws[i], a), SHAPE(input, b));
            ml_tensor *w = operand(ws[i], dt, input->ndim, input->shape);
            if (!w) return -1;
            if (i == 0) p->weight = w;
            else p->extra = w;
        }
    }
    if (kind == ML_LOSS_GAUSSIAN_NLL) {
        if (!var) return ml_error_set("%s: var is required", fname);
        if (check_device(fname, input, var)) return -1;
        /* torch: var of input's shape; or input's shape less the last dim (then
         * unsqueezed); or that with a trailing 1 */
        bool ok = ml_same_shape(var, input);
        const ml_tensor *v = var;
        ml_tensor *vu = NULL;
        if (!ok && input->ndim >= 1 && var->ndim == input->ndim - 1 &&
            memcmp(var->shape, input->shape, sizeof(int64_t) * (size_t)var->ndim) == 0) {
            vu = ml_unsqueeze(var, var->ndim);
            if (!vu) return -1;
            v = vu;
            ok = true;
            p->var_unsqueezed = true;
        } else if (!ok && input->ndim >= 1 && var->ndim == input->ndim &&
                   var->shape[var->ndim - 1] == 1 &&
                   memcmp(var->shape, input->shape, sizeof(int64_t) * (size_t)(var->ndim - 1)) == 0) {
            ok = true;
        }
        if (!ok)
            return ml_error_set("%s: var of shape %s is of incorrect size for input %s "
                                "(expected the input's shape, or it with the last dim "
                                "dropped or of size 1)", fname, SHAPE(var, a), SHAPE(input, b));
        p->extra = operand(v, dt, input->ndim, input->shape);
        ml_tensor_release(vu);
        if (!p->extra) return -1;
    }
    if (o->reduction == ML_REDUCTION_MEAN)
        p->args.p.norm = o->batchmean ? (input->ndim ? (double)input->shape[0] : 1.0)
                                    : (double)ml_numel(input);
    p->out_ndim = o->reduction == ML_REDUCTION_NONE ? input->ndim : 0;
    memcpy(p->out_shape, input->shape, sizeof(int64_t) * (size_t)input->ndim);
    return 0;
}

static int prepare_class(prepared *p, ml_loss_kind kind, ml_tensor *input, ml_tensor *target,
                         const ml_loss_options *o) {
    const char *fname = ml_loss_name(kind);
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX], c[ML_SHAPE_STR_MAX];
    if (input->ndim < 1)
        return ml_error_set("%s: input must be [C] or [N, C, d1, ...], got a 0-dim tensor", fname);
    /* the class-id target's shape: input's without the class dim */
    int cd = input->ndim == 1 ? 0 : 1;
    int tnd = input->ndim - 1;
    int64_t tshape[ML_MAX_DIMS];
    for (int i = 0, j = 0; i < input->ndim; i++)
        if (i != cd) tshape[j++] = input->shape[i];
    int64_t C = input->shape[cd], N = input->ndim == 1 ? 1 : input->shape[0];
    int64_t inner = 1;
    for (int i = 2; i < input->ndim; i++) inner *= input->shape[i];
    bool ids_shape = target->ndim == tnd &&
                     memcmp(target->shape, tshape, sizeof(int64_t) * (size_t)tnd) == 0;
    if (kind == ML_LOSS_CROSS_ENTROPY && ml_dtype_is_float(target->dtype)) {
        if (ml_same_shape(target, input)) {
            kind = ML_LOSS_CROSS_ENTROPY_PROBS;
        } else if (ids_shape) {
            return ml_error_set("%s: a target of shape %s holds class ids and must be int64, "
                                "got %s (use target:long(); float targets are class "
                                "probabilities of the input's shape %s)", fname,
                                SHAPE(target, a), ml_dtype_name(target->dtype), SHAPE(input, b));
        } else {
            return ml_error_set("%s: expected target of shape %s (int64 class ids) or %s (float "
                                "class probabilities) for input %s, got %s", fname,
                                ml_shape_str(tnd, tshape, c, sizeof c), SHAPE(input, a),
                                SHAPE(input, a), SHAPE(target, b));
        }
    } else {
        if (target->dtype != ML_I64)
            return ml_error_set("%s: target must hold int64 class ids, got %s%s", fname,
                                ml_dtype_name(target->dtype),
                                kind == ML_LOSS_CROSS_ENTROPY ? " (float targets are class "
                                "probabilities, of the input's shape)" : " (use target:long())");
        if (!ids_shape)
            return ml_error_set("%s: expected target of shape %s (the input %s without its "
                                "class dim), got %s", fname, ml_shape_str(tnd, tshape, c, sizeof c),
                                SHAPE(input, a), SHAPE(target, b));
    }
    p->args.p.kind = kind;
    if (kind != ML_LOSS_NLL && (o->label_smoothing < 0 || o->label_smoothing > 1))
        return ml_error_set("%s: label_smoothing must be between 0 and 1, got %g", fname,
                            o->label_smoothing);
    if (kind == ML_LOSS_CROSS_ENTROPY_PROBS && o->ignore_index >= 0)
        return ml_error_set("%s: ignore_index is not supported with class-probability "
                            "(float) targets", fname);
    ml_dtype dt = input->dtype;
    p->input = operand(input, dt, input->ndim, input->shape);
    p->target = p->input ? operand(target, target->dtype, target->ndim, target->shape) : NULL;
    if (!p->target) return -1;
    if (o->weight) {
        if (check_device(fname, input, o->weight)) return -1;
        if (o->weight->ndim != 1 || o->weight->shape[0] != C)
            return ml_error_set("%s: weight must be a 1-D tensor of %lld elements (one per "
                                "class), got %s", fname, (long long)C, SHAPE(o->weight, a));
        p->weight = operand(o->weight, dt, 1, o->weight->shape);
        if (!p->weight) return -1;
    }
    p->args.p.cls.n = N;
    p->args.p.cls.c = C;
    p->args.p.cls.inner = inner;
    p->args.p.norm = (double)(N * inner); /* _PROBS; the kernel sets the others' */
    p->out_ndim = o->reduction == ML_REDUCTION_NONE ? tnd : 0;
    memcpy(p->out_shape, tshape, sizeof(int64_t) * (size_t)tnd);
    return 0;
}

/* What a loss node keeps for backward, in node->ctx (freed with the node): the
 * call's typed parameters and how its saved tensors are laid out. */
typedef struct loss_node {
    ml_loss_params p;
    bool grad_cached;    /* saved[SAVED_GRAD] is the input's gradient forward made,
                          * and nothing else is saved */
    bool var_unsqueezed; /* gaussian_nll's var lacked the input's last dim */
} loss_node;

/* node->saved[] slots (NULL where the call had none) */
enum {
    SAVED_GRAD = 0,   /* with grad_cached */
    SAVED_INPUT = 0,  /* otherwise: input, target (broadcast, contiguous) */
    SAVED_TARGET = 1,
    SAVED_WEIGHT = 2, /* bce's elementwise weight, or the class weights */
    SAVED_EXTRA = 3,  /* pos_weight or var; cross_entropy's logsumexps */
    SAVED_COUNT = 4
};
_Static_assert(SAVED_COUNT <= ML_NODE_MAX_SAVED, "a loss node saves 4 tensors");

static int loss_backward(ml_node *node, ml_tensor *g, ml_tensor **gin);

/* The node's name, as torch's grad_fn names them. */
static const char *node_name(ml_loss_kind kind) {
    switch (kind) {
    case ML_LOSS_MSE: return "MseLossBackward";
    case ML_LOSS_NLL: return "NllLossBackward";
    case ML_LOSS_CROSS_ENTROPY:
    case ML_LOSS_CROSS_ENTROPY_PROBS: return "CrossEntropyLossBackward";
    default: return "LossBackward";
    }
}

/* Records the node of a loss computed into out (when a graph is wanted): the
 * parameters, and either the gradient made by forward (taken from p) or the
 * operands backward reads. Returns -1 with ml_error set when out of memory. */
static int attach_node(ml_tensor *out, prepared *p, ml_tensor *input, ml_tensor *target,
                       ml_tensor *var) {
    ml_tensor *ins[3] = {input, target, var};
    ml_node *node = ml_node_attach(out, "LossBackward", loss_backward, 3, ins);
    if (!node) return 0;
    loss_node *ln = malloc(sizeof *ln);
    if (!ln) return ml_error_set("%s: out of memory", ml_loss_name(p->args.p.kind));
    ln->p = p->args.p;
    ln->grad_cached = p->cache != NULL;
    ln->var_unsqueezed = p->var_unsqueezed;
    node->ctx = ln;
    node->free_ctx = free;
    node->name = node_name(p->args.p.kind);
    if (p->cache) {
        /* the gradient is all backward needs; the node takes the reference */
        node->saved[SAVED_GRAD] = p->cache;
        node->n_saved = 1;
        p->cache = NULL;
        return 0;
    }
    ml_tensor *const keep[SAVED_COUNT] = {
        [SAVED_INPUT] = p->input, [SAVED_TARGET] = p->target, [SAVED_WEIGHT] = p->weight,
        [SAVED_EXTRA] = p->extra ? p->extra : p->aux};
    for (int i = 0; i < SAVED_COUNT; i++) node->saved[i] = keep[i] ? ml_tensor_alias(keep[i]) : NULL;
    node->n_saved = SAVED_COUNT;
    return 0;
}

ml_tensor *ml_loss(ml_loss_kind kind, ml_tensor *input, ml_tensor *target, ml_tensor *var,
                   const ml_loss_options *o) {
    ml_loss_options defaults;
    if (!o) {
        ml_loss_options_init(&defaults, kind);
        o = &defaults;
    }
    if (kind < 0 || kind >= ML_LOSS_COUNT || kind == ML_LOSS_CROSS_ENTROPY_PROBS)
        return ml_error_set("loss: unknown loss kind %d", (int)kind), NULL;
    const char *fname = ml_loss_name(kind);
    if (!ml_dtype_is_float(input->dtype))
        return ml_error_set("%s: input must be a floating point tensor, got %s", fname,
                            ml_dtype_name(input->dtype)), NULL;
    if (check_device(fname, input, target)) return NULL;
    if (o->batchmean && kind != ML_LOSS_KL_DIV)
        return ml_error_set("%s: reduction \"batchmean\" is only for kl_div", fname), NULL;
    if (kind == ML_LOSS_SMOOTH_L1 && o->beta < 0)
        return ml_error_set("%s: beta must be >= 0, got %g", fname, o->beta), NULL;

    prepared p;
    memset(&p, 0, sizeof p);
    ml_loss_params *lp = &p.args.p;
    lp->kind = kind;
    lp->reduction = o->reduction;
    lp->smooth_l1.beta = o->beta;
    lp->kl_div.log_target = o->log_target;
    lp->poisson_nll = (ml_poisson_nll_opts){.log_input = o->log_input, .full = o->full, .eps = o->eps};
    lp->gaussian_nll = (ml_gaussian_nll_opts){.full = o->full, .eps = o->eps};
    lp->cls.ignore_index = o->ignore_index;
    lp->cls.label_smoothing = o->label_smoothing;
    int rc = is_class_kind(kind) ? prepare_class(&p, kind, input, target, o)
                                 : prepare_elementwise(&p, kind, input, target, var, o);
    kind = lp->kind;
    ml_tensor *out = NULL;
    const ml_loss_ops *lo = rc == 0 ? ml_need_loss(input, fname) : NULL;
    if (rc == 0 && !lo) rc = -1;
    /* the input's gradient made in the forward pass when it will be wanted: the pass
     * over the input is the only one, and backward is at most a scaling in place */
    bool cache = rc == 0 && ml_loss_grad_in_forward(kind) && input->requires_grad &&
                 ml_grad_enabled();
    /* probabilities that require grad want log_softmax(input) in backward, which
     * the cached gradient does not give: the saved operands then */
    if (kind == ML_LOSS_CROSS_ENTROPY_PROBS && target->requires_grad) cache = false;
    if (rc == 0 && cache) {
        p.cache = ml_tensor_empty_like(p.input);
        if (!p.cache) rc = -1;
    } else if (rc == 0 && is_class_kind(kind) && kind != ML_LOSS_NLL) {
        int64_t rows = lp->cls.n * lp->cls.inner;
        p.aux = ml_tensor_empty(ML_F64, input->storage->device, 1, &rows);
        if (!p.aux) rc = -1;
    }
    if (rc == 0) {
        p.args.input = p.input;
        p.args.target = p.target;
        p.args.weight = p.weight;
        p.args.extra = p.extra;
        p.args.aux = p.aux;
        p.args.grad_cache = p.cache;
        out = ml_tensor_empty(input->dtype, input->storage->device, p.out_ndim, p.out_shape);
        if (out && lo->forward(&p.args, out)) {
            ml_tensor_release(out);
            out = NULL;
        }
    }
    if (out && attach_node(out, &p, input, target, var)) {
        ml_tensor_release(out);
        out = NULL;
    }
    prepared_release(&p);
    return out;
}

/* g summed back to input i's shape (broadcast inputs) in input i's dtype: a new
 * reference, or NULL with ml_error set. */
static ml_tensor *to_input(const ml_node *node, int i, ml_tensor *g) {
    ml_tensor *sum = ml_sum_to_shape(g, node->in_ndim[i], node->in_shape[i]);
    ml_tensor *out = sum ? ml_cast(sum, node->in_dtype[i]) : NULL;
    ml_tensor_release(sum);
    return out;
}

/* The target's gradient of the losses where it is minus the input's (mse, l1, ...). */
static ml_tensor *neg_to_target(const ml_node *node, ml_tensor *gx) {
    ml_tensor *neg = ml_neg(gx);
    ml_tensor *out = neg ? to_input(node, 1, neg) : NULL;
    ml_tensor_release(neg);
    return out;
}

/* The gradient the forward made: scaled by g in place (nothing to do for a g of
 * 1), then handed on as the input's gradient (the node owned the only reference,
 * so a leaf takes it as its grad without a copy), and negated for mse's target. */
static int cached_backward(ml_node *node, const ml_loss_params *lp, ml_tensor *g,
                           ml_tensor **gin) {
    ml_tensor *gx = node->saved[SAVED_GRAD];
    node->saved[SAVED_GRAD] = NULL;
    ml_tensor *gc = operand(g, gx->dtype, g->ndim, g->shape);
    const ml_loss_ops *lo = gc ? ml_need_loss(gx, ml_loss_name(lp->kind)) : NULL;
    int rc = lo ? lo->scale_grad(lp, gc, gx) : -1;
    ml_tensor_release(gc);
    if (rc == 0 && node->needs_grad[1]) {
        gin[1] = neg_to_target(node, gx);
        if (!gin[1]) rc = -1;
    }
    if (rc == 0 && node->needs_grad[0]) {
        gin[0] = ml_sum_to_shape(gx, node->in_ndim[0], node->in_shape[0]);
        if (!gin[0]) rc = -1;
    }
    ml_tensor_release(gx);
    return rc;
}

/* The gradient w.r.t. target of the losses whose is not minus the input's, written
 * with ops (an edge case: perf is not the point), as torch 1.13 gives it:
 *   bce                 -logit(x) * w                      (+-inf at x = 0, 1)
 *   bce_with_logits     -x * w, or (log_sigmoid(-x) - pw * log_sigmoid(x)) * w
 *   kl_div              log(t) + 1 - x, NaN at t = 0 (torch's autograd through
 *                       xlogy(t, t) makes t/t there); log_target: exp(t) (t + 1 - x)
 *   poisson_nll         -x, or -log(x + eps); full adds (t > 1) * (log(t) + 1/(2t)),
 *                       NaN at t = 0 as torch's masked_fill of the Stirling term
 *   cross_entropy probs -(1 - ls) * w_k * log_softmax(x)_k
 * times grad_out (over the class dim for cross_entropy's "none"), divided by the
 * mean's norm. x, t, w, pw are the saved operands (of the broadcast shape); the
 * result is summed back to the target's shape and cast to its dtype. */
typedef struct scratch {
    ml_tensor *t[32];
    int n;
} scratch;

/* Keeps t for release at the end; a NULL (an op failed, ml_error set) passes on. */
static ml_tensor *keep(scratch *s, ml_tensor *t) {
    if (t) s->t[s->n++] = t;
    return t;
}
static ml_tensor *un(scratch *s, ml_unary_op op, ml_tensor *x) {
    return keep(s, x ? ml_unary(op, x) : NULL);
}
static ml_tensor *bin(scratch *s, ml_binary_op op, ml_tensor *a, ml_tensor *b) {
    return keep(s, a && b ? ml_binary(op, a, b) : NULL);
}
static ml_tensor *affine(scratch *s, ml_tensor *x, double mul, double add) {
    ml_tensor *y = x && mul != 1.0 ? keep(s, ml_mul_scalar(x, mul)) : x;
    return y && add != 0.0 ? keep(s, ml_add_scalar(y, add)) : y;
}

/* log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|)) */
static ml_tensor *log_sigmoid(scratch *s, ml_tensor *x) {
    ml_tensor *zero = keep(s, ml_scalar(0.0, x->dtype, x->storage->device));
    ml_tensor *l = un(s, ML_UN_LOG1P, un(s, ML_UN_EXP, un(s, ML_UN_NEG, un(s, ML_UN_ABS, x))));
    return bin(s, ML_BIN_SUB, bin(s, ML_BIN_MINIMUM, x, zero), l);
}

static ml_tensor *target_grad(ml_node *node, const ml_loss_args *a, ml_tensor *g) {
    scratch s = {.n = 0};
    ml_tensor *x = (ml_tensor *)a->input, *t = (ml_tensor *)a->target;
    ml_tensor *w = (ml_tensor *)a->weight, *d = NULL;
    const ml_loss_params *lp = &a->p;
    ml_tensor *gs = lp->reduction == ML_REDUCTION_MEAN ? affine(&s, g, 1.0 / lp->norm, 0.0) : g;
    switch (lp->kind) {
    case ML_LOSS_BCE:
        d = bin(&s, ML_BIN_SUB, un(&s, ML_UN_LOG1P, un(&s, ML_UN_NEG, x)), un(&s, ML_UN_LOG, x));
        break;
    case ML_LOSS_BCE_LOGITS:
        if (a->extra) {
            ml_tensor *pl = bin(&s, ML_BIN_MUL, (ml_tensor *)a->extra, log_sigmoid(&s, x));
            d = bin(&s, ML_BIN_SUB, log_sigmoid(&s, un(&s, ML_UN_NEG, x)), pl);
        } else {
            d = un(&s, ML_UN_NEG, x);
        }
        break;
    case ML_LOSS_KL_DIV:
        if (lp->kl_div.log_target) {
            d = bin(&s, ML_BIN_MUL, un(&s, ML_UN_EXP, t),
                    affine(&s, bin(&s, ML_BIN_SUB, t, x), 1.0, 1.0));
        } else {
            ml_tensor *one = bin(&s, ML_BIN_DIV, t, t);
            d = bin(&s, ML_BIN_SUB, bin(&s, ML_BIN_ADD, un(&s, ML_UN_LOG, t), one), x);
        }
        break;
    case ML_LOSS_POISSON_NLL:
        d = lp->poisson_nll.log_input
                ? un(&s, ML_UN_NEG, x)
                : un(&s, ML_UN_NEG, un(&s, ML_UN_LOG, affine(&s, x, 1.0, lp->poisson_nll.eps)));
        if (lp->poisson_nll.full) {
            ml_tensor *one = keep(&s, ml_scalar(1.0, t->dtype, t->storage->device));
            ml_tensor *gt1 = one ? bin(&s, ML_BIN_GT, t, one) : NULL;
            ml_tensor *m = gt1 ? keep(&s, ml_cast(gt1, x->dtype)) : NULL;
            ml_tensor *st = bin(&s, ML_BIN_ADD, un(&s, ML_UN_LOG, t),
                                affine(&s, un(&s, ML_UN_RECIPROCAL, t), 0.5, 0.0));
            d = bin(&s, ML_BIN_ADD, d, bin(&s, ML_BIN_MUL, m, st));
        }
        break;
    case ML_LOSS_CROSS_ENTROPY_PROBS: {
        int cd = x->ndim == 1 ? 0 : 1;
        d = affine(&s, keep(&s, ml_log_softmax(x, cd)), -(1.0 - lp->cls.label_smoothing), 0.0);
        if (w && x->ndim > 1) {
            int64_t ws[ML_MAX_DIMS];
            ws[0] = lp->cls.c;
            for (int i = 1; i < x->ndim - 1; i++) ws[i] = 1;
            w = keep(&s, ml_reshape(w, x->ndim - 1, ws));
        }
        if (gs && lp->reduction == ML_REDUCTION_NONE) gs = keep(&s, ml_unsqueeze(gs, cd));
        break;
    }
    default:
        ml_error_set("%s: no gradient rule for target", ml_loss_name(lp->kind));
        break;
    }
    if (w) d = bin(&s, ML_BIN_MUL, d, w);
    d = bin(&s, ML_BIN_MUL, d, gs);
    ml_tensor *out = d ? to_input(node, 1, d) : NULL;
    for (int i = 0; i < s.n; i++) ml_tensor_release(s.t[i]);
    return out;
}

static int loss_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    const loss_node *ln = node->ctx;
    if (ln->grad_cached) return cached_backward(node, &ln->p, g, gin);
    ml_loss_args a;
    memset(&a, 0, sizeof a);
    a.p = ln->p;
    a.input = node->saved[SAVED_INPUT];
    a.target = node->saved[SAVED_TARGET];
    a.weight = node->saved[SAVED_WEIGHT];
    if (is_class_kind(a.p.kind)) a.aux = node->saved[SAVED_EXTRA];
    else a.extra = node->saved[SAVED_EXTRA];
    const bool var_unsqueezed = ln->var_unsqueezed;

    const ml_tensor *in = a.input;
    bool neg_target = target_grad_is_neg(a.p.kind);
    bool want_x = node->needs_grad[0] || (node->needs_grad[1] && neg_target);
    bool want_var = node->needs_grad[2];
    ml_tensor *gc = operand(g, in->dtype, g->ndim, g->shape);
    ml_tensor *gx = gc && want_x ? ml_tensor_empty_like(in) : NULL;
    ml_tensor *gv = gc && want_var ? ml_tensor_empty_like(in) : NULL;
    int rc = -1;
    const ml_loss_ops *lo = ml_need_loss(in, ml_loss_name(a.p.kind));
    if (lo && gc && (!want_x || gx) && (!want_var || gv))
        rc = want_x || want_var ? lo->backward(&a, gc, gx, gv) : 0;
    if (rc == 0 && node->needs_grad[1] && !neg_target) {
        gin[1] = target_grad(node, &a, gc);
        if (!gin[1]) rc = -1;
    }
    ml_tensor_release(gc);
    if (rc == 0 && node->needs_grad[1] && neg_target) {
        gin[1] = neg_to_target(node, gx);
        if (!gin[1]) rc = -1;
    }
    if (rc == 0 && gv) {
        int vnd = node->in_ndim[2];
        int64_t vshape[ML_MAX_DIMS];
        memcpy(vshape, node->in_shape[2], sizeof(int64_t) * (size_t)vnd);
        int snd = vnd;
        if (var_unsqueezed) vshape[snd++] = 1;
        ml_tensor *s = ml_sum_to_shape(gv, snd, vshape);
        ml_tensor *r = s ? ml_reshape(s, vnd, node->in_shape[2]) : NULL;
        gin[2] = r ? ml_cast(r, node->in_dtype[2]) : NULL;
        ml_tensor_release(s);
        ml_tensor_release(r);
        if (!gin[2]) rc = -1;
    }
    /* an input broadcast against its target gets the gradient summed back */
    if (rc == 0 && node->needs_grad[0]) {
        gin[0] = ml_sum_to_shape(gx, node->in_ndim[0], node->in_shape[0]);
        if (!gin[0]) rc = -1;
    }
    ml_tensor_release(gx);
    ml_tensor_release(gv);
    return rc;
}

ml_tensor *ml_mse_loss(ml_tensor *input, ml_tensor *target, ml_reduction r) {
    ml_loss_options o;
    ml_loss_options_init(&o, ML_LOSS_MSE);
    o.reduction = r;
    return ml_loss(ML_LOSS_MSE, input, target, NULL, &o);
}

ml_tensor *ml_cross_entropy(ml_tensor *logits, ml_tensor *target, ml_reduction r) {
    ml_loss_options o;
    ml_loss_options_init(&o, ML_LOSS_CROSS_ENTROPY);
    o.reduction = r;
    return ml_loss(ML_LOSS_CROSS_ENTROPY, logits, target, NULL, &o);
}
