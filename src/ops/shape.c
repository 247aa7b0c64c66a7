/* Shape ops: views over the same storage, and their backward rules. */
#include "shape.h"

#include <string.h>

#include "../autograd.h"
#include "../error.h"
#include "creation.h"
#include "elementwise.h"
#include "reduce.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

int ml_broadcast_shapes(const char *fname, int na, const int64_t *sa, int nb,
                        const int64_t *sb, int *ndim, int64_t *shape) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t x = i < n - na ? 1 : sa[i - (n - na)];
        int64_t y = i < n - nb ? 1 : sb[i - (n - nb)];
        if (x != y && x != 1 && y != 1) {
            char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
            return ml_error_set("%s: shapes %s and %s cannot be broadcast (dim %d: %lld vs %lld)",
                                fname, ml_shape_str(na, sa, a, sizeof a),
                                ml_shape_str(nb, sb, b, sizeof b), i + 1, (long long)x,
                                (long long)y);
        }
        shape[i] = x == 1 ? y : x;
    }
    *ndim = n;
    return 0;
}

ml_tensor *ml_expand_raw(const ml_tensor *t, int ndim, const int64_t *shape) {
    int64_t strides[ML_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        strides[i] = (j < 0 || (t->shape[j] == 1 && shape[i] != 1)) ? 0 : t->strides[j];
    }
    return ml_view_raw(t, ndim, shape, strides, t->offset);
}

/* --- view / reshape --- */

/* Resolves one -1 and checks the element count. */
static int infer_shape(const char *fname, const ml_tensor *t, int ndim, const int64_t *in,
                       int64_t *out) {
    int infer = -1;
    int64_t known = 1;
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    if (ndim > ML_MAX_DIMS) return ml_error_set("%s: at most %d dims", fname, ML_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        out[i] = in[i];
        if (in[i] == -1) {
            if (infer >= 0) return ml_error_set("%s: only one dim can be -1", fname);
            infer = i;
        } else if (in[i] < 0) {
            return ml_error_set("%s: invalid size %lld in %s", fname, (long long)in[i],
                                ml_shape_str(ndim, in, b, sizeof b));
        } else if (!ml_mul_size(known, in[i], &known)) {
            /* more elements than int64 holds: no tensor has that many */
            return ml_error_set("%s: shape %s is invalid for input of size %lld (shape %s)", fname,
                                ml_shape_str(ndim, in, b, sizeof b), (long long)ml_numel(t),
                                SHAPE(t, a));
        }
    }
    int64_t numel = ml_numel(t);
    if (infer >= 0) {
        if (known == 0 || numel % known != 0)
            return ml_error_set("%s: shape %s is invalid for input of size %lld (shape %s)",
                                fname, ml_shape_str(ndim, in, b, sizeof b), (long long)numel,
                                SHAPE(t, a));
        out[infer] = numel / known;
    } else if (known != numel) {
        return ml_error_set("%s: shape %s is invalid for input of size %lld (shape %s)", fname,
                            ml_shape_str(ndim, in, b, sizeof b), (long long)numel, SHAPE(t, a));
    }
    return 0;
}

/* Strides for viewing t as shape without a copy, as torch's computeStride; false
 * when the memory layout does not allow it. */
