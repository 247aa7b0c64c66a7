/* Elementwise ops: broadcasting, type promotion, autograd rules, dispatch. */
#include "elementwise.h"

#include <math.h>
#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "creation.h"
#include "reduce.h"
#include "shape.h"

static const char *const binary_names[ML_BIN_COUNT] = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge",
    "relu_backward", "sigmoid_backward", "tanh_backward",
};

static const char *const unary_names[ML_UN_COUNT] = {
    "neg", "exp", "log", "log1p", "abs", "sqrt", "square", "sign", "relu", "sigmoid", "tanh",
    "reciprocal",
};

int ml_check_same_device(const char *fname, const ml_tensor *a, const ml_tensor *b) {
    if (a->storage->device == b->storage->device) return 0;
    return ml_error_set("%s: expected all tensors on one device, got %s and %s (move them "
                        "with :to(device) first)",
                        fname, ml_device_name(a->storage->device),
                        ml_device_name(b->storage->device));
}

static int dtype_rank(ml_dtype dt) {
    switch (dt) {
    case ML_U8: return 0;
    case ML_I64: return 1;
    case ML_F32: return 2;
    case ML_F64: return 3;
    default: return 0;
    }
}

static ml_dtype higher(ml_dtype a, ml_dtype b) { return dtype_rank(a) >= dtype_rank(b) ? a : b; }

ml_dtype ml_result_type(const ml_tensor *a, const ml_tensor *b) {
    bool a_scalar = a->ndim == 0, b_scalar = b->ndim == 0;
    if (a_scalar != b_scalar && ml_dtype_is_float(a->dtype) == ml_dtype_is_float(b->dtype))
        return a_scalar ? b->dtype : a->dtype;
    return higher(a->dtype, b->dtype);
}

ml_tensor *ml_scalar(double v, ml_dtype dt, ml_device dev) {
    return ml_full(dt, dev, 0, NULL, v);
}

static bool is_compare(ml_binary_op op) { return op >= ML_BIN_EQ && op <= ML_BIN_GE; }

/* The operands as the kernel wants them: common dtype, out's shape (stride 0). */
static ml_tensor *operand(ml_tensor *t, ml_dtype dt, int ndim, const int64_t *shape) {
    ml_tensor *cast = t->dtype == dt ? ml_tensor_retain(t) : ml_cast(t, dt);
    if (!cast) return NULL;
    ml_tensor *e = ml_expand_raw(cast, ndim, shape);
    ml_tensor_release(cast);
    return e;
}

static ml_tensor *binary_raw(ml_binary_op op, ml_tensor *a, ml_tensor *b, ml_dtype dt) {
    const char *name = binary_names[op];
    if (ml_check_same_device(name, a, b)) return NULL;
    int ndim;
    int64_t shape[ML_MAX_DIMS];
    if (ml_broadcast_shapes(name, a->ndim, a->shape, b->ndim, b->shape, &ndim, shape))
        return NULL;
    ml_tensor *ea = operand(a, dt, ndim, shape);
    ml_tensor *eb = ea ? operand(b, dt, ndim, shape) : NULL;
    ml_tensor *out = eb ? ml_tensor_empty(is_compare(op) ? ML_U8 : dt, a->storage->device,
                                          ndim, shape)
                        : NULL;
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(a, name) : NULL;
    if (out && (!ew || ew->binary(op, ea, eb, out))) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor_release(ea);
    ml_tensor_release(eb);
    return out;
}

/* --- backward rules --- */

static ml_tensor *reduce_to_input(ml_node *n, int i, ml_tensor *g) {
    if (!g) return NULL;
    ml_tensor *r = ml_sum_to_shape(g, n->in_ndim[i], n->in_shape[i]);
    ml_tensor_release(g);
    if (r && r->dtype != n->in_dtype[i] && ml_dtype_is_float(n->in_dtype[i])) {
        ml_tensor *c = ml_cast(r, n->in_dtype[i]);
        ml_tensor_release(r);
        r = c;
    }
    return r;
}

