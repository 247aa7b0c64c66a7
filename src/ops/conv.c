/* conv1d / conv2d / conv_transpose2d: checks, the geometry, dispatch to the conv
 * family (src/backend/conv.h) and the backward rule. conv1d is conv2d over a
 * height of 1; an unbatched input is a batch of one; conv_transpose2d is the conv
 * family's two data products swapped (its forward is a convolution's input
 * gradient). One node, "ConvolutionBackward" as PyTorch's, for all three. */
#include "conv.h"

#include <stdio.h>
#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "elementwise.h"
#include "reduce.h"
#include "shape.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

_Static_assert(sizeof(ml_conv_geom) <= sizeof(((ml_node *)0)->ints), "the geometry fits a node");

ml_conv_opts ml_conv_opts_default(void) {
    ml_conv_opts o = {.stride = {1, 1}, .padding = {0, 0}, .dilation = {1, 1},
                      .output_padding = {0, 0}, .groups = 1, .pad_same = false};
    return o;
}

/* The backward rule. ints: the geometry; scalars[0]: 1 for conv_transpose2d;
 * saved: x, w (contiguous). In the geometry of a transposed convolution the
 * convolution's input is the transposed one's output (and the other way round). */
static int conv_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    ml_conv_geom geom;
    memcpy(&geom, node->ints, sizeof geom);
    const bool transposed = node->scalars[0] != 0;
    ml_tensor *x = node->saved[0], *w = node->saved[1];
    ml_tensor *gc = ml_as_contiguous(g);
    if (!gc) return -1;
    const ml_conv_ops *co = ml_need_conv(gc, transposed ? "conv_transpose2d" : "conv2d");
    int rc = co ? 0 : -1;
    if (rc == 0 && node->needs_grad[0]) { /* the input's gradient */
        ml_tensor *gx = ml_tensor_empty_like(x);
        if (!gx) rc = -1;
        else if (transposed) rc = co->forward(gc, w, NULL, &geom, gx);
        else rc = co->backward_input(gc, w, NULL, &geom, gx);
        if (rc == 0) gin[0] = gx;
        else ml_tensor_release(gx);
    }
    const bool want_b = node->n_inputs > 2 && node->needs_grad[2];
    if (rc == 0 && node->needs_grad[1]) { /* the weight's, and the bias's with it */
        ml_tensor *gw = ml_tensor_empty_like(w);
        ml_tensor *gb = want_b && !transposed
                            ? ml_tensor_empty(w->dtype, w->storage->device, 1, &geom.c_out)
                            : NULL;
        if (!gw || (want_b && !transposed && !gb)) rc = -1;
        else if (transposed) rc = co->backward_weight(gc, x, &geom, gw, NULL);
        else rc = co->backward_weight(x, gc, &geom, gw, gb);
        if (rc == 0) {
            gin[1] = gw;
            gin[2] = gb;
        } else {
            ml_tensor_release(gw);
            ml_tensor_release(gb);
        }
    }
    if (rc == 0 && want_b && !gin[2]) { /* g [n, c, h, w] summed over n, h, w */
        ml_tensor *s3 = ml_sum(gc, 3, false);
        ml_tensor *s2 = s3 ? ml_sum(s3, 2, false) : NULL;
        gin[2] = s2 ? ml_sum(s2, 0, false) : NULL;
        ml_tensor_release(s3);
        ml_tensor_release(s2);
        if (!gin[2]) rc = -1;
    }
    ml_tensor_release(gc);
    return rc;
}

/* "[2, 3]"-style shapes of the operands, for messages */
static int fail_shapes(const char *fname, const char *what, const ml_tensor *x, const ml_tensor *w) {
    char sx[ML_SHAPE_STR_MAX], sw[ML_SHAPE_STR_MAX];
    return ml_error_set("%s: %s (input %s, weight %s)", fname, what, SHAPE(x, sx), SHAPE(w, sw));
}

