/* softmax / log_softmax over one dim, saving the output for backward. */
#include "softmax.h"

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "elementwise.h"

static void geometry(const ml_tensor *x, int d, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < d; i++) *outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *n = x->ndim ? x->shape[d] : 1;
}

static int softmax_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *y = node->saved[0];
    int64_t outer, n, inner;
    geometry(y, (int)node->ints[0], &outer, &n, &inner);
    ml_tensor *gc = ml_as_contiguous(g);
    ml_tensor *gx = gc ? ml_tensor_empty_like(y) : NULL;
    const ml_softmax_ops *so = gx ? ml_need_softmax(y, node->ints[1] ? "log_softmax" : "softmax") : NULL;
    int rc = so ? so->backward(y, gc, outer, n, inner, node->ints[1], gx) : -1;
    ml_tensor_release(gc);
    if (rc) {
        ml_tensor_release(gx);
        return -1;
    }
    gin[0] = gx;
    return 0;
}

static ml_tensor *softmax_impl(ml_tensor *x, int dim, bool log) {
    const char *fname = log ? "log_softmax" : "softmax";
    int d = x->ndim == 0 && (dim == 0 || dim == -1) ? 0 : ml_wrap_dim(dim, x->ndim);
    if (d < 0) {
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("%s: dim %d out of range for a tensor of shape %s", fname,
                            dim >= 0 ? dim + 1 : dim, ml_shape_str(x->ndim, x->shape, a, sizeof a)), NULL;
    }
    ml_tensor *src = ml_dtype_is_float(x->dtype) ? ml_as_contiguous(x) : ml_cast(x, ML_F32);
    if (!src) return NULL;
    int64_t outer, n, inner;
    geometry(src, d, &outer, &n, &inner);
    ml_tensor *y = ml_tensor_empty_like(src);
    const ml_softmax_ops *so = y ? ml_need_softmax(src, fname) : NULL;
    if (y && (!so || so->forward(src, outer, n, inner, log, y))) {
        ml_tensor_release(y);
        y = NULL;
    }
    ml_tensor_release(src);
    ml_node *node = y ? ml_node_attach(y, log ? "LogSoftmaxBackward" : "SoftmaxBackward",
                                       softmax_backward, 1, &x) : NULL;
    if (node) {
        node->ints[0] = d;
        node->ints[1] = log;
        ml_node_save(node, y);
    }
    return y;
}

ml_tensor *ml_softmax(ml_tensor *x, int dim) { return softmax_impl(x, dim, false); }
ml_tensor *ml_log_softmax(ml_tensor *x, int dim) { return softmax_impl(x, dim, true); }