static int add_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    double sign_b = n->scalars[0]; /* 1 for add, -1 for sub */
    if (n->needs_grad[0]) gin[0] = reduce_to_input(n, 0, ml_tensor_retain(g));
    if (n->needs_grad[1])
        gin[1] = reduce_to_input(n, 1, sign_b > 0 ? ml_tensor_retain(g) : ml_neg(g));
    return 0;
}

static int mul_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *a = n->saved[0], *b = n->saved[1];
    if (n->needs_grad[0]) gin[0] = reduce_to_input(n, 0, ml_mul(g, b));
    if (n->needs_grad[1]) gin[1] = reduce_to_input(n, 1, ml_mul(g, a));
    return 0;
}

static int div_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *a = n->saved[0], *b = n->saved[1];
    if (n->needs_grad[0]) gin[0] = reduce_to_input(n, 0, ml_div(g, b));
    if (n->needs_grad[1]) {
        /* -g * a / b^2 */
        ml_tensor *ga = ml_mul(g, a), *b2 = ml_mul(b, b);
        ml_tensor *q = ga && b2 ? ml_div(ga, b2) : NULL;
        gin[1] = reduce_to_input(n, 1, q ? ml_neg(q) : NULL);
        ml_tensor_release(ga);
        ml_tensor_release(b2);
        ml_tensor_release(q);
    }
    return 0;
}

static int pow_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *a = n->saved[0], *b = n->saved[1], *y = n->saved[2];
    if (n->needs_grad[0]) {
        /* g * b * a^(b-1) */
        ml_tensor *bm1 = ml_add_scalar(b, -1.0);
        ml_tensor *p = bm1 ? ml_pow(a, bm1) : NULL;
        ml_tensor *bp = p ? ml_mul(b, p) : NULL;
        gin[0] = reduce_to_input(n, 0, bp ? ml_mul(g, bp) : NULL);
        ml_tensor_release(bm1);
        ml_tensor_release(p);
        ml_tensor_release(bp);
    }
    if (n->needs_grad[1]) {
        /* g * y * log(a), with 0 where a == 0 and b >= 0 as torch masks it */
        ml_tensor *la = ml_unary(ML_UN_LOG, a);
        ml_tensor *yl = la ? ml_mul(y, la) : NULL;
        ml_tensor *zero = ml_scalar(0, a->dtype, a->storage->device);
        ml_tensor *az = zero ? ml_binary(ML_BIN_EQ, a, zero) : NULL;
        ml_tensor *safe = az && yl ? ml_where(az, zero, yl) : NULL;
        gin[1] = reduce_to_input(n, 1, safe ? ml_mul(g, safe) : NULL);
        ml_tensor_release(la);
        ml_tensor_release(yl);
        ml_tensor_release(zero);
        ml_tensor_release(az);
        ml_tensor_release(safe);
    }
    return 0;
}

/* maximum/minimum: the winner takes the gradient; a tie splits it in half. */
static int extreme_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *a = n->saved[0], *b = n->saved[1];
    bool is_max = n->ints[0];
    ml_binary_op win = is_max ? ML_BIN_GT : ML_BIN_LT;
    for (int i = 0; i < 2; i++) {
        if (!n->needs_grad[i]) continue;
        ml_tensor *self = i == 0 ? a : b, *other = i == 0 ? b : a;
        ml_tensor *w = ml_binary(win, self, other), *tie = ml_binary(ML_BIN_EQ, self, other);
        ml_tensor *wf = w ? ml_cast(w, g->dtype) : NULL, *tf = tie ? ml_cast(tie, g->dtype) : NULL;
        ml_tensor *half = tf ? ml_mul_scalar(tf, 0.5) : NULL;
        ml_tensor *m = wf && half ? ml_add(wf, half) : NULL;
        gin[i] = reduce_to_input(n, i, m ? ml_mul(g, m) : NULL);
        ml_tensor_release(w);
        ml_tensor_release(tie);
        ml_tensor_release(wf);
        ml_tensor_release(tf);
        ml_tensor_release(half);
        ml_tensor_release(m);
    }
    return 0;
}

