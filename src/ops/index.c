/* Indexing ops: checks (dtype of the index, shapes, the range of index values),
 * output allocation, autograd, dispatch to the backend's index family. */
#include "index.h"

#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "creation.h"
#include "elementwise.h"
#include "reduce.h"
#include "shape.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

static const ml_index_ops *index_ops(const char *fname, const ml_tensor *t) {
    return ml_need_index(t, fname);
}

static int check_index(const char *fname, const ml_tensor *x, const ml_tensor *index) {
    if (ml_check_same_device(fname, x, index)) return -1;
    if (index->dtype != ML_I64)
        return ml_error_set("%s: index must be an int64 tensor of 0-based positions, got %s "
                            "(use :long())", fname, ml_dtype_name(index->dtype));
    return 0;
}

static int wrap_dim(const char *fname, const ml_tensor *x, int dim, int *d) {
    *d = ml_wrap_dim(dim, x->ndim);
    if (*d >= 0) return 0;
    char a[ML_SHAPE_STR_MAX];
    int n = x->ndim ? x->ndim : 1;
    return ml_error_set("%s: dim %d out of range for a tensor of shape %s (expected 1..%d or "
                        "-%d..-1)", fname, dim >= 0 ? dim + 1 : dim, SHAPE(x, a), n, n);
}

/* The smallest and largest value of a contiguous int64 tensor (not empty). On the
 * CPU one pass over it; elsewhere two reductions and a copy of two numbers. */
int ml_index_bounds(const ml_tensor *t, int64_t *lo, int64_t *hi) {
    if (t->storage->device == ML_CPU) {
        const int64_t *p = (const int64_t *)ml_data(t);
        int64_t n = ml_numel(t), a = p[0], b = p[0];
        for (int64_t i = 1; i < n; i++) {
            a = p[i] < a ? p[i] : a;
            b = p[i] > b ? p[i] : b;
        }
        *lo = a;
        *hi = b;
        return 0;
    }
    ml_tensor *tt = (ml_tensor *)t;
    ml_tensor *mn = ml_min(tt, ML_ALL_DIMS, false, NULL), *mx = ml_max(tt, ML_ALL_DIMS, false, NULL);
    ml_tensor *hmn = mn ? ml_to_device(mn, ML_CPU) : NULL, *hmx = mx ? ml_to_device(mx, ML_CPU) : NULL;
    int rc = hmn && hmx ? 0 : -1;
    if (rc == 0) {
        *lo = *(const int64_t *)ml_data(hmn);
        *hi = *(const int64_t *)ml_data(hmx);
    }
    ml_tensor_release(mn);
    ml_tensor_release(mx);
    ml_tensor_release(hmn);
    ml_tensor_release(hmx);
    return rc;
}

/* Every value of index in [0, size); d is the 0-based dim it indexes. */
static int check_range(const char *fname, const ml_tensor *index, int d, int64_t size) {
    if (ml_numel(index) == 0) return 0;
    int64_t lo, hi;
    if (ml_index_bounds(index, &lo, &hi)) return -1;
    if (lo < 0)
        return ml_error_set("%s: index %lld out of range for dim %d of size %lld (index values "
                            "are 0-based positions, 0..%lld)", fname, (long long)lo, d + 1,
                            (long long)size, (long long)size - 1);
    if (hi >= size)
        return ml_error_set("%s: index %lld out of range for dim %d of size %lld (index values "
                            "are 0-based positions, 0..%lld)", fname, (long long)hi, d + 1,
                            (long long)size, (long long)size - 1);
    return 0;
}

/* A 0-dim tensor handled as a 1-D one of one element (differentiable). */
static ml_tensor *as_1d(ml_tensor *t) {
    int64_t one = 1;
    return ml_reshape(t, 1, &one);
}

/* --- gather / scatter_add --- */

