/* F.pad. Constant padding fills a new tensor and copies x into the view of it that
 * x lands in (its gradient: the same view of g). Reflect and replicate padding take
 * each padded dim through index_select with the positions it reads (its gradient:
 * index_add of g back through the same positions, last dim padded first undone
 * last). */
#include "pad.h"

#include <string.h>

#include "../autograd.h"
#include "../error.h"
#include "creation.h"
#include "elementwise.h"
#include "index.h"

static const char *mode_name(ml_pad_mode m) {
    return m == ML_PAD_REFLECT ? "reflect" : m == ML_PAD_REPLICATE ? "replicate" : "constant";
}

/* The padded dim of pair k: the last dim for k = 0. */
static int pad_dim(const ml_tensor *x, int k) { return x->ndim - 1 - k; }

/* Where x and the padded output overlap (constant padding): per dim, the first
 * element of x kept, the first of the output it lands on, and how many. */
typedef struct {
    int64_t x0[ML_MAX_DIMS], o0[ML_MAX_DIMS], len[ML_MAX_DIMS];
} overlap;

static void overlap_of(int ndim, const int64_t *xshape, int npads, const int64_t *pads,
                       overlap *ov) {
    for (int d = 0; d < ndim; d++) {
        ov->x0[d] = ov->o0[d] = 0;
        ov->len[d] = xshape[d];
    }
    for (int k = 0; k < npads / 2; k++) {
        const int d = ndim - 1 - k;
        const int64_t before = pads[2 * k], after = pads[2 * k + 1];
        ov->x0[d] = before < 0 ? -before : 0;
        ov->o0[d] = before > 0 ? before : 0;
        int64_t len = xshape[d] - (before < 0 ? -before : 0) - (after < 0 ? -after : 0);
        ov->len[d] = len > 0 ? len : 0;
    }
}

/* The view of t over the box starting at start, len long in each dim. */
static ml_tensor *box(const ml_tensor *t, const int64_t *start, const int64_t *len) {
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) off += start[d] * t->strides[d];
    return ml_view_raw(t, t->ndim, len, t->strides, off);
}

/* dst's box (at ds) = src's box (at ss), both len long. */
static int copy_box(ml_tensor *dst, const int64_t *ds, const ml_tensor *src, const int64_t *ss,
                    const int64_t *len) {
    ml_tensor *dv = box(dst, ds, len), *sv = dv ? box(src, ss, len) : NULL;
    int rc = sv ? ml_copy_(dv, sv) : -1;
    ml_tensor_release(dv);
    ml_tensor_release(sv);
    return rc;
}

/* The positions along a dim of size n that reflect / replicate padding by (before,
 * after) reads, as an int64 tensor on dev. */
static ml_tensor *source_positions(int64_t n, int64_t before, int64_t after, ml_pad_mode mode,
                                   ml_device dev) {
    const int64_t len = n + before + after;
    ml_tensor *idx = ml_tensor_empty(ML_I64, ML_CPU, 1, &len);
    if (!idx) return NULL;
    int64_t *p = (int64_t *)ml_data(idx);
    for (int64_t j = 0; j < len; j++) {
        int64_t i = j - before;
        if (mode == ML_PAD_REFLECT) i = i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
        else i = i < 0 ? 0 : i >= n ? n - 1 : i;
        p[j] = i;
    }
    ml_tensor *on = ml_to_device(idx, dev);
    ml_tensor_release(idx);
    return on;
}

/* scalars[0]: npads, scalars[1]: the mode; ints[]: the pads */
static int pad_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    const int npads = (int)n->scalars[0], ndim = n->in_ndim[0];
    const ml_pad_mode mode = (ml_pad_mode)(int)n->scalars[1];
    const int64_t *pads = n->ints;
    if (mode == ML_PAD_CONSTANT) {
        overlap ov;
        overlap_of(ndim, n->in_shape[0], npads, pads, &ov);
        ml_tensor *z = ml_zeros(g->dtype, g->storage->device, ndim, n->in_shape[0]);
        if (z && copy_box(z, ov.x0, g, ov.o0, ov.len)) {
            ml_tensor_release(z);
            z = NULL;
        }
        gin[0] = z;
        return z ? 0 : -1;
    }
    /* undo the index_selects from the last: pair k padded dim ndim-1-k of a tensor
     * whose dims after it were padded already */
    int64_t shape[ML_MAX_DIMS];
    ml_tensor *cur = ml_tensor_retain(g);
    for (int k = npads / 2 - 1; cur && k >= 0; k--) {
        const int d = ndim - 1 - k;
        memcpy(shape, cur->shape, sizeof shape);
        shape[d] = n->in_shape[0][d];
        ml_tensor *idx = source_positions(shape[d], pads[2 * k], pads[2 * k + 1], mode,
                                          g->storage->device);
        ml_tensor *prev = idx ? ml_index_add_new(ndim, shape, d, idx, cur) : NULL;
        ml_tensor_release(idx);
        ml_tensor_release(cur);
        cur = prev;
    }
    gin[0] = cur;
    return cur ? 0 : -1;
}