ml_tensor *ml_binary(ml_binary_op op, ml_tensor *a, ml_tensor *b) {
    ml_dtype dt = ml_result_type(a, b);
    /* true division and pow of integers give floats, as torch's "/" does */
    if ((op == ML_BIN_DIV || op == ML_BIN_POW) && !ml_dtype_is_float(dt)) dt = ML_F32;
    if (op >= ML_BIN_RELU_BACKWARD && !ml_dtype_is_float(dt))
        return ml_error_set("%s: needs floating point tensors", binary_names[op]), NULL;
    ml_tensor *out = binary_raw(op, a, b, dt);
    if (!out || is_compare(op) || op >= ML_BIN_RELU_BACKWARD) return out;
    ml_tensor *in[2] = {a, b};
    ml_node *n = NULL;
    switch (op) {
    case ML_BIN_ADD:
    case ML_BIN_SUB:
        n = ml_node_attach(out, op == ML_BIN_ADD ? "AddBackward" : "SubBackward", add_backward,
                           2, in);
        if (n) n->scalars[0] = op == ML_BIN_ADD ? 1.0 : -1.0;
        return out;
    case ML_BIN_MUL: n = ml_node_attach(out, "MulBackward", mul_backward, 2, in); break;
    case ML_BIN_DIV: n = ml_node_attach(out, "DivBackward", div_backward, 2, in); break;
    case ML_BIN_POW:
        n = ml_node_attach(out, "PowBackward", pow_backward, 2, in);
        if (n) {
            ml_node_save(n, a);
            ml_node_save(n, b);
            ml_node_save(n, out);
        }
        return out;
    case ML_BIN_MAXIMUM:
    case ML_BIN_MINIMUM:
        n = ml_node_attach(out, op == ML_BIN_MAXIMUM ? "MaximumBackward" : "MinimumBackward",
                           extreme_backward, 2, in);
        if (n) n->ints[0] = op == ML_BIN_MAXIMUM;
        break;
    default: break;
    }
    if (n) {
        ml_node_save(n, a);
        ml_node_save(n, b);
    }
    return out;
}

ml_tensor *ml_add(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_ADD, a, b); }
ml_tensor *ml_sub(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_SUB, a, b); }
ml_tensor *ml_mul(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_MUL, a, b); }
ml_tensor *ml_div(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_DIV, a, b); }
ml_tensor *ml_pow(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_POW, a, b); }

/* --- unary --- */

static int unary_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_unary_op op = (ml_unary_op)n->ints[0];
    ml_tensor *s = n->saved[0]; /* input x, or output y where the rule wants it */
    ml_tensor *r = NULL, *t = NULL;
    switch (op) {
    case ML_UN_NEG: r = ml_neg(g); break;
    case ML_UN_EXP: r = ml_mul(g, s); break;                         /* y */
    case ML_UN_LOG: r = ml_div(g, s); break;                         /* x */
    case ML_UN_LOG1P: t = ml_add_scalar(s, 1.0); r = t ? ml_div(g, t) : NULL; break;
    case ML_UN_ABS: t = ml_unary(ML_UN_SIGN, s); r = t ? ml_mul(g, t) : NULL; break;
    case ML_UN_SQRT: t = ml_mul_scalar(s, 2.0); r = t ? ml_div(g, t) : NULL; break; /* y */
    case ML_UN_SQUARE: t = ml_mul_scalar(s, 2.0); r = t ? ml_mul(g, t) : NULL; break;
    case ML_UN_SIGN: r = ml_zeros_like(g); break;
    case ML_UN_RELU: r = ml_binary(ML_BIN_RELU_BACKWARD, g, s); break;
    case ML_UN_SIGMOID: r = ml_binary(ML_BIN_SIGMOID_BACKWARD, g, s); break;
    case ML_UN_TANH: r = ml_binary(ML_BIN_TANH_BACKWARD, g, s); break;
    case ML_UN_RECIPROCAL: /* -g * y^2 */
        t = ml_mul(s, s);
        if (t) {
            ml_tensor *u = ml_mul(g, t);
            r = u ? ml_neg(u) : NULL;
            ml_tensor_release(u);
        }
        break;
    default: break;
    }
    ml_tensor_release(t);
    gin[0] = r;
    return r ? 0 : -1;
}

