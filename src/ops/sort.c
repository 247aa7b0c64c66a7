/* The sort family's ops: checks, the [outer, n, inner] split, dispatch through the
 * backend's sort family, and the rules: sort and topk send the gradient back to
 * the positions they took (scatter_add), cumsum's is the reversed cumulative sum. */
#include "sort.h"

#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "elementwise.h"
#include "index.h"
#include "shape.h"

/* dim wrapped to 0-based (0 for a 0-dim x, which is one line of one) and x's
 * [outer, n, inner] split around it. */
static int line_geometry(const char *fname, const ml_tensor *x, int dim, int *d, int64_t *outer,
                         int64_t *n, int64_t *inner) {
    *outer = *n = *inner = 1;
    if (x->ndim == 0) {
        if (dim != 0 && dim != -1)
            return ml_error_set("%s: dim %d out of range for a 0-dim tensor (expected 1 or -1)",
                                fname, dim >= 0 ? dim + 1 : dim);
        *d = 0;
        return 0;
    }
    *d = ml_wrap_dim(dim, x->ndim);
    if (*d < 0) {
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("%s: dim %d out of range for a tensor of shape %s (expected 1..%d or "
                            "-%d..-1)", fname, dim >= 0 ? dim + 1 : dim,
                            ml_shape_str(x->ndim, x->shape, a, sizeof a), x->ndim, x->ndim);
    }
    for (int i = 0; i < *d; i++) *outer *= x->shape[i];
    *n = x->shape[*d];
    for (int i = *d + 1; i < x->ndim; i++) *inner *= x->shape[i];
    return 0;
}

/* Values and positions of x sorted along d, no autograd. */
static int sort_raw(const char *fname, ml_tensor *x, int dim, bool descending, int *d,
                    ml_tensor **values, ml_tensor **indices) {
    int64_t outer, n, inner;
    *values = *indices = NULL;
    if (line_geometry(fname, x, dim, d, &outer, &n, &inner)) return -1;
    const ml_sort_ops *so = ml_need_sort(x, fname);
    ml_tensor *src = so ? ml_as_contiguous(x) : NULL;
    if (!src) return -1;
    *values = ml_tensor_empty(x->dtype, x->storage->device, x->ndim, x->shape);
    *indices = *values ? ml_tensor_empty(ML_I64, x->storage->device, x->ndim, x->shape) : NULL;
    int rc = *indices ? so->sort(src, outer, n, inner, descending, *values, *indices) : -1;
    ml_tensor_release(src);
    if (rc) {
        ml_tensor_release(*values);
        ml_tensor_release(*indices);
        *values = *indices = NULL;
    }
    return rc;
}

/* sort/topk: g (the values' gradient) added at the saved positions along ints[0]
 * into zeros of the input's shape. */
static int picked_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    if (n->in_ndim[0] == 0) { /* a line of one: the gradient itself */
        gin[0] = ml_tensor_retain(g);
        return 0;
    }
    gin[0] = ml_scatter_add_new(n->in_ndim[0], n->in_shape[0], (int)n->ints[0], n->saved[0], g);
    return gin[0] ? 0 : -1;
}

static ml_tensor *attach_picked(ml_tensor *out, const char *node, ml_tensor *x, int d,
                                ml_tensor *idx) {
    ml_node *nd = ml_node_attach(out, node, picked_backward, 1, &x);
    if (nd) {
        nd->ints[0] = d;
        ml_node_save(nd, idx);
    }
    return out;
}

ml_tensor *ml_sort(ml_tensor *x, int dim, bool descending, ml_tensor **indices) {
    int d = 0;
    ml_tensor *v, *idx;
    if (sort_raw("sort", x, dim, descending, &d, &v, &idx)) return NULL;
    attach_picked(v, "SortBackward", x, d, idx);
    if (indices) *indices = idx;
    else ml_tensor_release(idx);
    return v;
}

ml_tensor *ml_argsort(ml_tensor *x, int dim, bool descending) {
    int d = 0;
    ml_tensor *v, *idx;
    if (sort_raw("argsort", x, dim, descending, &d, &v, &idx)) return NULL;
    ml_tensor_release(v);
    return idx;
}

/* The first k along d of t, contiguous, no autograd. */
static ml_tensor *first_k(ml_tensor *t, int d, int64_t k) {
    if (t->ndim == 0) return ml_tensor_retain(t);
    int64_t shape[ML_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d] = k;
    ml_tensor *view = ml_view_raw(t, t->ndim, shape, t->strides, t->offset);
    ml_tensor *c = view ? ml_contiguous_copy(view) : NULL;
    ml_tensor_release(view);
    return c;
}

ml_tensor *ml_topk(ml_tensor *x, int64_t k, int dim, bool largest, ml_tensor **indices) {
    int d = 0;
    int64_t outer, n, inner;
    if (line_geometry("topk", x, dim, &d, &outer, &n, &inner)) return NULL;
    if (k < 0 || k > n) {
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("topk: k = %lld is out of range for dim %d of size %lld (shape %s; "
                            "expected 0 <= k <= %lld)", (long long)k, d + 1, (long long)n,
                            ml_shape_str(x->ndim, x->shape, a, sizeof a), (long long)n), NULL;
    }
    ml_tensor *v, *idx;
    if (sort_raw("topk", x, dim, largest, &d, &v, &idx)) return NULL;
    ml_tensor *vk = first_k(v, d, k), *ik = vk ? first_k(idx, d, k) : NULL;
    ml_tensor_release(v);
    ml_tensor_release(idx);
    if (!ik) {
        ml_tensor_release(vk);
        return NULL;
    }
    attach_picked(vk, "TopkBackward", x, d, ik);
    if (indices) *indices = ik;
    else ml_tensor_release(ik);
    return vk;
}

/* g summed from the end along ints[0]: one reversed cumulative sum */
static int cumsum_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    int d = 0;
    int64_t outer, len, inner;
    if (line_geometry("cumsum", g, (int)n->ints[0], &d, &outer, &len, &inner)) return -1;
    const ml_sort_ops *so = ml_need_sort(g, "cumsum");
    ml_tensor *gc = so ? ml_as_contiguous(g) : NULL;
    ml_tensor *out = gc ? ml_tensor_empty_like(gc) : NULL;
    if (out && so->cumsum(gc, outer, len, inner, true, out)) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor_release(gc);
    gin[0] = out;
    return out ? 0 : -1;
}

ml_tensor *ml_cumsum(ml_tensor *x, int dim) {
    int d = 0;
    int64_t outer, n, inner;
    if (line_geometry("cumsum", x, dim, &d, &outer, &n, &inner)) return NULL;
    const ml_sort_ops *so = ml_need_sort(x, "cumsum");
    ml_tensor *src = so ? ml_as_contiguous(x) : NULL;
    if (!src) return NULL;
    const ml_dtype dt = ml_dtype_is_float(x->dtype) ? x->dtype : ML_I64;
    ml_tensor *out = ml_tensor_empty(dt, x->storage->device, x->ndim, x->shape);
    if (out && so->cumsum(src, outer, n, inner, false, out)) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor_release(src);
    ml_node *nd = out ? ml_node_attach(out, "CumsumBackward", cumsum_backward, 1, &x) : NULL;
    if (nd) nd->ints[0] = d;
    return out;
}
