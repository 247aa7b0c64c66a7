/* layer_norm and group_norm: checks, dispatch to the backend's norm family (one
 * row kernel serves both: src/backend/norm.h), and the backward rule, which saves
 * the input, the weight and the row statistics (torch's native_layer_norm does
 * the same). */
#include "norm.h"

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "elementwise.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

/* node->ints: the geometry (rows, n, groups, segs, seg_len) and whether a weight
 * was saved; saved: x, mean, rstd[, w]. */
static void geom_of(const ml_node *node, ml_norm_geom *geo) {
    geo->rows = node->ints[0];
    geo->n = node->ints[1];
    geo->groups = node->ints[2];
    geo->segs = node->ints[3];
    geo->seg_len = node->ints[4];
    geo->eps = node->scalars[0];
}

static int norm_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    ml_norm_geom geo;
    geom_of(node, &geo);
    ml_tensor *x = node->saved[0], *mean = node->saved[1], *rstd = node->saved[2];
    ml_tensor *w = node->ints[5] ? node->saved[3] : NULL;
    const char *fname = node->ints[6] ? "group_norm" : "layer_norm";
    ml_tensor *gc = ml_as_contiguous(g);
    if (!gc) return -1;
    ml_tensor *gx = NULL, *gw = NULL, *gb = NULL;
    int rc = 0;
    if (node->needs_grad[0] && !(gx = ml_tensor_empty(x->dtype, x->storage->device, node->in_ndim[0], node->in_shape[0]))) rc = -1;
    if (!rc && node->needs_grad[1] && !(gw = ml_tensor_empty(x->dtype, x->storage->device, node->in_ndim[1], node->in_shape[1]))) rc = -1;
    if (!rc && node->needs_grad[2] && !(gb = ml_tensor_empty(x->dtype, x->storage->device, node->in_ndim[2], node->in_shape[2]))) rc = -1;
    const ml_norm_ops *no = rc ? NULL : ml_need_norm(x, fname);
    if (!no || no->backward(x, w, mean, rstd, gc, &geo, gx, gw, gb)) rc = -1;
    ml_tensor_release(gc);
    if (rc) {
        ml_tensor_release(gx);
        ml_tensor_release(gw);
        ml_tensor_release(gb);
        return -1;
    }
    gin[0] = gx;
    gin[1] = gw;
    gin[2] = gb;
    return 0;
}

/* The affine parameter t (may be NULL) checked against the shape it must have and
 * cast to x's dtype (differentiable); *out gets a new reference or NULL. */
static int affine(const char *fname, const char *what, ml_tensor *t, const ml_tensor *x,
                  int ndim, const int64_t *shape, ml_tensor **out) {
    *out = NULL;
    if (!t) return 0;
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same)
        return ml_error_set("%s: %s of shape %s, expected %s", fname, what, SHAPE(t, a),
                            ml_shape_str(ndim, shape, b, sizeof b));
    if (ml_check_same_device(fname, x, t)) return -1;
    if (!ml_dtype_is_float(t->dtype))
        return ml_error_set("%s: %s must be a float tensor, got %s", fname, what, ml_dtype_name(t->dtype));
    *out = ml_cast(t, x->dtype);
    return *out ? 0 : -1;
}

/* The shared part: x (float) normalised per geo with the cast affine wc, bc. */
static ml_tensor *norm_run(const char *fname, const char *node_name, ml_tensor *x, ml_tensor *wc,
                           ml_tensor *bc, const ml_norm_geom *geo, bool group) {
    ml_tensor *xc = ml_as_contiguous(x), *wcc = NULL, *bcc = NULL;
    if (!xc) return NULL;
    ml_tensor *y = NULL, *mean = NULL, *rstd = NULL;
    int64_t rows = geo->rows;
    if ((wc && !(wcc = ml_as_contiguous(wc))) || (bc && !(bcc = ml_as_contiguous(bc)))) goto done;
    y = ml_tensor_empty(x->dtype, x->storage->device, x->ndim, x->shape);
    mean = y ? ml_tensor_empty(x->dtype, x->storage->device, 1, &rows) : NULL;
    rstd = mean ? ml_tensor_empty(x->dtype, x->storage->device, 1, &rows) : NULL;
    const ml_norm_ops *no = rstd ? ml_need_norm(x, fname) : NULL;
    if (!no || no->forward(xc, wcc, bcc, geo, y, mean, rstd)) {
        ml_tensor_release(y);
        y = NULL;
        goto done;
    }
    ml_tensor *in[3] = {x, wc, bc};
    ml_node *node = ml_node_attach(y, node_name, norm_backward, 3, in);
    if (node) {
        node->ints[0] = geo->rows;
        node->ints[1] = geo->n;
        node->ints[2] = geo->groups;
        node->ints[3] = geo->segs;
        node->ints[4] = geo->seg_len;
        node->ints[5] = wcc != NULL;
        node->ints[6] = group;
        node->scalars[0] = geo->eps;
        ml_node_save(node, xc);
        ml_node_save(node, mean);
        ml_node_save(node, rstd);
        if (wcc) ml_node_save(node, wcc);
    }
done:
    ml_tensor_release(xc);
    ml_tensor_release(wcc);
    ml_tensor_release(bcc);
    ml_tensor_release(mean);
    ml_tensor_release(rstd);
    return y;
}

