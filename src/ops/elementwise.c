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

/* The operands as the kernel wants them: common dtype, out's shape (stride 0). */
static ml_tensor *operand(ml_tensor *t, ml_dtype dt, int ndim, const int64_t *shape) {
    ml_tensor *cast = t->dtype == dt ? ml_tensor_retain(t) : ml_cast(t, dt);
    if (!cast) return NULL;
    ml_tensor *e = ml_expand_raw(cast, ndim, shape);
    ml_tensor_release(cast);
    return e;
}

/* op(a, b) computed in dtype dt, without autograd. */
static ml_tensor *binary_raw(ml_binary_op op, ml_tensor *a, ml_tensor *b, ml_dtype dt) {
    const char *name = ml_binary_name(op);
    if (ml_check_same_device(name, a, b)) return NULL;
    int ndim;
    int64_t shape[ML_MAX_DIMS];
    if (ml_broadcast_shapes(name, a->ndim, a->shape, b->ndim, b->shape, &ndim, shape))
        return NULL;
    ml_tensor *ea = operand(a, dt, ndim, shape);
    ml_tensor *eb = ea ? operand(b, dt, ndim, shape) : NULL;
    ml_tensor *out = eb ? ml_tensor_empty(ml_binary_is_mask(op) ? ML_U8 : dt, a->storage->device,
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

/* g (consumed; NULL passes through) summed back to input i's shape and cast to its
 * float dtype: the gradient of a broadcast operand. */
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

/* The binary ops' rules, named by ML_BINARY_OPS: each gives the gradient of each
 * input that needs one, summed back to its shape (broadcasting) and dtype; saved[]
 * holds what the list's `saves` column names (a, b, then the output). */

static int add_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    if (n->needs_grad[0]) gin[0] = reduce_to_input(n, 0, ml_tensor_retain(g));
    if (n->needs_grad[1]) gin[1] = reduce_to_input(n, 1, ml_tensor_retain(g));
    return 0;
}

static int sub_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    if (n->needs_grad[0]) gin[0] = reduce_to_input(n, 0, ml_tensor_retain(g));
    if (n->needs_grad[1]) gin[1] = reduce_to_input(n, 1, ml_neg(g));
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
static int extreme_backward(ml_node *n, ml_tensor *g, ml_tensor **gin, bool is_max) {
    ml_tensor *a = n->saved[0], *b = n->saved[1];
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

static int maximum_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    return extreme_backward(n, g, gin, true);
}

static int minimum_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    return extreme_backward(n, g, gin, false);
}

/* The list's backward column: the rule, or NULL for a result that is not
 * differentiable; and how many tensors the rule reads (none: 0, ab: 2, aby: 3). */
#define SAVED_none 0
#define SAVED_ab 2
#define SAVED_aby 3
#define BINARY_RULE_(NAME, name, Node, domain, result, forward, backward, saves) \
    case ML_BIN_##NAME: *n_saved = SAVED_##saves; return backward;
static ml_backward_fn binary_rule(ml_binary_op op, int *n_saved) {
    switch (op) {
    ML_BINARY_OPS(BINARY_RULE_)
    default: *n_saved = 0; return NULL;
    }
}
#undef BINARY_RULE_

/* floor_divide of integers: a zero divisor is an error, as torch's ZeroDivisionError
 * (the kernel gives 0 there rather than trap). b has the computing dtype. */
static int check_int_divisor(ml_tensor *b) {
    ml_tensor *zero = ml_scalar(0, b->dtype, b->storage->device);
    ml_tensor *is0 = zero ? ml_binary(ML_BIN_EQ, b, zero) : NULL;
    ml_tensor *any = is0 ? ml_max(is0, ML_ALL_DIMS, false, NULL) : NULL;
    ml_tensor *host = any ? ml_to_device(any, ML_CPU) : NULL;
    int rc = host ? 0 : -1;
    if (host && *(const uint8_t *)ml_data(host))
        rc = ml_error_set("floor_divide: integer division by zero");
    ml_tensor_release(zero);
    ml_tensor_release(is0);
    ml_tensor_release(any);
    ml_tensor_release(host);
    return rc;
}

ml_tensor *ml_binary(ml_binary_op op, ml_tensor *a, ml_tensor *b) {
    if ((unsigned)op >= ML_BIN_COUNT) return ml_error_set("binary: unknown op %d", (int)op), NULL;
    ml_dtype dt = ml_result_type(a, b);
    /* an op of the float domain computes integers in float32 (torch's true division) */
    if (ml_binary_float_only(op) && !ml_dtype_is_float(dt)) dt = ML_F32;
    if (op == ML_BIN_FLOOR_DIVIDE && !ml_dtype_is_float(dt) && ml_numel(b) > 0) {
        ml_tensor *bc = ml_cast(b, dt);
        int rc = bc ? check_int_divisor(bc) : -1;
        ml_tensor_release(bc);
        if (rc) return NULL;
    }
    ml_tensor *out = binary_raw(op, a, b, dt);
    int n_saved;
    ml_backward_fn rule = binary_rule(op, &n_saved);
    if (!out || !rule) return out;
    ml_tensor *in[2] = {a, b};
    ml_node *n = ml_node_attach(out, ml_binary_node_name(op), rule, 2, in);
    if (n && n_saved >= 2) {
        ml_node_save(n, a);
        ml_node_save(n, b);
    }
    if (n && n_saved >= 3) ml_node_save(n, out);
    return out;
}

ml_tensor *ml_add(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_ADD, a, b); }
ml_tensor *ml_sub(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_SUB, a, b); }
ml_tensor *ml_mul(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_MUL, a, b); }
ml_tensor *ml_div(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_DIV, a, b); }
ml_tensor *ml_pow(ml_tensor *a, ml_tensor *b) { return ml_binary(ML_BIN_POW, a, b); }

