/* Reductions: the kernel sees x contiguous as [outer, n, inner]. */
#include "reduce.h"

#include <math.h>
#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "creation.h"
#include "elementwise.h"
#include "index.h"
#include "temps.h"

/* Output shape and the [outer, n, inner] split for a reduction over dim d (or all). */
static void reduce_geometry(const ml_tensor *x, int d, bool keepdim, int *ndim, int64_t *shape,
                            int64_t *outer, int64_t *n, int64_t *inner) {
    if (d < 0) {
        *ndim = 0;
        if (keepdim) {
            *ndim = x->ndim;
            for (int i = 0; i < x->ndim; i++) shape[i] = 1;
        }
        *outer = 1;
        *n = ml_numel(x);
        *inner = 1;
        return;
    }
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < d; i++) *outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *n = x->shape[d];
    int k = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i != d) shape[k++] = x->shape[i];
        else if (keepdim) shape[k++] = 1;
    }
    *ndim = k;
}

static int resolve_dim(const char *fname, const ml_tensor *x, int dim, int *d) {
    if (dim == ML_ALL_DIMS) {
        *d = -1;
        return 0;
    }
    /* a 0-dim tensor reduces over "dim 1" (or -1) to itself, as in torch */
    if (x->ndim == 0 && (dim == 0 || dim == -1)) {
        *d = -1;
        return 0;
    }
    *d = ml_wrap_dim(dim, x->ndim);
    if (*d < 0) {
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("%s: dim %d out of range for a tensor of shape %s (expected 1..%d "
                            "or -%d..-1)",
                            fname, dim >= 0 ? dim + 1 : dim,
                            ml_shape_str(x->ndim, x->shape, a, sizeof a), x->ndim, x->ndim);
    }
    return 0;
}

/* The list's result column: the output dtype for an input of dtype dt, or -1 when
 * the reduction refuses it. */
#define RESULT_sum(dt) (ml_dtype_is_float(dt) ? (int)(dt) : (int)ML_I64)
#define RESULT_float(dt) (ml_dtype_is_float(dt) ? (int)(dt) : -1)
#define RESULT_same(dt) ((int)(dt))
#define RESULT_index(dt) ((void)(dt), (int)ML_I64)
#define RESULT_mask(dt) ((void)(dt), (int)ML_U8)
#define RESULT_CASE_(NAME, name, Node, result, ...) case ML_RED_##NAME: return RESULT_##result(dt);
static int result_dtype(ml_reduce_op op, ml_dtype dt) {
    switch (op) {
    ML_REDUCE_OPS(RESULT_CASE_)
    default: return -1;
    }
}
#undef RESULT_CASE_

/* The backend's kernel of op (the table's field named by the list). */
#define KERNEL_CASE_(NAME, name, ...) case ML_RED_##NAME: return ro->name;
static ml_reduce_kernel *kernel_of(const ml_reduce_ops *ro, ml_reduce_op op) {
    switch (op) {
    ML_REDUCE_OPS(KERNEL_CASE_)
    default: return NULL;
    }
}
#undef KERNEL_CASE_

/* Runs the kernel; values into *out, positions into *idx when asked. */
static int reduce_raw(ml_reduce_op op, ml_tensor *x, int dim, bool keepdim, ml_tensor **out,
                      ml_tensor **idx) {
    const char *fname = ml_reduce_name(op);
    int d;
    if (resolve_dim(fname, x, dim, &d)) return -1;
    int nd;
    int64_t shape[ML_MAX_DIMS], outer, n, inner;
    reduce_geometry(x, d, keepdim, &nd, shape, &outer, &n, &inner);
    if (n == 0 && !ml_reduce_empty_ok(op))
        return ml_error_set("%s: cannot reduce over an empty dim (use sum)", fname);
    const int out_dt = result_dtype(op, x->dtype);
    if (out_dt < 0)
        return ml_error_set("%s: needs a floating point tensor, got %s (use :float() first)",
                            fname, ml_dtype_name(x->dtype));
    ml_tensor *src = ml_as_contiguous(x);
    if (!src) return -1;
    *out = ml_tensor_empty((ml_dtype)out_dt, x->storage->device, nd, shape);
    if (idx) *idx = *out ? ml_tensor_empty(ML_I64, x->storage->device, nd, shape) : NULL;
    int rc = (*out && (!idx || *idx)) ? 0 : -1;
    const ml_reduce_ops *ro = rc == 0 ? ml_need_reduce(x, fname) : NULL;
    ml_reduce_kernel *kernel = ro ? kernel_of(ro, op) : NULL;
    if (rc == 0) rc = kernel ? kernel(src, outer, n, inner, *out, idx ? *idx : NULL) : -1;
    ml_tensor_release(src);
    if (rc) {
        ml_tensor_release(*out);
        *out = NULL;
        if (idx) {
            ml_tensor_release(*idx);
            *idx = NULL;
        }
    }
    return rc;
}