static bool view_strides(const ml_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
    if (t->ndim == 0 || ml_numel(t) == 0 || ml_is_contiguous(t)) {
        ml_contiguous_strides(ndim, shape, strides);
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk = t->strides[t->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        if (d == 0 || (t->shape[d - 1] != 1 && t->strides[d - 1] != tensor_numel * chunk)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                strides[view_d] = view_numel * chunk;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (d > 0) {
                chunk = t->strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

static int reshape_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    gin[0] = ml_reshape(g, n->in_ndim[0], n->in_shape[0]);
    return gin[0] ? 0 : -1;
}

static ml_tensor *view_impl(const char *fname, ml_tensor *t, int ndim, const int64_t *shape,
                            bool may_copy) {
    int64_t sh[ML_MAX_DIMS], st[ML_MAX_DIMS];
    if (infer_shape(fname, t, ndim, shape, sh)) return NULL;
    ml_tensor *out;
    if (view_strides(t, ndim, sh, st)) {
        out = ml_view_raw(t, ndim, sh, st, t->offset);
    } else if (may_copy) {
        ml_tensor *c = ml_contiguous_copy(t);
        if (!c) return NULL;
        out = ml_view_raw(c, ndim, sh, c->strides, 0);
        ml_contiguous_strides(ndim, sh, out->strides);
        ml_tensor_release(c);
    } else {
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("view: size and strides of the tensor (shape %s) are not compatible "
                            "with the view; use reshape (it copies) or contiguous() first",
                            SHAPE(t, a)), NULL;
    }
    if (out) ml_node_attach(out, may_copy ? "ReshapeBackward" : "ViewBackward", reshape_backward, 1, &t);
    return out;
}

ml_tensor *ml_view(ml_tensor *t, int ndim, const int64_t *shape) {
    return view_impl("view", t, ndim, shape, false);
}

ml_tensor *ml_reshape(ml_tensor *t, int ndim, const int64_t *shape) {
    return view_impl("reshape", t, ndim, shape, true);
}

ml_tensor *ml_flatten(ml_tensor *t, int start_dim, int end_dim) {
    if (t->ndim == 0) {
        int64_t one = 1;
        return ml_reshape(t, 1, &one);
    }
    int s = ml_wrap_dim(start_dim, t->ndim), e = ml_wrap_dim(end_dim, t->ndim);
    if (s < 0 || e < 0)
        return ml_error_set("flatten: dims %d..%d out of range for a %d-dim tensor", start_dim + 1,
                            end_dim + 1, t->ndim), NULL;
    if (s > e)
        return ml_error_set("flatten: start_dim %d comes after end_dim %d", s + 1, e + 1), NULL;
    int64_t shape[ML_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < s; i++) shape[nd++] = t->shape[i];
    int64_t m = 1;
    for (int i = s; i <= e; i++) m *= t->shape[i];
    shape[nd++] = m;
    for (int i = e + 1; i < t->ndim; i++) shape[nd++] = t->shape[i];
    return ml_reshape(t, nd, shape);
}

static int dim_error(const char *fname, int dim, const ml_tensor *t) {
    char a[ML_SHAPE_STR_MAX];
    int n = t->ndim ? t->ndim : 1;
    return ml_error_set("%s: dim %d out of range for a tensor of shape %s (expected %d..%d, "
                        "or -%d..-1 from the end)",
                        fname, dim >= 0 ? dim + 1 : dim, SHAPE(t, a), 1, n, n);
}

ml_tensor *ml_squeeze(ml_tensor *t, int dim) {
    int64_t shape[ML_MAX_DIMS];
    int nd = 0, d = -1;
    if (dim != ML_ALL_DIMS) {
        d = ml_wrap_dim(dim, t->ndim);
        if (d < 0 && !(t->ndim == 0 && (dim == 0 || dim == -1)))
            return dim_error("squeeze", dim, t), NULL;
    }
    for (int i = 0; i < t->ndim; i++)
        if (!(t->shape[i] == 1 && (dim == ML_ALL_DIMS || i == d))) shape[nd++] = t->shape[i];
    return ml_reshape(t, nd, shape);
}

ml_tensor *ml_unsqueeze(ml_tensor *t, int dim) {
    int d = ml_wrap_dim(dim, t->ndim + 1);
    if (d < 0) return dim_error("unsqueeze", dim, t), NULL;
    if (t->ndim >= ML_MAX_DIMS) return ml_error_set("unsqueeze: at most %d dims", ML_MAX_DIMS), NULL;
    int64_t shape[ML_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < t->ndim + 1; i++) shape[nd++] = i == d ? 1 : t->shape[i - (i > d)];
    return ml_reshape(t, nd, shape);
}

/* --- transpose / permute --- */

static int permute_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    int inv[ML_MAX_DIMS];
    for (int i = 0; i < g->ndim; i++) inv[n->ints[i]] = i;
    gin[0] = ml_permute(g, inv);
    return gin[0] ? 0 : -1;
}

ml_tensor *ml_permute(ml_tensor *t, const int *dims) {
    int64_t shape[ML_MAX_DIMS], strides[ML_MAX_DIMS];
    bool seen[ML_MAX_DIMS] = {false};
    int wrapped[ML_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        int d = ml_wrap_dim(dims[i], t->ndim);
        if (d < 0) return dim_error("permute", dims[i], t), NULL;
        if (seen[d]) return ml_error_set("permute: dim %d appears twice", d + 1), NULL;
        seen[d] = true;
        wrapped[i] = d;
        shape[i] = t->shape[d];
        strides[i] = t->strides[d];
    }
    ml_tensor *out = ml_view_raw(t, t->ndim, shape, strides, t->offset);
    ml_node *n = out ? ml_node_attach(out, "PermuteBackward", permute_backward, 1, &t) : NULL;
    if (n)
        for (int i = 0; i < t->ndim; i++) n->ints[i] = wrapped[i];
    return out;
}

ml_tensor *ml_transpose(ml_tensor *t, int d0, int d1) {
    if (t->ndim == 0) return ml_tensor_retain(t);
    int a = ml_wrap_dim(d0, t->ndim), b = ml_wrap_dim(d1, t->ndim);
    if (a < 0) return dim_error("transpose", d0, t), NULL;
    if (b < 0) return dim_error("transpose", d1, t), NULL;
    int dims[ML_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) dims[i] = i;
    dims[a] = b;
    dims[b] = a;
    return ml_permute(t, dims);
}

/* --- narrow / select --- */

static int narrow_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *z = ml_zeros(g->dtype, g->storage->device, n->in_ndim[0], n->in_shape[0]);
    if (!z) return -1;
    int dim = (int)n->ints[0];
    int64_t start = n->ints[1];
    bool was_select = n->ints[2];
    /* the slot of the input the output came from, as a view of z */
    int64_t shape[ML_MAX_DIMS];
    memcpy(shape, z->shape, sizeof shape);
    shape[dim] = was_select ? 1 : g->shape[dim];
    ml_tensor *slot = ml_view_raw(z, z->ndim, shape, z->strides, start * z->strides[dim]);
    ml_tensor *src = was_select ? ml_unsqueeze(g, dim) : ml_tensor_retain(g);
    int rc = slot && src ? ml_copy_(slot, src) : -1;
    ml_tensor_release(slot);
    ml_tensor_release(src);
    if (rc) {
        ml_tensor_release(z);
        return -1;
    }
    gin[0] = z;
    return 0;
}

ml_tensor *ml_narrow(ml_tensor *t, int dim, int64_t start, int64_t length) {
    int d = ml_wrap_dim(dim, t->ndim);
    if (d < 0) return dim_error("narrow", dim, t), NULL;
    if (start < 0 || length < 0 || start + length > t->shape[d]) {
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("narrow: positions %lld..%lld out of range for dim %d of size %lld "
                            "(shape %s)",
                            (long long)start + 1, (long long)(start + length), d + 1,
                            (long long)t->shape[d], SHAPE(t, a)), NULL;
    }
    int64_t shape[ML_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d] = length;
    ml_tensor *out = ml_view_raw(t, t->ndim, shape, t->strides, t->offset + start * t->strides[d]);
    ml_node *n = out ? ml_node_attach(out, "NarrowBackward", narrow_backward, 1, &t) : NULL;
    if (n) {
        n->ints[0] = d;
        n->ints[1] = start;
        n->ints[2] = 0;
    }
    return out;
}

ml_tensor *ml_select(ml_tensor *t, int dim, int64_t index) {
    int d = ml_wrap_dim(dim, t->ndim);
    if (t->ndim == 0) return ml_error_set("select: cannot index a 0-dim tensor"), NULL;
    if (d < 0) return dim_error("select", dim, t), NULL;
    if (index < 0) index += t->shape[d];
    if (index < 0 || index >= t->shape[d]) {
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("index: position %lld out of range for dim %d of size %lld (shape "
                            "%s; positions are 1-based)",
                            (long long)index + 1, d + 1, (long long)t->shape[d], SHAPE(t, a)), NULL;
    }
    int64_t shape[ML_MAX_DIMS], strides[ML_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < t->ndim; i++)
        if (i != d) {
            shape[nd] = t->shape[i];
            strides[nd++] = t->strides[i];
        }
    ml_tensor *out = ml_view_raw(t, nd, shape, strides, t->offset + index * t->strides[d]);
    ml_node *n = out ? ml_node_attach(out, "SelectBackward", narrow_backward, 1, &t) : NULL;
    if (n) {
        n->ints[0] = d;
        n->ints[1] = index;
        n->ints[2] = 1;
    }
    return out;
}

/* --- expand --- */

static int expand_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    gin[0] = ml_sum_to_shape(g, n->in_ndim[0], n->in_shape[0]);
    return gin[0] ? 0 : -1;
}

ml_tensor *ml_expand(ml_tensor *t, int ndim, const int64_t *shape) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    int64_t full[ML_MAX_DIMS];
    if (ndim < t->ndim || ndim > ML_MAX_DIMS)
        return ml_error_set("expand: cannot expand shape %s to %s", SHAPE(t, a),
                            ml_shape_str(ndim, shape, b, sizeof b)), NULL;
    for (int i = 0; i < ndim; i++) {
        int j = i - (ndim - t->ndim);
        int64_t have = j < 0 ? 1 : t->shape[j];
        full[i] = shape[i] == -1 ? have : shape[i];
        if (j < 0 && shape[i] == -1)
            return ml_error_set("expand: -1 is not allowed for a new leading dim"), NULL;
        if (have != 1 && have != full[i])
            return ml_error_set("expand: cannot expand shape %s to %s (dim %d)", SHAPE(t, a),
                                ml_shape_str(ndim, shape, b, sizeof b), i + 1), NULL;
    }
    ml_tensor *out = ml_expand_raw(t, ndim, full);
    if (out) ml_node_attach(out, "ExpandBackward", expand_backward, 1, &t);
    return out;
}