/* --- unary: every rule is one fused kernel of the backend (unary_backward) --- */

/* ints[0]: the op; scalars[0..]: its parameters (ml_unary_params) */
static int unary_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_unary_op op = (ml_unary_op)n->ints[0];
    const ml_tensor *x = ml_unary_saves_x(op) ? n->saved[0] : NULL;
    const ml_tensor *y = ml_unary_saves_y(op) ? n->saved[x ? 1 : 0] : NULL;
    ml_tensor *out = ml_tensor_empty_like(g);
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(g, ml_unary_name(op)) : NULL;
    if (!ew || ew->unary_backward(op, n->scalars, g, x, y, out)) {
        ml_tensor_release(out);
        return -1;
    }
    gin[0] = out;
    return 0;
}

ml_tensor *ml_unary_with(ml_unary_op op, ml_tensor *x, const double *params) {
    if ((unsigned)op >= ML_UN_COUNT) return ml_error_set("unary: unknown op %d", (int)op), NULL;
    double p[ML_UN_MAX_PARAMS];
    ml_unary_params(op, params, p);
    bool to_float = ml_unary_float_only(op) && !ml_dtype_is_float(x->dtype);
    ml_tensor *src = to_float ? ml_cast(x, ML_F32) : ml_tensor_retain(x);
    if (!src) return NULL;
    const bool mask = ml_unary_is_mask(op);
    ml_tensor *out = ml_tensor_empty(mask ? ML_U8 : src->dtype, src->storage->device, src->ndim,
                                     src->shape);
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(src, ml_unary_name(op)) : NULL;
    if (out && (!ew || ew->unary(op, p, src, out))) {
        ml_tensor_release(out);
        out = NULL;
    }
    /* a mask (isnan) is not differentiable, as torch's bool results */
    ml_node *n = out && !mask ? ml_node_attach(out, ml_unary_node_name(op), unary_backward, 1, &src)
                              : NULL;
    if (n) {
        n->ints[0] = op;
        _Static_assert(ML_UN_MAX_PARAMS <= sizeof n->scalars / sizeof n->scalars[0],
                       "a node holds a unary op's parameters");
        for (int i = 0; i < ML_UN_MAX_PARAMS; i++) n->scalars[i] = p[i];
        if (ml_unary_saves_x(op)) ml_node_save(n, src);
        if (ml_unary_saves_y(op)) ml_node_save(n, out);
    }
    ml_tensor_release(src);
    return out;
}

ml_tensor *ml_unary(ml_unary_op op, ml_tensor *x) { return ml_unary_with(op, x, NULL); }

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

/* --- masked_fill --- */

/* x's gradient where the mask is 0, value's the sum of the rest. saved: the mask
 * (expanded to x's shape). */
static int masked_fill_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *mask = n->saved[0];
    ml_tensor *zero = ml_scalar(0, g->dtype, g->storage->device);
    if (!zero) return -1;
    if (n->needs_grad[0]) gin[0] = ml_where(mask, zero, g);
    if (n->needs_grad[1]) {
        ml_tensor *kept = ml_where(mask, g, zero);
        gin[1] = reduce_to_input(n, 1, kept ? ml_sum(kept, ML_ALL_DIMS, false) : NULL);
        ml_tensor_release(kept);
    }
    ml_tensor_release(zero);
    return (n->needs_grad[0] && !gin[0]) || (n->needs_grad[1] && !gin[1]) ? -1 : 0;
}

ml_tensor *ml_masked_fill(ml_tensor *x, ml_tensor *mask, ml_tensor *value) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    if (ml_check_same_device("masked_fill", x, mask) || ml_check_same_device("masked_fill", x, value))
        return NULL;
    if (mask->dtype != ML_U8)
        return ml_error_set("masked_fill: mask must be a uint8 mask (as comparisons give), got %s",
                            ml_dtype_name(mask->dtype)), NULL;
    if (value->ndim != 0)
        return ml_error_set("masked_fill: value must be a number or a 0-dim tensor, got a tensor "
                            "of shape %s", ml_shape_str(value->ndim, value->shape, a, sizeof a)), NULL;
    /* the mask broadcasts to x's shape, never x to a larger one (torch) */
    int nd;
    int64_t shape[ML_MAX_DIMS];
    if (ml_broadcast_shapes("masked_fill", mask->ndim, mask->shape, x->ndim, x->shape, &nd, shape) ||
        nd != x->ndim || memcmp(shape, x->shape, sizeof(int64_t) * (size_t)nd) != 0) {
        ml_error_clear();
        return ml_error_set("masked_fill: mask of shape %s does not broadcast to the input's "
                            "shape %s", ml_shape_str(mask->ndim, mask->shape, a, sizeof a),
                            ml_shape_str(x->ndim, x->shape, b, sizeof b)), NULL;
    }
    ml_tensor *em = ml_expand_raw(mask, x->ndim, x->shape);
    /* the value in x's dtype (torch casts it), broadcast over x */
    ml_tensor *v = em ? operand(value, x->dtype, x->ndim, x->shape) : NULL;
    ml_tensor *out = v ? ml_tensor_empty(x->dtype, x->storage->device, x->ndim, x->shape) : NULL;
    const ml_elementwise_ops *ew = out ? ml_need_elementwise(x, "masked_fill") : NULL;
    if (out && (!ew || ew->where(em, v, x, out))) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor_release(v);
    ml_tensor *in[2] = {x, value};
    ml_node *n = out ? ml_node_attach(out, "MaskedFillBackward", masked_fill_backward, 2, in) : NULL;
    if (n) ml_node_save(n, em);
    ml_tensor_release(em);
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