/* The gradient g of a reduced output, reshaped to broadcast against the input. */
static ml_tensor *unreduce(ml_node *n, ml_tensor *g) {
    int d = (int)n->ints[0];
    bool keepdim = n->ints[1];
    if (d < 0 || keepdim) return ml_tensor_retain(g);
    int64_t shape[ML_MAX_DIMS];
    memcpy(shape, n->in_shape[0], sizeof shape);
    shape[d] = 1;
    return ml_reshape(g, n->in_ndim[0], shape);
}

/* The reductions' rules, named by ML_REDUCE_OPS. ints[0] is the dim (-1: all),
 * ints[1] keepdim; saved[] and scalars[0] as the list's `saves` column says. */

/* g spread over the reduced elements, times scale. */
static int spread_backward(ml_node *n, ml_tensor *g, ml_tensor **gin, double scale) {
    ml_tensor *u = unreduce(n, g);
    if (!u) return -1;
    ml_tensor *e = ml_expand(u, n->in_ndim[0], n->in_shape[0]);
    ml_tensor_release(u);
    if (!e) return -1;
    gin[0] = scale != 1.0 ? ml_mul_scalar(e, scale) : ml_contiguous_copy(e);
    ml_tensor_release(e);
    return gin[0] ? 0 : -1;
}

static int sum_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    return spread_backward(n, g, gin, 1.0);
}

/* scalars[0]: how many elements each output is the mean of */
static int mean_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    return spread_backward(n, g, gin, 1.0 / (n->scalars[0] > 0 ? n->scalars[0] : 1.0));
}

/* Over all elements: max/min split the gradient evenly among the ties, as torch's
 * amax does; logsumexp (lse): g * softmax. saved: x, y. */
static int select_backward(ml_node *n, ml_tensor *g, ml_tensor **gin, bool lse) {
    ml_tensor *x = n->saved[0], *y = n->saved[1];
    ml_tensor *u = unreduce(n, g), *mask = NULL, *w = NULL, *r = NULL;
    ml_tensor *yk = NULL;
    int rc = -1;
    if (!u) return -1;
    yk = unreduce(n, y);
    if (!yk) goto done;
    if (lse) {
        ml_tensor *diff = ml_sub(x, yk);
        w = diff ? ml_unary(ML_UN_EXP, diff) : NULL;
        ml_tensor_release(diff);
    } else {
        mask = ml_binary(ML_BIN_EQ, x, yk);
        ml_tensor *mf = mask ? ml_cast(mask, x->dtype) : NULL;
        if (mf) {
            /* ties share the gradient */
            int dim = (int)n->ints[0];
            ml_tensor *cnt = ml_sum(mf, dim < 0 ? ML_ALL_DIMS : dim, true);
            w = cnt ? ml_div(mf, cnt) : NULL;
            ml_tensor_release(cnt);
        }
        ml_tensor_release(mf);
    }
    if (!w) goto done;
    r = ml_mul(u, w);
    if (!r) goto done;
    gin[0] = r;
    rc = 0;
done:
    ml_tensor_release(u);
    ml_tensor_release(yk);
    ml_tensor_release(mask);
    ml_tensor_release(w);
    return rc;
}

/* max/min with a dim route the gradient to the position found (one position, not
 * the ties, as torch): scatter_add of g at the saved indices, on any device. */
static int index_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *idx = n->saved[0];
    int d = (int)n->ints[0];
    bool keepdim = n->ints[1];
    ml_tensor *ik = keepdim ? ml_tensor_retain(idx) : ml_unsqueeze(idx, d);
    ml_tensor *gk = keepdim ? ml_tensor_retain(g) : ml_unsqueeze(g, d);
    gin[0] = ik && gk ? ml_scatter_add_new(n->in_ndim[0], n->in_shape[0], d, ik, gk) : NULL;
    ml_tensor_release(ik);
    ml_tensor_release(gk);
    return gin[0] ? 0 : -1;
}

/* max/min ("picked"): over a dim the saved positions, over all elements the ties */
static int extreme_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    return n->ints[0] >= 0 ? index_backward(n, g, gin) : select_backward(n, g, gin, false);
}

static int logsumexp_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    return select_backward(n, g, gin, true);
}