static int check_operands(const char *fname, const ml_tensor *x, const ml_tensor *w,
                          const ml_tensor *b, int64_t bias_len) {
    char sx[ML_SHAPE_STR_MAX], sb[ML_SHAPE_STR_MAX];
    if (ml_check_same_device(fname, x, w) || (b && ml_check_same_device(fname, x, b))) return -1;
    if (!ml_dtype_is_float(w->dtype) || x->dtype != w->dtype || (b && b->dtype != w->dtype))
        return ml_error_set("%s: input, weight and bias need one floating dtype, got %s, %s%s%s",
                            fname, ml_dtype_name(x->dtype), ml_dtype_name(w->dtype),
                            b ? " and " : "", b ? ml_dtype_name(b->dtype) : "");
    if (b && (b->ndim != 1 || b->shape[0] != bias_len))
        return ml_error_set("%s: bias must be [%lld] (one per output channel), got %s (input %s)",
                            fname, (long long)bias_len, SHAPE(b, sb), SHAPE(x, sx));
    return 0;
}

static int check_opts(const char *fname, const ml_conv_opts *o, int first_dim) {
    for (int d = first_dim; d < 2; d++) {
        if (o->stride[d] < 1) return ml_error_set("%s: stride must be positive, got %lld", fname, (long long)o->stride[d]);
        if (o->dilation[d] < 1) return ml_error_set("%s: dilation must be positive, got %lld", fname, (long long)o->dilation[d]);
        if (o->padding[d] < 0) return ml_error_set("%s: padding must be non-negative, got %lld", fname, (long long)o->padding[d]);
        if (o->output_padding[d] < 0)
            return ml_error_set("%s: output_padding must be non-negative, got %lld", fname, (long long)o->output_padding[d]);
    }
    if (o->groups < 1) return ml_error_set("%s: groups must be positive, got %lld", fname, (long long)o->groups);
    return 0;
}