/* x and index contiguous and checked */
static ml_tensor *gather_raw(const ml_tensor *x, int d, const ml_tensor *index) {
    const ml_index_ops *ops = index_ops("gather", x);
    if (!ops) return NULL;
    ml_tensor *out = ml_tensor_empty(x->dtype, x->storage->device, index->ndim, index->shape);
    if (out && ops->gather(x, d, index, out)) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

/* out (contiguous, owned) += src scattered at index along d */
static int scatter_into(ml_tensor *out, int d, const ml_tensor *index, const ml_tensor *src) {
    const ml_index_ops *ops = index_ops("scatter_add", out);
    if (!ops) return -1;
    ml_tensor *ic = ml_as_contiguous(index), *sc = ic ? ml_as_contiguous(src) : NULL;
    int rc = sc ? ops->scatter_add(out, d, ic, sc) : -1;
    ml_tensor_release(ic);
    ml_tensor_release(sc);
    return rc;
}

ml_tensor *ml_scatter_add_new(int ndim, const int64_t *shape, int dim, ml_tensor *index,
                              ml_tensor *src) {
    ml_tensor *out = ml_zeros(src->dtype, src->storage->device, ndim, shape);
    if (out && scatter_into(out, dim, index, src)) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

static int gather_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    gin[0] = ml_scatter_add_new(n->in_ndim[0], n->in_shape[0], (int)n->ints[0], n->saved[0], g);
    return gin[0] ? 0 : -1;
}

/* Shared checks of gather and scatter_add: dims, sizes, values. */
static int check_gather(const char *fname, const ml_tensor *x, int dim, const ml_tensor *index,
                        int *d) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    if (check_index(fname, x, index)) return -1;
    if (index->ndim != x->ndim)
        return ml_error_set("%s: index of shape %s has %d dims, the input of shape %s has %d "
                            "(they must match)", fname, SHAPE(index, a), index->ndim,
                            SHAPE(x, b), x->ndim);
    if (wrap_dim(fname, x, dim, d)) return -1;
    for (int k = 0; k < x->ndim; k++)
        if (k != *d && index->shape[k] > x->shape[k])
            return ml_error_set("%s: index of shape %s is larger than the input of shape %s in "
                                "dim %d (only dim %d may be larger)", fname, SHAPE(index, a),
                                SHAPE(x, b), k + 1, *d + 1);
    return 0;
}

ml_tensor *ml_gather(ml_tensor *x, int dim, ml_tensor *index) {
    if (x->ndim == 0 && index->ndim == 0 && (dim == 0 || dim == -1)) {
        ml_tensor *x1 = as_1d(x), *i1 = x1 ? as_1d(index) : NULL;
        ml_tensor *r = i1 ? ml_gather(x1, 0, i1) : NULL;
        ml_tensor *out = r ? ml_reshape(r, 0, NULL) : NULL;
        ml_tensor_release(x1);
        ml_tensor_release(i1);
        ml_tensor_release(r);
        return out;
    }
    int d;
    if (check_gather("gather", x, dim, index, &d)) return NULL;
    ml_tensor *ic = ml_as_contiguous(index);
    if (!ic) return NULL;
    ml_tensor *xc = NULL, *out = NULL;
    if (check_range("gather", ic, d, x->shape[d]) == 0 && (xc = ml_as_contiguous(x)))
        out = gather_raw(xc, d, ic);
    ml_node *n = out ? ml_node_attach(out, "GatherBackward", gather_backward, 1, &x) : NULL;
    if (n) {
        n->ints[0] = d;
        ml_node_save(n, ic);
    }
    ml_tensor_release(xc);
    ml_tensor_release(ic);
    return out;
}

static int scatter_add_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    if (n->needs_grad[0]) gin[0] = ml_tensor_retain(g);
    if (n->needs_grad[2]) {
        ml_tensor *gc = ml_as_contiguous(g);
        gin[2] = gc ? gather_raw(gc, (int)n->ints[0], n->saved[0]) : NULL;
        ml_tensor_release(gc);
        if (!gin[2]) return -1;
    }
    return 0;
}

