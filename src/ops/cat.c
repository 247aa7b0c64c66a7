/* cat / stack: the output is allocated once and each input copied into its slice
 * (a strided view) through the backend's copy; backward hands each input the
 * slice of the gradient that came from it.
 *
 * An autograd node has at most ML_NODE_MAX_INPUTS inputs, so a differentiable
 * join of more tensors is a tree of joins of at most that many; without grad
 * (the data loader's case) it is always one pass. */
#include "cat.h"

#include <stdlib.h>
#include <string.h>

#include "../autograd.h"
#include "../error.h"
#include "elementwise.h"
#include "shape.h"

static int dtype_rank(ml_dtype dt) {
    switch (dt) {
    case ML_U8: return 0;
    case ML_I64: return 1;
    case ML_F32: return 2;
    default: return 3;
    }
}

/* The slice of t (the joined tensor or its gradient) that input i fills: along
 * dim from off, shaped as the input (for stack the joined dim is dropped). */
static ml_tensor *slice_of(const ml_tensor *t, int dim, int64_t off, int in_ndim,
                           const int64_t *in_shape, bool stack) {
    int64_t strides[ML_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (stack && i == dim) continue;
        strides[nd++] = t->strides[i];
    }
    return ml_view_raw(t, in_ndim, in_shape, strides, t->offset + off * t->strides[dim]);
}

static int join_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    int dim = (int)node->ints[0];
    bool stack = node->ints[1] != 0;
    int64_t off = 0;
    for (int i = 0; i < node->n_inputs; i++) {
        int64_t len = stack ? 1 : node->in_shape[i][dim];
        if (node->needs_grad[i]) {
            ml_tensor *v = slice_of(g, dim, off, node->in_ndim[i], node->in_shape[i], stack);
            ml_tensor *c = v ? ml_contiguous_copy(v) : NULL;
            ml_tensor_release(v);
            ml_tensor *cc = c ? ml_cast(c, node->in_dtype[i]) : NULL;
            ml_tensor_release(c);
            if (!cc) return -1;
            gin[i] = cc;
        }
        off += len;
    }
    return 0;
}

static ml_tensor *join(const char *fname, int n, ml_tensor *const *ts, int dim, bool stack) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    if (n < 1) return ml_error_set("%s: expected a non-empty list of tensors", fname), NULL;
    const ml_tensor *t0 = ts[0];
    int out_ndim = t0->ndim + (stack ? 1 : 0);
    if (!stack && t0->ndim == 0)
        return ml_error_set("cat: zero-dimensional tensor (entry 1) cannot be concatenated"), NULL;
    if (out_ndim > ML_MAX_DIMS) return ml_error_set("%s: at most %d dims", fname, ML_MAX_DIMS), NULL;
    int d = ml_wrap_dim(dim, out_ndim);
    if (d < 0)
        return ml_error_set("%s: dim %d out of range for %d dims", fname, dim >= 0 ? dim + 1 : dim,
                            out_ndim), NULL;
    ml_dtype dt = t0->dtype;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const ml_tensor *t = ts[i];
        if (ml_check_same_device(fname, t0, t)) return NULL;
        bool ok = t->ndim == t0->ndim;
        for (int k = 0; ok && k < t->ndim; k++)
            if ((stack || k != d) && t->shape[k] != t0->shape[k]) ok = false;
        if (!ok) {
            if (stack)
                return ml_error_set("stack: expects each tensor to be equal size, but got %s at "
                                    "entry 1 and %s at entry %d",
                                    ml_shape_str(t0->ndim, t0->shape, a, sizeof a),
                                    ml_shape_str(t->ndim, t->shape, b, sizeof b), i + 1), NULL;
            return ml_error_set("cat: sizes of tensors must match except in dim %d: got %s at "
                                "entry 1 and %s at entry %d", d + 1,
                                ml_shape_str(t0->ndim, t0->shape, a, sizeof a),
                                ml_shape_str(t->ndim, t->shape, b, sizeof b), i + 1), NULL;
        }
        if (dtype_rank(t->dtype) > dtype_rank(dt)) dt = t->dtype;
        total += stack ? 1 : t->shape[d];
    }

    if (n > ML_NODE_MAX_INPUTS && ml_needs_graph(n, ts)) {
        /* a tree: stack is cat of unsqueezed views, cat joins groups of joins */
        ml_tensor **parts = calloc((size_t)n, sizeof *parts);
        if (!parts) return ml_error_set("%s: out of memory", fname), NULL;
        ml_tensor *out = NULL;
        int np = 0;
        bool ok = true;
        if (stack) {
            for (int i = 0; i < n && ok; i++) ok = (parts[np++] = ml_unsqueeze(ts[i], d)) != NULL;
            if (ok) out = join(fname, np, parts, d, false);
        } else {
            for (int i = 0; i < n && ok; i += ML_NODE_MAX_INPUTS) {
                int k = n - i < ML_NODE_MAX_INPUTS ? n - i : ML_NODE_MAX_INPUTS;
                ok = (parts[np++] = join(fname, k, ts + i, d, false)) != NULL;
            }
            if (ok) out = join(fname, np, parts, d, false);
        }
        for (int i = 0; i < np; i++) ml_tensor_release(parts[i]);
        free(parts);
        return out;
    }

    int64_t shape[ML_MAX_DIMS];
    for (int k = 0, j = 0; k < out_ndim; k++) {
        if (k == d) shape[k] = total;
        else shape[k] = t0->shape[j];
        if (k != d || !stack) j++;
    }
    ml_tensor *out = ml_tensor_empty(dt, t0->storage->device, out_ndim, shape);
    if (!out) return NULL;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        ml_tensor *v = slice_of(out, d, off, ts[i]->ndim, ts[i]->shape, stack);
        int rc = v ? ml_copy_(v, ts[i]) : -1;
        ml_tensor_release(v);
        if (rc) {
            ml_tensor_release(out);
            return NULL;
        }
        off += stack ? 1 : ts[i]->shape[d];
    }
    ml_node *node = ml_node_attach(out, stack ? "StackBackward" : "CatBackward", join_backward, n, ts);
    if (node) {
        node->ints[0] = d;
        node->ints[1] = stack;
    }
    return out;
}

ml_tensor *ml_cat(int n, ml_tensor *const *ts, int dim) { return join("cat", n, ts, dim, false); }
ml_tensor *ml_stack(int n, ml_tensor *const *ts, int dim) { return join("stack", n, ts, dim, true); }
