/* Pooling: checks, output sizes (PyTorch's pooling_output_shape), dispatch to the
 * pool family (src/backend/pool.h) and the backward rules. A 3-D input is one
 * batch of planes: the kernels see any leading dims as planes. */
#include "pool.h"

#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "elementwise.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

_Static_assert(sizeof(ml_pool_geom) <= sizeof(((ml_node *)0)->ints), "the geometry fits a node");

/* which kernel a node runs backward */
enum { POOL_MAX, POOL_AVG, POOL_ADAPTIVE };

static int pool_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    ml_pool_geom geom;
    memcpy(&geom, node->ints, sizeof geom);
    const int kind = (int)node->scalars[0];
    ml_tensor *gc = ml_as_contiguous(g);
    ml_tensor *gx = gc ? ml_tensor_empty(g->dtype, g->storage->device, node->in_ndim[0],
                                         node->in_shape[0]) : NULL;
    const ml_pool_ops *po = gx ? ml_need_pool(gx, "pool backward") : NULL;
    int rc = po ? 0 : -1;
    if (rc == 0 && ml_numel(gx) > 0) {
        if (kind == POOL_MAX) rc = po->max_backward(gc, node->saved[0], &geom, gx);
        else if (kind == POOL_AVG) rc = po->avg_backward(gc, &geom, gx);
        else rc = po->adaptive_avg_backward(gc, &geom, gx);
    }
    ml_tensor_release(gc);
    if (rc) {
        ml_tensor_release(gx);
        return -1;
    }
    gin[0] = gx;
    return 0;
}

/* x 3-D or 4-D, float, with non-empty planes; geom's n, c, h, w from it */
static int check_input(const char *fname, const ml_tensor *x, ml_pool_geom *geom) {
    char sx[ML_SHAPE_STR_MAX];
    if (x->ndim != 3 && x->ndim != 4)
        return ml_error_set("%s: expected a 4-D input [N, C, H, W] (or an unbatched 3-D one [C, H, W]), "
                            "got %d-D %s", fname, x->ndim, SHAPE(x, sx));
    if (!ml_dtype_is_float(x->dtype))
        return ml_error_set("%s: needs a float32 or float64 input, got %s", fname, ml_dtype_name(x->dtype));
    const int d = x->ndim - 3;
    geom->n = d ? x->shape[0] : 1;
    geom->c = x->shape[d];
    geom->h = x->shape[d + 1];
    geom->w = x->shape[d + 2];
    if (geom->h < 1 || geom->w < 1)
        return ml_error_set("%s: expected non-empty planes, got input %s", fname, SHAPE(x, sx));
    return 0;
}

/* PyTorch's pooling_output_shape: floor (or ceil) of the span over the stride,
 * + 1; with ceil_mode the last window must start inside the input or left pad. */
static int64_t out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil) {
    const int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil ? stride - 1 : 0);
    int64_t o = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
    if (ceil && (o - 1) * stride >= in + pad) o--;
    return o;
}

/* the output (with geom filled) of a windowed pooling, or NULL */
static ml_tensor *windowed(const char *fname, ml_tensor *x, const ml_pool_opts *o, bool has_dil,
                           ml_pool_geom *geom) {
    char sx[ML_SHAPE_STR_MAX];
    memset(geom, 0, sizeof *geom);
    if (check_input(fname, x, geom)) return NULL;
    geom->count_include_pad = o->count_include_pad;
    int64_t *k[2] = {&geom->kh, &geom->kw}, *s[2] = {&geom->sh, &geom->sw};
    int64_t *p[2] = {&geom->ph, &geom->pw}, *dl[2] = {&geom->dh, &geom->dw}, *out[2] = {&geom->oh, &geom->ow};
    for (int d = 0; d < 2; d++) {
        *k[d] = o->kernel[d];
        *s[d] = o->stride[d] ? o->stride[d] : o->kernel[d];
        *p[d] = o->padding[d];
        *dl[d] = has_dil ? o->dilation[d] : 1;
        if (*k[d] < 1) return ml_error_set("%s: kernel_size must be positive, got %lld", fname, (long long)*k[d]), NULL;
        if (*s[d] < 1) return ml_error_set("%s: stride must be positive, got %lld", fname, (long long)*s[d]), NULL;
        if (*dl[d] < 1) return ml_error_set("%s: dilation must be positive, got %lld", fname, (long long)*dl[d]), NULL;
        if (*p[d] < 0 || *p[d] > *k[d] / 2)
            return ml_error_set("%s: padding %lld must be between 0 and half the kernel size %lld",
                                fname, (long long)*p[d], (long long)*k[d]), NULL;
        const int64_t in = d ? geom->w : geom->h;
        *out[d] = out_size(in, *k[d], *p[d], *s[d], *dl[d], o->ceil_mode);
    }
    if (geom->oh < 1 || geom->ow < 1)
        return ml_error_set("%s: input %s is too small for kernel_size %lldx%lld (dilation %lldx%lld, "
                            "padding %lldx%lld): the output would be %lldx%lld", fname, SHAPE(x, sx),
                            (long long)geom->kh, (long long)geom->kw, (long long)geom->dh,
                            (long long)geom->dw, (long long)geom->ph, (long long)geom->pw,
                            (long long)geom->oh, (long long)geom->ow), NULL;
    int64_t shape[4];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 2] = geom->oh;
    shape[x->ndim - 1] = geom->ow;
    return ml_tensor_empty(x->dtype, x->storage->device, x->ndim, shape);
}