static bool saves_output(ml_unary_op op) {
    return op == ML_UN_EXP || op == ML_UN_SQRT || op == ML_UN_SIGMOID || op == ML_UN_TANH ||
           op == ML_UN_RECIPROCAL;
}

ml_tensor *ml_unary(ml_unary_op op, ml_tensor *x) {
    bool float_only = !(op == ML_UN_NEG || op == ML_UN_ABS || op == ML_UN_SQUARE ||
                        op == ML_UN_SIGN || op == ML_UN_RELU);
    ml_tensor *src = float_only && !ml_dtype_is_float(x->dtype) ? ml_cast(x, ML_F32)
                                                                 : ml_tensor_retain(x);
    if (!src) return NULL;
    ml_tensor *out = ml_tensor_empty(src->dtype, src->storage->device, src->ndim, src->shape);
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(src, unary_names[op]) : NULL;
    if (out && (!ew || ew->unary(op, src, out))) {
        ml_tensor_release(out);
        out = NULL;
    }
    if (out) {
        static const char *const node_names[ML_UN_COUNT] = {
            "NegBackward", "ExpBackward", "LogBackward", "Log1pBackward", "AbsBackward",
            "SqrtBackward", "SquareBackward", "SignBackward", "ReluBackward",
            "SigmoidBackward", "TanhBackward", "ReciprocalBackward"};
        ml_node *n = ml_node_attach(out, node_names[op], unary_backward, 1, &src);
        if (n) {
            n->ints[0] = op;
            ml_node_save(n, saves_output(op) ? out : src);
        }
    }
    ml_tensor_release(src);
    (void)unary_names;
    return out;
}

ml_tensor *ml_neg(ml_tensor *x) { return ml_unary(ML_UN_NEG, x); }

/* --- clamp and pow with a number --- */

static int clamp_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *x = n->saved[0];
    ml_tensor *out = ml_tensor_empty_like(g);
    if (!out) return -1;
    ml_tensor *ex = ml_expand_raw(x, g->ndim, g->shape);
    const ml_elementwise_ops *ew = ex ? ml_need_elementwise(g, "clamp") : NULL;
    int rc = ew ? ew->clamp_backward(g, ex, n->scalars[0], n->scalars[1], out) : -1;
    ml_tensor_release(ex);
    if (rc) {
        ml_tensor_release(out);
        return -1;
    }
    gin[0] = out;
    return 0;
}

ml_tensor *ml_clamp(ml_tensor *x, double lo, double hi) {
    if (!isnan(lo) && !isnan(hi) && lo > hi)
        return ml_error_set("clamp: min %g is greater than max %g", lo, hi), NULL;
    ml_tensor *out = ml_tensor_empty_like(x);
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(x, "clamp") : NULL;
    if (out && (!ew || ew->clamp(x, lo, hi, out))) {
        ml_tensor_release(out);
        return NULL;
    }
    ml_node *n = out ? ml_node_attach(out, "ClampBackward", clamp_backward, 1, &x) : NULL;
    if (n) {
        n->scalars[0] = lo;
        n->scalars[1] = hi;
        ml_node_save(n, x);
    }
    return out;
}

static int pow_scalar_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *out = ml_tensor_empty_like(g);
    if (!out) return -1;
    const ml_elementwise_ops *ew = ml_need_elementwise(g, "pow");
    if (!ew || ew->pow_scalar_backward(g, n->saved[0], n->scalars[0], out)) {
        ml_tensor_release(out);
        return -1;
    }
    gin[0] = out;
    return 0;
}

ml_tensor *ml_pow_scalar(ml_tensor *x, double p) {
    /* an integer tensor to a fractional or negative power is a float, as in torch */
    bool need_float = !ml_dtype_is_float(x->dtype) && (p != floor(p) || p < 0);
    ml_tensor *src = need_float ? ml_cast(x, ML_F32) : ml_tensor_retain(x);
    if (!src) return NULL;
    ml_tensor *out = ml_tensor_empty_like(src);
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(src, "pow") : NULL;
    if (out && (!ew || ew->pow_scalar(src, p, out))) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_node *n = out ? ml_node_attach(out, "PowBackward", pow_scalar_backward, 1, &src) : NULL;
    if (n) {
        n->scalars[0] = p;
        ml_node_save(n, src);
    }
    ml_tensor_release(src);
    return out;
}