/* x [N, C, H, W], w 4-D, checked; transposed or not. Returns the output. */
static ml_tensor *conv_nd(const char *fname, int sd, ml_tensor *x, ml_tensor *w, ml_tensor *b,
                          const ml_conv_opts *o, bool transposed, const ml_tensor *ux) {
    char buf[256];
    const int64_t G = o->groups;
    ml_conv_geom geom = {0};
    int64_t out_c, oh, ow;
    if (!transposed) {
        const int64_t cin = w->shape[1] * G;
        if (w->shape[0] % G)
            return fail_shapes(fname, (snprintf(buf, sizeof buf, "groups %lld must divide out_channels %lld",
                                                (long long)G, (long long)w->shape[0]), buf), ux, w), NULL;
        if (x->shape[1] != cin) {
            if (ux->ndim == 3 - sd)
                snprintf(buf, sizeof buf, "expected a %d-D input [N, C, %s] or an unbatched %d-D one [C, %s] "
                         "with C = in_channels = %lld; a %d-D input is taken as unbatched and its C is %lld",
                         4 - sd, sd ? "L" : "H, W", 3 - sd, sd ? "L" : "H, W", (long long)cin, 3 - sd,
                         (long long)x->shape[1]);
            else
                snprintf(buf, sizeof buf, "expected input with in_channels = %lld channels "
                         "(weight.shape[2] %lld x groups %lld), got %lld channels",
                         (long long)cin, (long long)w->shape[1], (long long)G, (long long)x->shape[1]);
            return fail_shapes(fname, buf, ux, w), NULL;
        }
        geom = (ml_conv_geom){.n = x->shape[0], .c_in = cin, .h = x->shape[2], .w = x->shape[3],
                              .c_out = w->shape[0], .kh = w->shape[2], .kw = w->shape[3],
                              .sh = o->stride[0], .sw = o->stride[1], .dh = o->dilation[0],
                              .dw = o->dilation[1], .groups = G};
        int64_t *pad[2] = {&geom.ph, &geom.pw}, *out[2] = {&geom.oh, &geom.ow};
        for (int d = 0; d < 2; d++) {
            const int64_t in = x->shape[2 + d], k = w->shape[2 + d], dil = o->dilation[d];
            const int64_t span = dil * (k - 1) + 1;
            if (o->pad_same) {
                *pad[d] = dil * (k - 1) / 2;
                *out[d] = in;
                if (in < 1) continue;
            } else {
                *pad[d] = o->padding[d];
                if (in + 2 * o->padding[d] < span) {
                    snprintf(buf, sizeof buf, "kernel size %lld (dilated: %lld) is larger than the "
                             "padded input size %lld (%s %lld + 2 x padding %lld)", (long long)k,
                             (long long)span, (long long)(in + 2 * o->padding[d]),
                             d ? (sd ? "length" : "width") : "height", (long long)in, (long long)o->padding[d]);
                    return fail_shapes(fname, buf, ux, w), NULL;
                }
                *out[d] = (in + 2 * o->padding[d] - span) / o->stride[d] + 1;
            }
        }
        out_c = geom.c_out;
        oh = geom.oh;
        ow = geom.ow;
    } else {
        const int64_t cin = w->shape[0], cout = w->shape[1] * G;
        if (cin % G)
            return fail_shapes(fname, (snprintf(buf, sizeof buf, "groups %lld must divide in_channels %lld",
                                                (long long)G, (long long)cin), buf), ux, w), NULL;
        if (x->shape[1] != cin) {
            snprintf(buf, sizeof buf, "expected input with in_channels = weight.shape[1] = %lld channels, "
                     "got %lld channels", (long long)cin, (long long)x->shape[1]);
            return fail_shapes(fname, buf, ux, w), NULL;
        }
        int64_t osz[2];
        for (int d = 0; d < 2; d++) {
            if (o->output_padding[d] >= o->stride[d] && o->output_padding[d] >= o->dilation[d])
                return ml_error_set("%s: output_padding %lld must be smaller than either stride %lld or "
                                    "dilation %lld", fname, (long long)o->output_padding[d],
                                    (long long)o->stride[d], (long long)o->dilation[d]), NULL;
            osz[d] = (x->shape[2 + d] - 1) * o->stride[d] - 2 * o->padding[d] +
                     o->dilation[d] * (w->shape[2 + d] - 1) + o->output_padding[d] + 1;
            if (osz[d] < 1) {
                snprintf(buf, sizeof buf, "the output size %lld is not positive", (long long)osz[d]);
                return fail_shapes(fname, buf, ux, w), NULL;
            }
        }
        /* the convolution whose input gradient this is: input = our output */
        geom = (ml_conv_geom){.n = x->shape[0], .c_in = cout, .h = osz[0], .w = osz[1],
                              .c_out = cin, .kh = w->shape[2], .kw = w->shape[3],
                              .oh = x->shape[2], .ow = x->shape[3], .sh = o->stride[0],
                              .sw = o->stride[1], .ph = o->padding[0], .pw = o->padding[1],
                              .dh = o->dilation[0], .dw = o->dilation[1], .groups = G};
        out_c = cout;
        oh = osz[0];
        ow = osz[1];
    }
    if (check_operands(fname, x, w, b, out_c)) return NULL;
    ml_tensor *xc = ml_as_contiguous(x), *wc = xc ? ml_as_contiguous(w) : NULL;
    ml_tensor *bc = wc && b ? ml_as_contiguous(b) : NULL;
    const int64_t shape[4] = {x->shape[0], out_c, oh, ow};
    ml_tensor *y = wc && (!b || bc) ? ml_tensor_empty(x->dtype, x->storage->device, 4, shape) : NULL;
    const ml_conv_ops *co = y ? ml_need_conv(y, fname) : NULL;
    int rc = co ? 0 : -1;
    if (rc == 0 && ml_numel(y) > 0) {
        if (transposed) rc = co->backward_input(xc, wc, bc, &geom, y);
        else rc = co->forward(xc, wc, bc, &geom, y);
    }
    if (rc) {
        ml_tensor_release(y);
        y = NULL;
    }
    ml_tensor *in[3] = {x, w, b};
    ml_node *node = y ? ml_node_attach(y, "ConvolutionBackward", conv_backward, b ? 3 : 2, in) : NULL;
    if (node) {
        memcpy(node->ints, &geom, sizeof geom);
        node->scalars[0] = transposed;
        ml_node_save(node, xc);
        ml_node_save(node, wc);
    }
    ml_tensor_release(xc);
    ml_tensor_release(wc);
    ml_tensor_release(bc);
    return y;
}