/* The checks of F.pad; 0 or -1 with a message naming pad, the shapes and pads. */
static int check_pads(const ml_tensor *x, int npads, const int64_t *pads, ml_pad_mode mode) {
    char a[ML_SHAPE_STR_MAX];
    const char *shape = ml_shape_str(x->ndim, x->shape, a, sizeof a);
    if (npads % 2)
        return ml_error_set("pad: the padding must hold pairs (before, after) per dim, got %d "
                            "numbers", npads);
    if (npads / 2 > x->ndim)
        return ml_error_set("pad: %d padding numbers pad %d dims, the input of shape %s has %d",
                            npads, npads / 2, shape, x->ndim);
    const int k = npads / 2;
    if (mode != ML_PAD_CONSTANT && k > 0 && (k > 3 || x->ndim < k + 1 || x->ndim > k + 2))
        return ml_error_set("pad: %s padding of the last %d dim%s needs a %d-D or %d-D input "
                            "(batch and channels first), got shape %s", mode_name(mode), k,
                            k > 1 ? "s" : "", k + 1, k + 2, shape);
    for (int i = 0; i < k; i++) {
        const int d = pad_dim(x, i);
        const int64_t before = pads[2 * i], after = pads[2 * i + 1], n = x->shape[d];
        if (mode == ML_PAD_CONSTANT) {
            if (n + before + after < 0)
                return ml_error_set("pad: padding (%lld, %lld) of dim %d of size %lld (shape %s) "
                                    "leaves a negative size", (long long)before, (long long)after,
                                    d + 1, (long long)n, shape);
            continue;
        }
        if (before < 0 || after < 0)
            return ml_error_set("pad: %s padding must not be negative, got (%lld, %lld) for dim %d",
                                mode_name(mode), (long long)before, (long long)after, d + 1);
        if (mode == ML_PAD_REFLECT && (before >= n || after >= n))
            return ml_error_set("pad: reflect padding (%lld, %lld) of dim %d must be smaller than "
                                "its size %lld (shape %s)", (long long)before, (long long)after,
                                d + 1, (long long)n, shape);
        if (mode == ML_PAD_REPLICATE && n == 0 && before + after > 0)
            return ml_error_set("pad: replicate padding of dim %d needs a non-empty dim (shape %s)",
                                d + 1, shape);
    }
    return 0;
}

ml_tensor *ml_pad(ml_tensor *x, int npads, const int64_t *pads, ml_pad_mode mode, double value) {
    if (check_pads(x, npads, pads, mode)) return NULL;
    ml_tensor *out = NULL;
    if (mode == ML_PAD_CONSTANT) {
        int64_t shape[ML_MAX_DIMS];
        memcpy(shape, x->shape, sizeof shape);
        for (int k = 0; k < npads / 2; k++) shape[pad_dim(x, k)] += pads[2 * k] + pads[2 * k + 1];
        overlap ov;
        overlap_of(x->ndim, x->shape, npads, pads, &ov);
        out = ml_full(x->dtype, x->storage->device, x->ndim, shape, value);
        if (out && copy_box(out, ov.o0, x, ov.x0, ov.len)) {
            ml_tensor_release(out);
            out = NULL;
        }
    } else { /* no graph for the steps: the node below is the op's */
        const bool was = ml_grad_enabled();
        ml_set_grad_enabled(false);
        out = ml_tensor_retain(x);
        for (int k = 0; out && k < npads / 2; k++) {
            const int d = pad_dim(x, k);
            ml_tensor *idx = source_positions(x->shape[d], pads[2 * k], pads[2 * k + 1], mode,
                                              x->storage->device);
            ml_tensor *next = idx ? ml_index_select(out, d, idx) : NULL;
            ml_tensor_release(idx);
            ml_tensor_release(out);
            out = next;
        }
        ml_set_grad_enabled(was);
    }
    static const char *const nodes[] = {"ConstantPadNdBackward", "ReflectionPadBackward",
                                        "ReplicationPadBackward"};
    ml_node *n = out ? ml_node_attach(out, nodes[mode], pad_backward, 1, &x) : NULL;
    if (n) {
        _Static_assert(2 * ML_MAX_DIMS <= sizeof n->ints / sizeof n->ints[0],
                       "a node holds every pad");
        memcpy(n->ints, pads, sizeof(int64_t) * (size_t)npads);
        n->scalars[0] = npads;
        n->scalars[1] = mode;
    }
    return out;
}