static ml_tensor *with_scalar(ml_binary_op op, ml_tensor *x, double s) {
    ml_tensor *c = ml_scalar(s, x->dtype, x->storage->device);
    if (!c) return NULL;
    ml_tensor *out = ml_binary(op, x, c);
    ml_tensor_release(c);
    return out;
}

ml_tensor *ml_mul_scalar(ml_tensor *x, double s) { return with_scalar(ML_BIN_MUL, x, s); }
ml_tensor *ml_add_scalar(ml_tensor *x, double s) { return with_scalar(ML_BIN_ADD, x, s); }

/* --- where --- */

static int where_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *cond = n->saved[0];
    ml_tensor *zero = ml_scalar(0, g->dtype, g->storage->device);
    if (!zero) return -1;
    if (n->needs_grad[1]) gin[1] = reduce_to_input(n, 1, ml_where(cond, g, zero));
    if (n->needs_grad[2]) gin[2] = reduce_to_input(n, 2, ml_where(cond, zero, g));
    ml_tensor_release(zero);
    return 0;
}

ml_tensor *ml_where(ml_tensor *cond, ml_tensor *a, ml_tensor *b) {
    if (ml_check_same_device("where", cond, a) || ml_check_same_device("where", a, b)) return NULL;
    if (cond->dtype != ML_U8)
        return ml_error_set("where: condition must be a mask (uint8, as comparisons give), got %s",
                            ml_dtype_name(cond->dtype)), NULL;
    int nd1, nd;
    int64_t s1[ML_MAX_DIMS], shape[ML_MAX_DIMS];
    if (ml_broadcast_shapes("where", a->ndim, a->shape, b->ndim, b->shape, &nd1, s1) ||
        ml_broadcast_shapes("where", cond->ndim, cond->shape, nd1, s1, &nd, shape))
        return NULL;
    ml_dtype dt = ml_result_type(a, b);
    ml_tensor *ec = ml_expand_raw(cond, nd, shape);
    ml_tensor *ea = operand(a, dt, nd, shape), *eb = operand(b, dt, nd, shape);
    ml_tensor *out = ec && ea && eb ? ml_tensor_empty(dt, a->storage->device, nd, shape) : NULL;
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(a, "where") : NULL;
    if (out && (!ew || ew->where(ec, ea, eb, out))) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor_release(ec);
    ml_tensor_release(ea);
    ml_tensor_release(eb);
    ml_tensor *in[3] = {cond, a, b};
    ml_node *n = out ? ml_node_attach(out, "WhereBackward", where_backward, 3, in) : NULL;
    if (n) ml_node_save(n, cond);
    return out;
}

/* --- copies, casts, devices --- */

int ml_copy_(ml_tensor *dst, const ml_tensor *src) {
    if (ml_check_same_device("copy_", dst, src)) return -1;
    int nd;
    int64_t shape[ML_MAX_DIMS];
    if (ml_broadcast_shapes("copy_", dst->ndim, dst->shape, src->ndim, src->shape, &nd, shape))
        return -1;
    if (!ml_shape_numel(nd, shape) || nd != dst->ndim ||
        memcmp(shape, dst->shape, sizeof(int64_t) * (size_t)nd) != 0) {
        char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
        if (ml_shape_numel(nd, shape) == 0 && ml_numel(dst) == 0) return 0;
        return ml_error_set("copy_: source of shape %s does not broadcast to %s",
                            ml_shape_str(src->ndim, src->shape, a, sizeof a),
                            ml_shape_str(dst->ndim, dst->shape, b, sizeof b));
    }
    ml_tensor *es = ml_expand_raw(src, dst->ndim, dst->shape);
    if (!es) return -1;
    const ml_elementwise_ops *ew = ml_need_elementwise(dst, "copy_");
    int rc = ew ? ew->copy(es, dst) : -1;
    ml_tensor_release(es);
    return rc;
}