/* The shared front: ranks (sd = 1 for conv1d: one spatial dim), unbatched inputs,
 * then conv_nd on 4-D views. */
static ml_tensor *conv_front(const char *fname, int sd, ml_tensor *x, ml_tensor *w, ml_tensor *b,
                             const ml_conv_opts *o, bool transposed) {
    char sx[ML_SHAPE_STR_MAX], sw[ML_SHAPE_STR_MAX];
    const int rank = 4 - sd; /* the batched input's rank */
    if (w->ndim != rank)
        return ml_error_set("%s: weight must be %d-D [%s, %s, %s], got %d-D %s", fname, rank,
                            transposed ? "in_channels" : "out_channels",
                            transposed ? "out_channels / groups" : "in_channels / groups",
                            sd ? "kernel_size" : "kh, kw", w->ndim, SHAPE(w, sw)), NULL;
    if (x->ndim != rank && x->ndim != rank - 1)
        return ml_error_set("%s: expected a %d-D input [N, C, %s] (or an unbatched %d-D one [C, %s]), "
                            "got %d-D %s", fname, rank, sd ? "L" : "H, W", rank - 1,
                            sd ? "L" : "H, W", x->ndim, SHAPE(x, sx)), NULL;
    if (check_opts(fname, o, sd)) return NULL;
    if (o->pad_same && (o->stride[0] != 1 || o->stride[1] != 1))
        return ml_error_set("%s: padding = \"same\" needs stride 1 (as PyTorch), got stride %lld",
                            fname, (long long)o->stride[1]), NULL;
    const bool unbatched = x->ndim == rank - 1;
    ml_tensor *x4 = unbatched ? ml_unsqueeze(x, 0) : ml_tensor_retain(x);
    if (x4 && sd) { /* [N, C, L] -> [N, C, 1, L] */
        ml_tensor *t = ml_unsqueeze(x4, 2);
        ml_tensor_release(x4);
        x4 = t;
    }
    ml_tensor *w4 = sd ? ml_unsqueeze(w, 2) : ml_tensor_retain(w);
    ml_tensor *y = x4 && w4 ? conv_nd(fname, sd, x4, w4, b, o, transposed, x) : NULL;
    ml_tensor_release(x4);
    ml_tensor_release(w4);
    if (y && sd) {
        ml_tensor *t = ml_squeeze(y, 2);
        ml_tensor_release(y);
        y = t;
    }
    if (y && unbatched) {
        ml_tensor *t = ml_squeeze(y, 0);
        ml_tensor_release(y);
        y = t;
    }
    return y;
}

ml_tensor *ml_conv2d(ml_tensor *x, ml_tensor *w, ml_tensor *b, const ml_conv_opts *o) {
    return conv_front("conv2d", 0, x, w, b, o, false);
}

ml_tensor *ml_conv1d(ml_tensor *x, ml_tensor *w, ml_tensor *b, const ml_conv_opts *o) {
    ml_conv_opts o2 = *o; /* conv1d's options are the width's; the height is 1 */
    o2.stride[0] = 1;
    o2.padding[0] = 0;
    o2.dilation[0] = 1;
    o2.output_padding[0] = 0;
    return conv_front("conv1d", 1, x, w, b, &o2, false);
}

ml_tensor *ml_conv_transpose2d(ml_tensor *x, ml_tensor *w, ml_tensor *b, const ml_conv_opts *o) {
    if (o->pad_same) return ml_error_set("conv_transpose2d: padding must be numbers, not \"same\""), NULL;
    return conv_front("conv_transpose2d", 0, x, w, b, o, true);
}