static int check_input(const char *fname, const ml_tensor *x) {
    if (!ml_dtype_is_float(x->dtype))
        return ml_error_set("%s: expected a float32 or float64 input, got %s", fname,
                            ml_dtype_name(x->dtype));
    return 0;
}

ml_tensor *ml_layer_norm(ml_tensor *x, int nshape, const int64_t *normalized_shape,
                         ml_tensor *w, ml_tensor *b, double eps) {
    const char *fname = "layer_norm";
    char a[ML_SHAPE_STR_MAX], s[ML_SHAPE_STR_MAX];
    if (check_input(fname, x)) return NULL;
    if (nshape < 1)
        return ml_error_set("%s: normalized_shape must name at least one dim, got {}", fname), NULL;
    bool ok = nshape <= x->ndim;
    for (int i = 0; ok && i < nshape; i++) ok = x->shape[x->ndim - nshape + i] == normalized_shape[i];
    if (!ok)
        return ml_error_set("%s: input of shape %s does not end with normalized_shape %s (expected "
                            "its last %d dims to be %s)", fname, SHAPE(x, a),
                            ml_shape_str(nshape, normalized_shape, s, sizeof s), nshape, s), NULL;
    ml_tensor *wc, *bc;
    if (affine(fname, "weight", w, x, nshape, normalized_shape, &wc)) return NULL;
    if (affine(fname, "bias", b, x, nshape, normalized_shape, &bc)) {
        ml_tensor_release(wc);
        return NULL;
    }
    const int64_t n = ml_shape_numel(nshape, normalized_shape);
    ml_norm_geom geo = {ml_shape_numel(x->ndim - nshape, x->shape), n, 1, n, 1, eps};
    ml_tensor *y = norm_run(fname, "NativeLayerNormBackward", x, wc, bc, &geo, false);
    ml_tensor_release(wc);
    ml_tensor_release(bc);
    return y;
}

ml_tensor *ml_group_norm(ml_tensor *x, int64_t groups, ml_tensor *w, ml_tensor *b, double eps) {
    const char *fname = "group_norm";
    char a[ML_SHAPE_STR_MAX];
    if (check_input(fname, x)) return NULL;
    if (x->ndim < 2)
        return ml_error_set("%s: expected an input of shape [N, C, *] (at least 2 dims), got %s",
                            fname, SHAPE(x, a)), NULL;
    const int64_t c = x->shape[1];
    if (groups < 1 || c % groups != 0)
        return ml_error_set("%s: num_groups %lld must divide the %lld channels of the input of "
                            "shape %s", fname, (long long)groups, (long long)c, SHAPE(x, a)), NULL;
    ml_tensor *wc, *bc;
    if (affine(fname, "weight", w, x, 1, &c, &wc)) return NULL;
    if (affine(fname, "bias", b, x, 1, &c, &bc)) {
        ml_tensor_release(wc);
        return NULL;
    }
    const int64_t len = ml_shape_numel(x->ndim - 2, x->shape + 2);
    ml_norm_geom geo = {x->shape[0] * groups, (c / groups) * len, groups, c / groups, len, eps};
    ml_tensor *y = norm_run(fname, "NativeGroupNormBackward", x, wc, bc, &geo, true);
    ml_tensor_release(wc);
    ml_tensor_release(bc);
    return y;
}
