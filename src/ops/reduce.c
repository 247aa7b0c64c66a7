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

static const char *const reduce_names[ML_RED_COUNT] = {"sum", "mean", "max", "min",
                                                       "argmax", "argmin", "logsumexp"};

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

/* Runs the kernel; values into *out, positions into *idx when asked. */
static int reduce_raw(ml_reduce_op op, ml_tensor *x, int dim, bool keepdim, ml_tensor **out,
                      ml_tensor **idx) {
    const char *fname = reduce_names[op];
    int d;
    if (resolve_dim(fname, x, dim, &d)) return -1;
    int nd;
    int64_t shape[ML_MAX_DIMS], outer, n, inner;
    reduce_geometry(x, d, keepdim, &nd, shape, &outer, &n, &inner);
    if (n == 0 && op != ML_RED_SUM && op != ML_RED_MEAN && op != ML_RED_LOGSUMEXP)
        return ml_error_set("%s: cannot reduce over an empty dim (use sum)", fname);
    ml_dtype out_dt = x->dtype;
    if (op == ML_RED_ARGMAX || op == ML_RED_ARGMIN) out_dt = ML_I64;
    else if (op == ML_RED_SUM && !ml_dtype_is_float(x->dtype)) out_dt = ML_I64;
    else if ((op == ML_RED_MEAN || op == ML_RED_LOGSUMEXP) && !ml_dtype_is_float(x->dtype))
        return ml_error_set("%s: needs a floating point tensor, got %s (use :float() first)",
                            fname, ml_dtype_name(x->dtype));
    ml_tensor *src = ml_as_contiguous(x);
    if (!src) return -1;
    *out = ml_tensor_empty(out_dt, x->storage->device, nd, shape);
    if (idx) *idx = *out ? ml_tensor_empty(ML_I64, x->storage->device, nd, shape) : NULL;
    int rc = (*out && (!idx || *idx)) ? 0 : -1;
    const ml_reduce_ops *ro = rc == 0 ? ml_need_reduce(x, fname) : NULL;
    if (rc == 0) rc = ro ? ro->reduce(op, src, outer, n, inner, *out, idx ? *idx : NULL) : -1;
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

static int sum_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *u = unreduce(n, g);
    if (!u) return -1;
    ml_tensor *e = ml_expand(u, n->in_ndim[0], n->in_shape[0]);
    ml_tensor_release(u);
    if (!e) return -1;
    if (n->scalars[0] != 1.0) { /* mean: divide by the count */
        gin[0] = ml_mul_scalar(e, n->scalars[0]);
        ml_tensor_release(e);
    } else {
        gin[0] = ml_contiguous_copy(e);
        ml_tensor_release(e);
    }
    return gin[0] ? 0 : -1;
}

/* max/min over a dim: the gradient goes to the position found; over all elements
 * it is split evenly among the ties, as torch's amax does. logsumexp: g * softmax. */
static int select_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *x = n->saved[0], *y = n->saved[1];
    ml_tensor *u = unreduce(n, g), *uy = NULL, *mask = NULL, *w = NULL, *r = NULL;
    ml_tensor *yk = NULL;
    bool lse = n->ints[2];
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
    ml_tensor_release(uy);
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

static ml_tensor *reduce_op(ml_reduce_op op, ml_tensor *x, int dim, bool keepdim,
                            ml_tensor **indices) {
    int d;
    if (resolve_dim(reduce_names[op], x, dim, &d)) return NULL;
    bool by_dim = d >= 0 && (op == ML_RED_MAX || op == ML_RED_MIN);
    bool need_idx = by_dim && (indices || ml_needs_graph(1, &x));
    ml_tensor *out = NULL, *idx = NULL;
    if (reduce_raw(op, x, d < 0 ? ML_ALL_DIMS : d, keepdim, &out, need_idx ? &idx : NULL))
        return NULL;
    ml_node *n = NULL;
    if (op == ML_RED_SUM || op == ML_RED_MEAN) {
        n = ml_node_attach(out, op == ML_RED_SUM ? "SumBackward" : "MeanBackward", sum_backward, 1, &x);
        if (n) {
            int64_t cnt = d < 0 ? ml_numel(x) : x->shape[d];
            n->scalars[0] = op == ML_RED_SUM ? 1.0 : 1.0 / (double)(cnt ? cnt : 1);
        }
    } else if (op == ML_RED_LOGSUMEXP || ((op == ML_RED_MAX || op == ML_RED_MIN) && d < 0)) {
        n = ml_node_attach(out, op == ML_RED_LOGSUMEXP ? "LogsumexpBackward" : "AmaxBackward",
                           select_backward, 1, &x);
        if (n) {
            ml_node_save(n, x);
            ml_node_save(n, out);
            n->ints[2] = op == ML_RED_LOGSUMEXP;
        }
    } else if (by_dim) {
        n = ml_node_attach(out, "MaxBackward", index_backward, 1, &x);
        if (n) ml_node_save(n, idx);
    }
    if (n) {
        n->ints[0] = d;
        n->ints[1] = keepdim;
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