/* The list's backward and saves columns. */
enum { SAVES_none, SAVES_xy, SAVES_picked };
#define RULE_CASE_(NAME, name, Node, result, empty, backward, saves) \
    case ML_RED_##NAME: *saves_out = SAVES_##saves; return backward;
static ml_backward_fn reduce_rule(ml_reduce_op op, int *saves_out) {
    switch (op) {
    ML_REDUCE_OPS(RULE_CASE_)
    default: *saves_out = SAVES_none; return NULL;
    }
}
#undef RULE_CASE_

static ml_tensor *reduce_op(ml_reduce_op op, ml_tensor *x, int dim, bool keepdim,
                            ml_tensor **indices) {
    int d;
    if (resolve_dim(ml_reduce_name(op), x, dim, &d)) return NULL;
    int saves;
    ml_backward_fn rule = reduce_rule(op, &saves);
    /* max/min over a dim also give the positions (asked for, or the rule's) */
    bool by_dim = d >= 0 && saves == SAVES_picked;
    bool need_idx = by_dim && (indices || ml_needs_graph(1, &x));
    ml_tensor *out = NULL, *idx = NULL;
    if (reduce_raw(op, x, d < 0 ? ML_ALL_DIMS : d, keepdim, &out, need_idx ? &idx : NULL))
        return NULL;
    ml_node *n = rule ? ml_node_attach(out, ml_reduce_node_name(op), rule, 1, &x) : NULL;
    if (n) {
        n->ints[0] = d;
        n->ints[1] = keepdim;
        if (saves == SAVES_none) {
            n->scalars[0] = (double)(d < 0 ? ml_numel(x) : x->shape[d]);
        } else if (by_dim) {
            ml_node_save(n, idx);
        } else {
            ml_node_save(n, x);
            ml_node_save(n, out);
        }
    }
    if (indices) *indices = idx;
    else ml_tensor_release(idx);
    return out;
}

ml_tensor *ml_sum(ml_tensor *x, int dim, bool keepdim) { return reduce_op(ML_RED_SUM, x, dim, keepdim, NULL); }
ml_tensor *ml_mean(ml_tensor *x, int dim, bool keepdim) { return reduce_op(ML_RED_MEAN, x, dim, keepdim, NULL); }
ml_tensor *ml_max(ml_tensor *x, int dim, bool keepdim, ml_tensor **indices) {
    return reduce_op(ML_RED_MAX, x, dim, keepdim, indices);
}
ml_tensor *ml_min(ml_tensor *x, int dim, bool keepdim, ml_tensor **indices) {
    return reduce_op(ML_RED_MIN, x, dim, keepdim, indices);
}
ml_tensor *ml_argmax(ml_tensor *x, int dim, bool keepdim) { return reduce_op(ML_RED_ARGMAX, x, dim, keepdim, NULL); }
ml_tensor *ml_argmin(ml_tensor *x, int dim, bool keepdim) { return reduce_op(ML_RED_ARGMIN, x, dim, keepdim, NULL); }
ml_tensor *ml_logsumexp(ml_tensor *x, int dim, bool keepdim) {
    return reduce_op(ML_RED_LOGSUMEXP, x, dim, keepdim, NULL);
}

ml_tensor *ml_all(ml_tensor *x, int dim, bool keepdim) { return reduce_op(ML_RED_ALL, x, dim, keepdim, NULL); }
ml_tensor *ml_any(ml_tensor *x, int dim, bool keepdim) { return reduce_op(ML_RED_ANY, x, dim, keepdim, NULL); }

/* --- var, std, norm: composed of the ops above (forward with grad mode off), each
 * with its own node and rule, as torch's VarBackward, StdBackward, NormBackward.
 * ints[0]: the dim (-1: all), ints[1]: keepdim, as the list's reductions. --- */

/* Runs with grad mode off and restores it: the compositions' own steps record no
 * graph, the op attaches one node. */
static bool grad_off(void) {
    bool was = ml_grad_enabled();
    ml_set_grad_enabled(false);
    return was;
}

/* The float input check and the dim of var/std/norm: *d as reduce_op's (-1 for all
 * elements), *n the count of elements reduced into each output. */
static int stat_dims(const char *fname, ml_tensor *x, int dim, int *d, int64_t *n) {
    if (resolve_dim(fname, x, dim, d)) return -1;
    if (!ml_dtype_is_float(x->dtype))
        return ml_error_set("%s: needs a floating point tensor, got %s (use :float() first)",
                            fname, ml_dtype_name(x->dtype));
    *n = *d < 0 ? ml_numel(x) : x->shape[*d];
    return 0;
}

