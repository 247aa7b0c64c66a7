/* F.batch_norm: checks, dispatch to the batchnorm family (src/backend/batchnorm.h)
 * and the backward rule, "NativeBatchNormBackward" as PyTorch's. x [N, C, ...] is
 * seen as [N, C, S]; the node saves x and the mean and invstd that the forward
 * used (the batch's when training, the running statistics' otherwise). */
#include "batchnorm.h"

#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "elementwise.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

/* The gradients a batch-norm node's inputs ask for, from g by the backend: the
 * plain rule (geom NULL) or the one through max pooling (geom and the window codes) */
static int backward_into(ml_node *node, ml_tensor *g, ml_tensor **gin, const ml_bn_args *a,
                         const ml_pool_geom *geom, const ml_tensor *codes) {
    ml_tensor *x = node->saved[0];
    ml_tensor *gc = ml_as_contiguous(g);
    if (!gc) return -1;
    const int64_t c = a->c;
    ml_tensor *gx = node->needs_grad[0] ? ml_tensor_empty_like(x) : NULL;
    ml_tensor *gw = node->n_inputs > 1 && node->needs_grad[1]
                        ? ml_tensor_empty(x->dtype, x->storage->device, 1, &c) : NULL;
    ml_tensor *gb = node->n_inputs > 2 && node->needs_grad[2]
                        ? ml_tensor_empty(x->dtype, x->storage->device, 1, &c) : NULL;
    const ml_batchnorm_ops *bo = ml_need_batchnorm(x, geom ? "batch_norm_max_pool2d" : "batch_norm");
    int rc = -1;
    if (bo && (gx || !node->needs_grad[0]))
        rc = geom ? bo->max_pool_backward(gc, codes, x, a, geom, gx, gw, gb)
                  : bo->backward(gc, x, a, gx, gw, gb);
    ml_tensor_release(gc);
    if (rc) {
        ml_tensor_release(gx);
        ml_tensor_release(gw);
        ml_tensor_release(gb);
        return -1;
    }
    gin[0] = gx;
    if (node->n_inputs > 1) gin[1] = gw;
    if (node->n_inputs > 2) gin[2] = gb;
    return 0;
}

/* ints: n, c, s, training; saved: x, mean, invstd, weight (when given) */
static int bn_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    const ml_bn_args a = {.n = node->ints[0], .c = node->ints[1], .s = node->ints[2],
                          .training = node->ints[3] != 0, .mean = node->saved[1],
                          .invstd = node->saved[2],
                          .weight = node->n_saved > 3 ? node->saved[3] : NULL};
    return backward_into(node, g, gin, &a, NULL, NULL);
}

/* batch_norm_max_pool2d's rule, "BatchNormMaxPool2dBackward": ints the pooling's
 * geometry (n, c, h, w are x's: s = h w), scalars[0] training; saved: x, mean,
 * invstd, the window codes, weight (when given) */
_Static_assert(sizeof(ml_pool_geom) <= sizeof(((ml_node *)0)->ints), "the geometry fits a node");

static int bn_pool_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    ml_pool_geom geom;
    memcpy(&geom, node->ints, sizeof geom);
    const ml_bn_args a = {.n = geom.n, .c = geom.c, .s = geom.h * geom.w,
                          .training = node->scalars[0] != 0, .mean = node->saved[1],
                          .invstd = node->saved[2],
                          .weight = node->n_saved > 4 ? node->saved[4] : NULL};
    return backward_into(node, g, gin, &a, &geom, node->saved[3]);
}

/* t is a [c] vector of x's dtype and device (named what), or NULL */
static int check_vec(const ml_tensor *x, const ml_tensor *t, int64_t c, const char *what) {
    char st[ML_SHAPE_STR_MAX], sx[ML_SHAPE_STR_MAX];
    if (!t) return 0;
    if (t->ndim != 1 || t->shape[0] != c)
        return ml_error_set("batch_norm: %s must be [%lld] (one per channel of input %s), got %s", what,
                            (long long)c, SHAPE(x, sx), SHAPE(t, st));
    if (t->dtype != x->dtype)
        return ml_error_set("batch_norm: %s is %s, the input %s", what, ml_dtype_name(t->dtype),
                            ml_dtype_name(x->dtype));
    return ml_check_same_device("batch_norm", x, t);
}

