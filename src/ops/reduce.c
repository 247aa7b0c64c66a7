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