/* var: g * 2 (x - mean) / (n - correction), as torch's var_backward (the divisor
 * not clamped at 0 there). saved: x, mean (keepdim); scalars[0]: n - correction.
 * std first turns g into var's: g / (2 std), 0 where std is 0 (torch's
 * std_backward); saved[2]: std. */
static int var_std_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *x = n->saved[0], *mean = n->saved[1];
    const bool is_std = n->n_saved == 3;
    ml_temps s = {0};
    ml_tensor *gu = tmp_keep(&s, unreduce(n, g));
    if (is_std) {
        ml_tensor *sd = tmp_keep(&s, unreduce(n, n->saved[2]));
        ml_tensor *zero = tmp_scalar(&s, sd, 0);
        ml_tensor *q = tmp_div(&s, gu, tmp_mul_scalar(&s, sd, 2));
        gu = tmp_where(&s, tmp_binary(&s, ML_BIN_EQ, sd, zero), zero, q);
    }
    ml_tensor *r = tmp_mul(&s, gu, tmp_sub(&s, x, mean));
    gin[0] = tmp_result(&s, tmp_mul_scalar(&s, r, 2.0 / n->scalars[0]));
    tmp_release(&s);
    return gin[0] ? 0 : -1;
}

static ml_tensor *var_std(ml_tensor *x, int dim, double correction, bool keepdim, bool is_std) {
    const char *fname = is_std ? "std" : "var";
    int d = -1;
    int64_t count = 0;
    if (stat_dims(fname, x, dim, &d, &count)) return NULL;
    const int rd = d < 0 ? ML_ALL_DIMS : d;
    /* two passes (the mean, then the squared deviations), each summed in a fixed
     * order; torch's divisor max(0, n - correction) */
    const double dof = (double)count - correction;
    const bool was = grad_off();
    ml_temps s = {0};
    ml_tensor *mean = tmp_mean(&s, x, rd, true);
    ml_tensor *dev = tmp_sub(&s, x, mean);
    ml_tensor *ss = tmp_sum(&s, tmp_mul(&s, dev, dev), rd, keepdim);
    ml_tensor *v = tmp_div(&s, ss, tmp_scalar(&s, ss, dof > 0 ? dof : 0));
    ml_tensor *out = tmp_result(&s, is_std ? tmp_unary(&s, ML_UN_SQRT, v) : v);
    ml_set_grad_enabled(was);
    ml_node *n = out ? ml_node_attach(out, is_std ? "StdBackward" : "VarBackward", var_std_backward,
                                      1, &x)
                     : NULL;
    if (n) {
        n->ints[0] = d;
        n->ints[1] = keepdim;
        n->scalars[0] = dof;
        ml_node_save(n, x);
        ml_node_save(n, mean);
        if (is_std) ml_node_save(n, out);
    }
    tmp_release(&s);
    return out;
}

ml_tensor *ml_var(ml_tensor *x, int dim, double correction, bool keepdim) {
    return var_std(x, dim, correction, keepdim, false);
}
ml_tensor *ml_std(ml_tensor *x, int dim, double correction, bool keepdim) {
    return var_std(x, dim, correction, keepdim, true);
}

/* norm's gradient, torch 1.13's norm_backward: p 0: none (the input's grad stays
 * nil, as torch's); 1: sign(x) g; 2: x / norm
 * g (0 where the norm is 0); +-inf: sign(x) g shared among the elements at the norm
 * (and NaNs); other p: sign(x) |x|^(p-1) scaled by g / norm^(p-1) (p < 1: g
 * norm^(1-p), 0 at x == 0). saved: x, the norm; scalars[0]: p. */