/* F.batch_norm (kernel NULL) or, with kernel {kh, kw}, batch_norm_max_pool2d */
static ml_tensor *batch_norm(ml_tensor *x, ml_tensor *running_mean, ml_tensor *running_var,
                             ml_tensor *weight, ml_tensor *bias, bool training, double momentum,
                             double eps, const int64_t *kernel) {
    char sx[ML_SHAPE_STR_MAX];
    if (x->ndim < 2)
        return ml_error_set("batch_norm: expected an input [N, C, ...] of at least 2 dims, got %s",
                            SHAPE(x, sx)), NULL;
    ml_pool_geom geom = {0};
    if (kernel) {
        if (x->ndim != 4)
            return ml_error_set("batch_norm_max_pool2d: expected a 4-D input [N, C, H, W], got %s",
                                SHAPE(x, sx)), NULL;
        if (kernel[0] < 1 || kernel[1] < 1 || x->shape[2] < kernel[0] || x->shape[3] < kernel[1])
            return ml_error_set("batch_norm_max_pool2d: kernel_size {%lld, %lld} does not fit the "
                                "planes of input %s", (long long)kernel[0], (long long)kernel[1],
                                SHAPE(x, sx)), NULL;
        if (kernel[0] > 256 / kernel[1]) /* a window's place in a uint8 */
            return ml_error_set("batch_norm_max_pool2d: kernel_size {%lld, %lld}: windows of at "
                                "most 256 elements", (long long)kernel[0], (long long)kernel[1]), NULL;
        geom = (ml_pool_geom){.n = x->shape[0], .c = x->shape[1], .h = x->shape[2],
                              .w = x->shape[3], .oh = x->shape[2] / kernel[0],
                              .ow = x->shape[3] / kernel[1], .kh = kernel[0], .kw = kernel[1],
                              .sh = kernel[0], .sw = kernel[1], .dh = 1, .dw = 1};
    }
    if (!ml_dtype_is_float(x->dtype))
        return ml_error_set("batch_norm: needs a float32 or float64 input, got %s", ml_dtype_name(x->dtype)), NULL;
    const int64_t n = x->shape[0], c = x->shape[1], s = ml_shape_numel(x->ndim - 2, x->shape + 2);
    if (!running_mean != !running_var)
        return ml_error_set("batch_norm: give running_mean and running_var both, or neither"), NULL;
    if (!training && !running_mean)
        return ml_error_set("batch_norm: running_mean and running_var are needed when not training"), NULL;
    if (training && n * s <= 1)
        return ml_error_set("batch_norm: expected more than 1 value per channel when training, got "
                            "input %s", SHAPE(x, sx)), NULL;
    if (check_vec(x, running_mean, c, "running_mean") || check_vec(x, running_var, c, "running_var") ||
        check_vec(x, weight, c, "weight") || check_vec(x, bias, c, "bias"))
        return NULL;
    if ((running_mean && !ml_is_contiguous(running_mean)) || (running_var && !ml_is_contiguous(running_var)))
        return ml_error_set("batch_norm: running_mean and running_var must be contiguous (they are "
                            "updated in place)"), NULL;
    ml_tensor *xc = ml_as_contiguous(x);
    ml_tensor *wc = xc && weight ? ml_as_contiguous(weight) : NULL;
    ml_tensor *bc = xc && bias ? ml_as_contiguous(bias) : NULL;
    const int64_t pooled[4] = {n, c, geom.oh, geom.ow};
    ml_tensor *y = !xc ? NULL
                   : kernel ? ml_tensor_empty(x->dtype, x->storage->device, 4, pooled)
                            : ml_tensor_empty_like(xc);
    /* the window codes only for a backward (inference at batch 1000: 3 MiB after the CNN's
     * first layer) */
    ml_tensor *in[3] = {x, weight, bias};
    const bool want_codes = kernel && ml_needs_graph(bias ? 3 : weight ? 2 : 1, in);
    ml_tensor *idx = y && want_codes ? ml_tensor_empty(ML_U8, x->storage->device, 4, pooled) : NULL;
    ml_tensor *mean = y && (idx || !want_codes) ? ml_tensor_empty(x->dtype, x->storage->device, 1, &c) : NULL;
    ml_tensor *invstd = mean ? ml_tensor_empty(x->dtype, x->storage->device, 1, &c) : NULL;
    ml_bn_args a = {.n = n, .c = c, .s = s, .training = training, .momentum = momentum, .eps = eps,
                    .weight = wc, .bias = bc, .running_mean = running_mean,
                    .running_var = running_var, .mean = mean, .invstd = invstd};
    const ml_batchnorm_ops *bo = invstd ? ml_need_batchnorm(x, "batch_norm") : NULL;
    int rc = -1;
    if (bo && (!weight || wc) && (!bias || bc))
        rc = kernel ? bo->max_pool_forward(xc, &a, &geom, y, idx) : bo->forward(xc, &a, y);
    if (rc) {
        ml_tensor_release(y);
        y = NULL;
    }
    ml_node *node = !y ? NULL
                    : kernel ? ml_node_attach(y, "BatchNormMaxPool2dBackward", bn_pool_backward,
                                              bias ? 3 : weight ? 2 : 1, in)
                             : ml_node_attach(y, "NativeBatchNormBackward", bn_backward,
                                              bias ? 3 : weight ? 2 : 1, in);
    if (node) {
        if (kernel) {
            memcpy(node->ints, &geom, sizeof geom);
            node->scalars[0] = training;
        } else {
            node->ints[0] = n;
            node->ints[1] = c;
            node->ints[2] = s;
            node->ints[3] = training;
        }
        ml_node_save(node, xc);
        ml_node_save(node, mean);
        ml_node_save(node, invstd);
        if (kernel) ml_node_save(node, idx);
        if (wc) ml_node_save(node, wc);
    }
    ml_tensor_release(idx);
    ml_tensor_release(xc);
    ml_tensor_release(wc);
    ml_tensor_release(bc);
    ml_tensor_release(mean);
    ml_tensor_release(invstd);
    return y;
}

ml_tensor *ml_batch_norm(ml_tensor *x, ml_tensor *running_mean, ml_tensor *running_var,
                         ml_tensor *weight, ml_tensor *bias, bool training, double momentum,
                         double eps) {
    return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, NULL);
}

ml_tensor *ml_batch_norm_max_pool2d(ml_tensor *x, ml_tensor *running_mean, ml_tensor *running_var,
                                    ml_tensor *weight, ml_tensor *bias, bool training,
                                    double momentum, double eps, int64_t kh, int64_t kw) {
    const int64_t kernel[2] = {kh, kw};
    return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, kernel);
}