int ml_fill_(ml_tensor *dst, double v) {
    const ml_elementwise_ops *ew = ml_need_elementwise(dst, "fill_");
    return ew ? ew->fill(dst, v) : -1;
}

int ml_add_inplace(ml_tensor *dst, ml_tensor *src) {
    if (ml_check_same_device("add_", dst, src)) return -1;
    ml_tensor *es = operand(src, dst->dtype, dst->ndim, dst->shape);
    if (!es) return -1;
    int rc;
    if (ml_is_contiguous(dst)) {
        const ml_elementwise_ops *ew = ml_need_elementwise(dst, "add_");
        rc = ew ? ew->axpy(dst, 1.0, es, dst) : -1;
    } else {
        ml_tensor *sum = binary_raw(ML_BIN_ADD, dst, es, dst->dtype);
        rc = sum ? ml_copy_(dst, sum) : -1;
        ml_tensor_release(sum);
    }
    ml_tensor_release(es);
    return rc;
}

ml_tensor *ml_contiguous_copy(const ml_tensor *t) {
    ml_tensor *out = ml_tensor_empty_like(t);
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(t, "contiguous") : NULL;
    if (out && (!ew || ew->copy(t, out))) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

ml_tensor *ml_as_contiguous(const ml_tensor *t) {
    return ml_is_contiguous(t) ? ml_tensor_retain((ml_tensor *)t) : ml_contiguous_copy(t);
}

static int identity_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    (void)n;
    gin[0] = ml_tensor_retain(g);
    return 0;
}

ml_tensor *ml_contiguous(ml_tensor *t) {
    if (ml_is_contiguous(t)) return ml_tensor_retain(t);
    ml_tensor *out = ml_contiguous_copy(t);
    if (out) ml_node_attach(out, "CloneBackward", identity_backward, 1, &t);
    return out;
}

static int cast_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    gin[0] = ml_cast(g, n->in_dtype[0]);
    return gin[0] ? 0 : -1;
}

ml_tensor *ml_cast(ml_tensor *t, ml_dtype dt) {
    if (t->dtype == dt) return ml_tensor_retain(t);
    ml_tensor *out = ml_tensor_empty(dt, t->storage->device, t->ndim, t->shape);
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(t, "to") : NULL;
    if (out && (!ew || ew->copy(t, out))) {
        ml_tensor_release(out);
        return NULL;
    }
    /* only float -> float casts carry gradients, as in torch */
    if (out && ml_dtype_is_float(dt) && ml_dtype_is_float(t->dtype))
        ml_node_attach(out, "ToCopyBackward", cast_backward, 1, &t);
    return out;
}

static int device_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    gin[0] = ml_to_device(g, (ml_device)n->ints[0]);
    return gin[0] ? 0 : -1;
}

ml_tensor *ml_to_device(ml_tensor *t, ml_device dev) {
    ml_device from = t->storage->device;
    if (from == dev) return ml_tensor_retain(t);
    ml_tensor *src = ml_contiguous(t);
    if (!src) return NULL;
    ml_tensor *out = ml_tensor_empty(t->dtype, dev, t->ndim, t->shape);
    if (out) {
        size_t nbytes = (size_t)ml_numel(t) * ml_dtype_size(t->dtype);
        int rc = dev == ML_CPU ? ml_backend_get(from)->memory->to_host(ml_data(out), ml_data(src), nbytes)
                               : ml_backend_get(dev)->memory->from_host(ml_data(out), ml_data(src), nbytes);
        if (rc) {
            ml_tensor_release(out);
            out = NULL;
        }
    }
    ml_node *n = out ? ml_node_attach(out, "ToDeviceBackward", device_backward, 1, &src) : NULL;
    if (n) n->ints[0] = from;
    ml_tensor_release(src);
    return out;
}

ml_tensor *ml_detach(ml_tensor *t) { return ml_tensor_alias(t); }