static int norm_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *x = n->saved[0];
    const double p = n->scalars[0];
    const int d = (int)n->ints[0];
    if (p == 0) return 0; /* no gradient: torch's rule gives an undefined one */
    ml_temps s = {0};
    ml_tensor *gu = tmp_keep(&s, unreduce(n, g));
    ml_tensor *nu = tmp_keep(&s, unreduce(n, n->saved[1]));
    ml_tensor *zero = tmp_scalar(&s, x, 0);
    ml_tensor *norm0 = tmp_binary(&s, ML_BIN_EQ, nu, zero);
    ml_tensor *sgn = tmp_unary(&s, ML_UN_SIGN, x), *ax = tmp_unary(&s, ML_UN_ABS, x);
    ml_tensor *r = NULL;
    if (p == 1) {
        r = tmp_mul(&s, sgn, gu);
    } else if (p == 2) {
        r = tmp_mul(&s, gu, tmp_where(&s, norm0, zero, tmp_div(&s, x, nu)));
    } else if (isinf(p)) {
        ml_tensor *at = tmp_cast(&s, tmp_binary(&s, ML_BIN_EQ, ax, nu), x->dtype);
        ml_tensor *nan = tmp_cast(&s, tmp_unary(&s, ML_UN_ISNAN, ax), x->dtype);
        ml_tensor *mask = tmp_add(&s, at, nan); /* NaN never equals: 0 or 1 */
        ml_tensor *cnt = tmp_sum(&s, mask, d < 0 ? ML_ALL_DIMS : d, true);
        r = tmp_mul(&s, sgn, tmp_mul(&s, tmp_div(&s, gu, cnt), mask));
    } else if (p < 1) {
        ml_tensor *xs = tmp_mul(&s, sgn, tmp_pow_scalar(&s, ax, p - 1));
        xs = tmp_where(&s, tmp_binary(&s, ML_BIN_EQ, x, zero), zero, xs);
        r = tmp_mul(&s, tmp_mul(&s, xs, gu), tmp_pow_scalar(&s, nu, 1 - p));
    } else {
        ml_tensor *xs = p < 2 ? tmp_mul(&s, sgn, tmp_pow_scalar(&s, ax, p - 1))
                              : tmp_mul(&s, x, tmp_pow_scalar(&s, ax, p - 2));
        ml_tensor *scale = tmp_div(&s, gu, tmp_pow_scalar(&s, nu, p - 1));
        r = tmp_mul(&s, xs, tmp_where(&s, norm0, zero, scale));
    }
    gin[0] = tmp_result(&s, r);
    tmp_release(&s);
    return gin[0] ? 0 : -1;
}

ml_tensor *ml_norm(ml_tensor *x, double p, int dim, bool keepdim) {
    int d = -1;
    int64_t count = 0;
    if (stat_dims("norm", x, dim, &d, &count)) return NULL;
    if (isnan(p)) return ml_error_set("norm: p must be a number, got nan"), NULL;
    if (isinf(p) && count == 0)
        return ml_error_set("norm: cannot compute the %s norm over an empty dim (it has no "
                            "identity)", p > 0 ? "inf" : "-inf"), NULL;
    const int rd = d < 0 ? ML_ALL_DIMS : d;
    const bool was = grad_off();
    ml_temps s = {0};
    ml_tensor *ax = tmp_unary(&s, ML_UN_ABS, x), *r;
    if (p == 2) {
        r = tmp_unary(&s, ML_UN_SQRT, tmp_sum(&s, tmp_mul(&s, x, x), rd, keepdim));
    } else if (p == 1) {
        r = tmp_sum(&s, ax, rd, keepdim);
    } else if (isinf(p)) {
        r = ax && !s.failed ? tmp_keep(&s, p > 0 ? ml_max(ax, rd, keepdim, NULL)
                                                 : ml_min(ax, rd, keepdim, NULL))
                            : NULL;
    } else if (p == 0) {
        ml_tensor *nz = tmp_binary(&s, ML_BIN_NE, x, tmp_scalar(&s, x, 0));
        r = tmp_cast(&s, tmp_sum(&s, nz, rd, keepdim), x->dtype);
    } else {
        r = tmp_pow_scalar(&s, tmp_sum(&s, tmp_pow_scalar(&s, ax, p), rd, keepdim), 1 / p);
    }
    ml_tensor *out = tmp_result(&s, r);
    ml_set_grad_enabled(was);
    ml_node *n = out ? ml_node_attach(out, "NormBackward", norm_backward, 1, &x) : NULL;
    if (n) {
        n->ints[0] = d;
        n->ints[1] = keepdim;
        n->scalars[0] = p;
        ml_node_save(n, x);
        ml_node_save(n, out);
    }
    tmp_release(&s);
    return out;
}

ml_tensor *ml_sum_to_shape(ml_tensor *g, int ndim, const int64_t *shape) {
    if (g->ndim == ndim && memcmp(g->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0)
        return ml_tensor_retain(g);
    ml_tensor *cur = ml_tensor_retain(g);
    /* leading dims that broadcasting added */
    while (cur && cur->ndim > ndim) {
        ml_tensor *s = ml_sum(cur, 0, false);
        ml_tensor_release(cur);
        cur = s;
    }
    for (int i = 0; cur && i < ndim; i++) {
        if (shape[i] == 1 && cur->shape[i] != 1) {
            ml_tensor *s = ml_sum(cur, i, true);
            ml_tensor_release(cur);
            cur = s;
        }
    }
    return cur;
}