ml_tensor *ml_scatter_add(ml_tensor *x, int dim, ml_tensor *index, ml_tensor *src) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    int d;
    if (x->ndim == 0)
        return ml_error_set("scatter_add: the input must have at least 1 dim"), NULL;
    if (check_gather("scatter_add", x, dim, index, &d) || ml_check_same_device("scatter_add", x, src))
        return NULL;
    if (!ml_same_shape(src, index))
        return ml_error_set("scatter_add: src of shape %s must have the index's shape %s",
                            SHAPE(src, a), SHAPE(index, b)), NULL;
    if (src->dtype != x->dtype)
        return ml_error_set("scatter_add: src is %s, the input %s (they must match)",
                            ml_dtype_name(src->dtype), ml_dtype_name(x->dtype)), NULL;
    ml_tensor *ic = ml_as_contiguous(index);
    if (!ic) return NULL;
    ml_tensor *out = NULL;
    if (check_range("scatter_add", ic, d, x->shape[d]) == 0 && (out = ml_contiguous_copy(x)) &&
        scatter_into(out, d, ic, src)) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor *in[3] = {x, index, src};
    ml_node *n = out ? ml_node_attach(out, "ScatterAddBackward", scatter_add_backward, 3, in) : NULL;
    if (n) {
        n->ints[0] = d;
        ml_node_save(n, ic);
    }
    ml_tensor_release(ic);
    return out;
}

/* --- index_select / index_add --- */