/* attaches the backward node (saving idx for max pooling) */
static void attach(ml_tensor *y, ml_tensor *x, const char *name, int kind, const ml_pool_geom *geom,
                   const ml_tensor *idx) {
    ml_node *node = ml_node_attach(y, name, pool_backward, 1, &x);
    if (!node) return;
    memcpy(node->ints, geom, sizeof *geom);
    node->scalars[0] = kind;
    if (idx) ml_node_save(node, idx);
}

ml_tensor *ml_max_pool2d(ml_tensor *x, const ml_pool_opts *o, ml_tensor **indices) {
    ml_pool_geom geom;
    ml_tensor *y = windowed("max_pool2d", x, o, true, &geom);
    ml_tensor *xc = y ? ml_as_contiguous(x) : NULL;
    /* the positions only when asked for or kept for the backward (an int64 each:
     * inference at batch 1000 held 24 MiB of them after the first pooling) */
    const bool want_idx = indices || ml_needs_graph(1, &x);
    ml_tensor *idx = xc && want_idx ? ml_tensor_empty(ML_I64, x->storage->device, y->ndim, y->shape) : NULL;
    const ml_pool_ops *po = xc && (idx || !want_idx) ? ml_need_pool(x, "max_pool2d") : NULL;
    int rc = po ? 0 : -1;
    if (rc == 0 && ml_numel(y) > 0) rc = po->max_forward(xc, &geom, y, idx);
    ml_tensor_release(xc);
    if (rc) {
        ml_tensor_release(y);
        ml_tensor_release(idx);
        return NULL;
    }
    attach(y, x, "MaxPool2DWithIndicesBackward", POOL_MAX, &geom, idx);
    if (indices) *indices = idx;
    else ml_tensor_release(idx);
    return y;
}

ml_tensor *ml_avg_pool2d(ml_tensor *x, const ml_pool_opts *o) {
    ml_pool_geom geom;
    ml_tensor *y = windowed("avg_pool2d", x, o, false, &geom);
    ml_tensor *xc = y ? ml_as_contiguous(x) : NULL;
    const ml_pool_ops *po = xc ? ml_need_pool(x, "avg_pool2d") : NULL;
    int rc = po ? 0 : -1;
    if (rc == 0 && ml_numel(y) > 0) rc = po->avg_forward(xc, &geom, y);
    ml_tensor_release(xc);
    if (rc) {
        ml_tensor_release(y);
        return NULL;
    }
    attach(y, x, "AvgPool2DBackward", POOL_AVG, &geom, NULL);
    return y;
}

ml_tensor *ml_adaptive_avg_pool2d(ml_tensor *x, int64_t oh, int64_t ow) {
    ml_pool_geom geom = {0};
    if (check_input("adaptive_avg_pool2d", x, &geom)) return NULL;
    if (oh < 1 || ow < 1)
        return ml_error_set("adaptive_avg_pool2d: output_size must be positive, got %lldx%lld",
                            (long long)oh, (long long)ow), NULL;
    geom.oh = oh;
    geom.ow = ow;
    int64_t shape[4];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 2] = oh;
    shape[x->ndim - 1] = ow;
    ml_tensor *y = ml_tensor_empty(x->dtype, x->storage->device, x->ndim, shape);
    ml_tensor *xc = y ? ml_as_contiguous(x) : NULL;
    const ml_pool_ops *po = xc ? ml_need_pool(x, "adaptive_avg_pool2d") : NULL;
    int rc = po ? 0 : -1;
    if (rc == 0 && ml_numel(y) > 0) rc = po->adaptive_avg_forward(xc, &geom, y);
    ml_tensor_release(xc);
    if (rc) {
        ml_tensor_release(y);
        return NULL;
    }
    attach(y, x, "AdaptiveAvgPool2DBackward", POOL_ADAPTIVE, &geom, NULL);
    return y;
}