static ml_tensor *index_select_raw(const ml_tensor *x, int d, const ml_tensor *index) {
    const ml_index_ops *ops = index_ops("index_select", x);
    if (!ops) return NULL;
    int64_t shape[ML_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[d] = ml_numel(index);
    ml_tensor *out = ml_tensor_empty(x->dtype, x->storage->device, x->ndim, shape);
    if (out && ml_numel(out) && ops->index_select(x, d, index, out)) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

static int index_add_into(ml_tensor *out, int d, const ml_tensor *index, const ml_tensor *src) {
    const ml_index_ops *ops = index_ops("index_add", out);
    if (!ops) return -1;
    if (ml_numel(src) == 0) return 0;
    ml_tensor *ic = ml_as_contiguous(index), *sc = ic ? ml_as_contiguous(src) : NULL;
    int rc = sc ? ops->index_add(out, d, ic, sc) : -1;
    ml_tensor_release(ic);
    ml_tensor_release(sc);
    return rc;
}

ml_tensor *ml_index_add_new(int ndim, const int64_t *shape, int dim, ml_tensor *index,
                            ml_tensor *src) {
    ml_tensor *out = ml_zeros(src->dtype, src->storage->device, ndim, shape);
    if (out && index_add_into(out, dim, index, src)) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

static int index_select_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    gin[0] = ml_index_add_new(n->in_ndim[0], n->in_shape[0], (int)n->ints[0], n->saved[0], g);
    return gin[0] ? 0 : -1;
}

static int check_select(const char *fname, const ml_tensor *x, int dim, const ml_tensor *index,
                        int *d) {
    char a[ML_SHAPE_STR_MAX];
    if (check_index(fname, x, index)) return -1;
    if (index->ndim > 1)
        return ml_error_set("%s: index must be 1-D, got shape %s", fname, SHAPE(index, a));
    return wrap_dim(fname, x, dim, d);
}

ml_tensor *ml_index_select(ml_tensor *x, int dim, ml_tensor *index) {
    if (x->ndim == 0 && (dim == 0 || dim == -1)) {
        ml_tensor *x1 = as_1d(x), *r = x1 ? ml_index_select(x1, 0, index) : NULL;
        ml_tensor *out = r && index->ndim == 0 ? ml_reshape(r, 0, NULL) : ml_tensor_retain(r);
        ml_tensor_release(x1);
        ml_tensor_release(r);
        return out;
    }
    int d;
    if (check_select("index_select", x, dim, index, &d)) return NULL;
    ml_tensor *ic = ml_as_contiguous(index);
    if (!ic) return NULL;
    ml_tensor *xc = NULL, *out = NULL;
    if (check_range("index_select", ic, d, x->shape[d]) == 0 && (xc = ml_as_contiguous(x)))
        out = index_select_raw(xc, d, ic);
    ml_node *n = out ? ml_node_attach(out, "IndexSelectBackward", index_select_backward, 1, &x) : NULL;
    if (n) {
        n->ints[0] = d;
        ml_node_save(n, ic);
    }
    ml_tensor_release(xc);
    ml_tensor_release(ic);
    return out;
}

static int index_add_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    if (n->needs_grad[0]) gin[0] = ml_tensor_retain(g);
    if (n->needs_grad[2]) {
        ml_tensor *gc = ml_as_contiguous(g);
        gin[2] = gc ? index_select_raw(gc, (int)n->ints[0], n->saved[0]) : NULL;
        ml_tensor_release(gc);
        if (!gin[2]) return -1;
    }
    return 0;
}

ml_tensor *ml_index_add(ml_tensor *x, int dim, ml_tensor *index, ml_tensor *src) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    int d;
    if (x->ndim == 0) return ml_error_set("index_add: the input must have at least 1 dim"), NULL;
    if (check_select("index_add", x, dim, index, &d) || ml_check_same_device("index_add", x, src))
        return NULL;
    int64_t want[ML_MAX_DIMS];
    memcpy(want, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    want[d] = ml_numel(index);
    if (src->ndim != x->ndim || memcmp(want, src->shape, sizeof(int64_t) * (size_t)x->ndim) != 0)
        return ml_error_set("index_add: src of shape %s, expected %s (the input's shape with "
                            "dim %d the index's length)", SHAPE(src, a),
                            ml_shape_str(x->ndim, want, b, sizeof b), d + 1), NULL;
    if (src->dtype != x->dtype)
        return ml_error_set("index_add: src is %s, the input %s (they must match)",
                            ml_dtype_name(src->dtype), ml_dtype_name(x->dtype)), NULL;
    ml_tensor *ic = ml_as_contiguous(index);
    if (!ic) return NULL;
    ml_tensor *out = NULL;
    if (check_range("index_add", ic, d, x->shape[d]) == 0 && (out = ml_contiguous_copy(x)) &&
        index_add_into(out, d, ic, src)) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor *in[3] = {x, index, src};
    ml_node *n = out ? ml_node_attach(out, "IndexAddBackward", index_add_backward, 3, in) : NULL;
    if (n) {
        n->ints[0] = d;
        ml_node_save(n, ic);
    }
    ml_tensor_release(ic);
    return out;
}

/* --- one_hot --- */

ml_tensor *ml_one_hot(ml_tensor *labels, int64_t n) {
    if (labels->dtype != ML_I64 && labels->dtype != ML_U8)
        return ml_error_set("one_hot: labels must be an int64 tensor of 0-based class ids, got %s",
                            ml_dtype_name(labels->dtype)), NULL;
    if (n < -1) return ml_error_set("one_hot: number of classes %lld must be positive (or -1 to infer it)",
                                    (long long)n), NULL;
    if (labels->ndim >= ML_MAX_DIMS)
        return ml_error_set("one_hot: labels have %d dims, at most %d", labels->ndim, ML_MAX_DIMS - 1), NULL;
    const ml_index_ops *ops = index_ops("one_hot", labels);
    if (!ops) return NULL;
    ml_tensor *lc = labels->dtype == ML_I64 ? ml_as_contiguous(labels) : ml_cast(labels, ML_I64);
    if (!lc) return NULL;
    int rc = 0;
    if (ml_numel(lc) == 0) {
        if (n == -1)
            rc = ml_error_set("one_hot: cannot infer the number of classes from an empty tensor; "
                              "pass it");
    } else {
        int64_t lo, hi;
        rc = ml_index_bounds(lc, &lo, &hi);
        if (rc == 0 && n == -1) n = hi + 1;
        if (rc == 0 && lo < 0)
            rc = ml_error_set("one_hot: class values must be non-negative, got %lld", (long long)lo);
        else if (rc == 0 && hi >= n)
            rc = ml_error_set("one_hot: class %lld out of range for %lld classes (class ids are "
                              "0-based, 0..%lld)", (long long)hi, (long long)n, (long long)n - 1);
    }
    ml_tensor *out = NULL;
    if (rc == 0) {
        int64_t shape[ML_MAX_DIMS];
        memcpy(shape, lc->shape, sizeof(int64_t) * (size_t)lc->ndim);
        shape[lc->ndim] = n;
        out = ml_tensor_empty(ML_I64, lc->storage->device, lc->ndim + 1, shape);
        if (out && ml_numel(out) && ops->one_hot(lc, n, out)) {
            ml_tensor_release(out);
            out = NULL;
        }
    }
    ml_tensor_release(lc);
    return out;
}
