/* Matrix products through the backend's gemm, with the layouts it can take
 * directly (row-major, or a transposed view of one) passed without a copy. */
#include "matmul.h"

#include <string.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "elementwise.h"
#include "reduce.h"
#include "shape.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

/* How gemm reads the last two dims of t: as is (trans false) or transposed. */
typedef struct {
    const ml_tensor *t; /* the tensor to pass (t itself or a contiguous copy) */
    ml_tensor *owned;   /* a copy to release, or NULL */
    bool trans;
    int64_t ld, batch_stride;
} gemm_operand;

/* batch dims of t (all but the last two) collapse to one stride? */
static bool uniform_batch(const ml_tensor *t, int64_t *stride) {
    int nb = t->ndim - 2;
    int64_t count = ml_shape_numel(nb, t->shape);
    if (count <= 1) {
        *stride = 0;
        return true;
    }
    int64_t s = -1;
    for (int i = nb - 1; i >= 0; i--) {
        if (t->shape[i] == 1) continue;
        if (s == -1) {
            s = t->strides[i];
            continue;
        }
        /* the next outer dim must step over the inner ones, or be broadcast with them */
        int64_t inner_count = 1;
        for (int j = i + 1; j < nb; j++) inner_count *= t->shape[j];
        if (t->strides[i] != s * inner_count && !(t->strides[i] == 0 && s == 0)) return false;
    }
    *stride = s < 0 ? 0 : s;
    return true;
}

static int prepare(const ml_tensor *t, gemm_operand *op) {
    int r = t->ndim - 2, c = t->ndim - 1;
    int64_t bs;
    op->owned = NULL;
    op->t = t;
    if (uniform_batch(t, &bs)) {
        if (t->strides[c] == 1 && t->strides[r] >= (t->shape[c] > 1 ? t->shape[c] : 1)) {
            op->trans = false;
            op->ld = t->strides[r] > 0 ? t->strides[r] : 1;
            op->batch_stride = bs;
            return 0;
        }
        if (t->strides[r] == 1 && t->strides[c] >= (t->shape[r] > 1 ? t->shape[r] : 1)) {
            op->trans = true;
            op->ld = t->strides[c] > 0 ? t->strides[c] : 1;
            op->batch_stride = bs;
            return 0;
        }
    }
    op->owned = ml_contiguous_copy(t);
    if (!op->owned) return -1;
    op->t = op->owned;
    op->trans = false;
    op->ld = t->shape[c] > 1 ? t->shape[c] : 1;
    op->batch_stride = t->shape[r] * t->shape[c];
    if (ml_shape_numel(t->ndim - 2, t->shape) <= 1) op->batch_stride = 0;
    return 0;
}

/* c = a @ b for a [B.., m, k], b [B.., k, n] already broadcast to common batch dims. */
static int gemm_into(const ml_tensor *a, const ml_tensor *b, const ml_tensor *bias, ml_tensor *c) {
    gemm_operand pa, pb;
    if (prepare(a, &pa)) return -1;
    if (prepare(b, &pb)) {
        ml_tensor_release(pa.owned);
        return -1;
    }
    ml_gemm_args g = {
        .trans_a = pa.trans, .trans_b = pb.trans,
        .m = a->shape[a->ndim - 2], .n = b->shape[b->ndim - 1], .k = a->shape[a->ndim - 1],
        .alpha = 1.0, .beta = 0.0,
        .a = pa.t, .b = pb.t, .c = c,
        .lda = pa.ld, .ldb = pb.ld, .ldc = c->shape[c->ndim - 1] > 1 ? c->shape[c->ndim - 1] : 1,
        .batch = ml_shape_numel(c->ndim - 2, c->shape),
        .stride_a = pa.batch_stride, .stride_b = pb.batch_stride,
        .stride_c = c->shape[c->ndim - 2] * c->shape[c->ndim - 1],
        .bias = bias,
    };
    int rc = 0;
    if (ml_numel(c) > 0) {
        if (g.k == 0) rc = ml_fill_(c, 0.0);
        else {
            const ml_matmul_ops *mo = ml_need_matmul(c, "matmul");
            rc = mo ? mo->gemm(&g) : -1;
        }
    }
    ml_tensor_release(pa.owned);
    ml_tensor_release(pb.owned);
    return rc;
}

static int mm_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *a = n->saved[0], *b = n->saved[1];
    if (n->needs_grad[0]) {
        ml_tensor *bt = ml_transpose(b, -1, -2);
        ml_tensor *ga = bt ? ml_matmul(g, bt) : NULL;
        gin[0] = ga ? ml_sum_to_shape(ga, n->in_ndim[0], n->in_shape[0]) : NULL;
        ml_tensor_release(bt);
        ml_tensor_release(ga);
        if (!gin[0]) return -1;
    }
    if (n->needs_grad[1]) {
        ml_tensor *at = ml_transpose(a, -1, -2);
        ml_tensor *gb = at ? ml_matmul(at, g) : NULL;
        gin[1] = gb ? ml_sum_to_shape(gb, n->in_ndim[1], n->in_shape[1]) : NULL;
        ml_tensor_release(at);
        ml_tensor_release(gb);
        if (!gin[1]) return -1;
    }
    return 0;
}

/* a [.., m, k] @ b [.., k, n], both at least 2-D. */
static ml_tensor *matmul_nd(ml_tensor *a, ml_tensor *b) {
    char sa[ML_SHAPE_STR_MAX], sb[ML_SHAPE_STR_MAX];
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
    int64_t k2 = b->shape[b->ndim - 2], n = b->shape[b->ndim - 1];
    if (k != k2)
        return ml_error_set("matmul: shapes %s and %s cannot be multiplied (inner dims %lld and "
                            "%lld differ)", SHAPE(a, sa), SHAPE(b, sb), (long long)k,
                            (long long)k2), NULL;
    int nbd;
    int64_t shape[ML_MAX_DIMS];
    if (ml_broadcast_shapes("matmul", a->ndim - 2, a->shape, b->ndim - 2, b->shape, &nbd, shape))
        return NULL;
    if (nbd + 2 > ML_MAX_DIMS) return ml_error_set("matmul: too many batch dims"), NULL;
    int64_t ashape[ML_MAX_DIMS], bshape[ML_MAX_DIMS];
    memcpy(ashape, shape, sizeof(int64_t) * (size_t)nbd);
    memcpy(bshape, shape, sizeof(int64_t) * (size_t)nbd);
    ashape[nbd] = m; ashape[nbd + 1] = k;
    bshape[nbd] = k; bshape[nbd + 1] = n;
    shape[nbd] = m; shape[nbd + 1] = n;
    ml_dtype dt = ml_result_type(a, b);
    if (!ml_dtype_is_float(dt))
        return ml_error_set("matmul: needs float32 or float64 tensors, got %s and %s",
                            ml_dtype_name(a->dtype), ml_dtype_name(b->dtype)), NULL;
    if (ml_check_same_device("matmul", a, b)) return NULL;
    ml_tensor *ca = ml_cast(a, dt), *cb = ml_cast(b, dt);
    ml_tensor *ea = ca ? ml_expand_raw(ca, nbd + 2, ashape) : NULL;
    ml_tensor *eb = cb ? ml_expand_raw(cb, nbd + 2, bshape) : NULL;
    ml_tensor *out = ea && eb ? ml_tensor_empty(dt, a->storage->device, nbd + 2, shape) : NULL;
    if (out && gemm_into(ea, eb, NULL, out)) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor *in[2] = {a, b};
    ml_node *node = out ? ml_node_attach(out, "MmBackward", mm_backward, 2, in) : NULL;
    if (node) {
        ml_node_save(node, ca);
        ml_node_save(node, cb);
    }
    ml_tensor_release(ca);
    ml_tensor_release(cb);
    ml_tensor_release(ea);
    ml_tensor_release(eb);
    return out;
}

ml_tensor *ml_matmul(ml_tensor *a, ml_tensor *b) {
    char sa[ML_SHAPE_STR_MAX], sb[ML_SHAPE_STR_MAX];
    if (a->ndim == 0 || b->ndim == 0)
        return ml_error_set("matmul: both arguments need at least 1 dim, got %s and %s",
                            SHAPE(a, sa), SHAPE(b, sb)), NULL;
    /* 1-D operands become matrices and the added dim is dropped again, as torch */
    ml_tensor *a2 = a->ndim == 1 ? ml_unsqueeze(a, 0) : ml_tensor_retain(a);
    ml_tensor *b2 = b->ndim == 1 ? ml_unsqueeze(b, 1) : ml_tensor_retain(b);
    ml_tensor *out = a2 && b2 ? matmul_nd(a2, b2) : NULL;
    if (out && a->ndim == 1 && b->ndim == 1 && ml_numel(a) != ml_numel(b)) {
        /* unreachable: matmul_nd caught it; kept for clarity of the 1-D case */
    }
    ml_tensor_release(a2);
    ml_tensor_release(b2);
    if (!out) {
        if (a->ndim == 1 || b->ndim == 1) {
            /* restate the error with the shapes the user passed */
            const char *msg = ml_error();
            if (strstr(msg, "cannot be multiplied"))
                ml_error_set("matmul: shapes %s and %s cannot be multiplied (inner dims %lld and %lld differ)",
                             SHAPE(a, sa), SHAPE(b, sb), (long long)a->shape[a->ndim - 1],
                             (long long)b->shape[b->ndim == 1 ? 0 : b->ndim - 2]);
        }
        return NULL;
    }
    ml_tensor *r = out;
    if (a->ndim == 1) {
        r = ml_squeeze(out, -2);
        ml_tensor_release(out);
        out = r;
    }
    if (r && b->ndim == 1) {
        r = ml_squeeze(out, -1);
        ml_tensor_release(out);
    }
    return r;
}

/* --- linear: x @ w^T + b as one gemm --- */

/* A view of t that lives in the caller's frame: the layout gemm_into should read,
 * without allocating a tensor struct per operand. It shares t's storage without a
 * reference, so it must never outlive the call it is made for, nor be retained,
 * saved (ml_node_save makes a real alias of it) or returned. */
static void frame_view(ml_tensor *v, const ml_tensor *t, int64_t r, int64_t c, int64_t sr,
                       int64_t sc, int64_t offset) {
    /* written in place, field by field: a struct built on the stack and returned
     * by value was copied with wide loads over its narrow stores, store-forwarding
     * stalls that were most of ml_linear's own time in perf */
    v->refcount = 1;
    v->dtype = t->dtype;
    v->ndim = 2;
    v->shape[0] = r;
    v->shape[1] = c;
    v->strides[0] = sr;
    v->strides[1] = sc;
    v->offset = offset;
    v->storage = t->storage;
    v->requires_grad = false;
    v->grad = NULL;
    v->grad_fn = NULL;
}

/* Every row of the contiguous [rows, n] out set to bias [n]: one row copied, then
 * the filled rows doubled (log2(rows) device copies). */
static int fill_rows(ml_tensor *out, const ml_tensor *bias, int64_t rows, int64_t n) {
    const ml_memory_ops *mem = ml_backend_of(out)->memory;
    const size_t rb = (size_t)n * ml_dtype_size(out->dtype);
    char *o = ml_data(out);
    if (rows == 0 || rb == 0) return 0;
    if (mem->copy(o, ml_data(bias), rb)) return -1;
    for (int64_t done = 1; done < rows; done *= 2) {
        const int64_t k = done < rows - done ? done : rows - done;
        if (mem->copy(o + (size_t)done * rb, o, (size_t)k * rb)) return -1;
    }
    return 0;
}

static int linear_backward(ml_node *n, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *x2 = n->saved[0], *w = n->saved[1];
    int64_t rows = x2->shape[0], out_f = w->shape[0];
    ml_tensor *gc = ml_as_contiguous(g);
    if (!gc) return -1;
    ml_tensor g2;
    frame_view(&g2, gc, rows, out_f, out_f, 1, gc->offset);
    int rc = 0;
    if (n->needs_grad[0]) { /* gx = g @ w, written straight into the input's shape */
        ml_tensor *gx = ml_tensor_empty(g->dtype, g->storage->device, n->in_ndim[0], n->in_shape[0]);
        ml_tensor gx2;
        if (gx) frame_view(&gx2, gx, rows, x2->shape[1], x2->shape[1], 1, 0);
        if (!gx || gemm_into(&g2, w, NULL, &gx2)) rc = -1;
        if (rc == 0) gin[0] = gx;
        else ml_tensor_release(gx);
    }
    if (rc == 0 && n->needs_grad[1]) { /* gw = g^T @ x */
        ml_tensor gt;
        frame_view(&gt, gc, out_f, rows, 1, out_f, gc->offset);
        ml_tensor *gw = ml_tensor_empty(g->dtype, g->storage->device, 2, w->shape);
        if (!gw || gemm_into(&gt, x2, NULL, gw)) rc = -1;
        if (rc == 0) gin[1] = gw;
        else ml_tensor_release(gw);
    }
    if (rc == 0 && n->needs_grad[2]) { /* gb = sum of g over rows */
        if (gc->ndim == 2) {
            gin[2] = ml_sum(gc, 0, false);
        } else {
            ml_tensor *g2h = ml_tensor_alias(&g2);
            gin[2] = g2h ? ml_sum(g2h, 0, false) : NULL;
            ml_tensor_release(g2h);
        }
        if (!gin[2]) rc = -1;
    }
    ml_tensor_release(gc);
    return rc;
}

ml_tensor *ml_linear(ml_tensor *x, ml_tensor *w, ml_tensor *b) {
    char sx[ML_SHAPE_STR_MAX], sw[ML_SHAPE_STR_MAX];
    if (w->ndim != 2)
        return ml_error_set("linear: weight must be 2-D [out_features, in_features], got %s",
                            SHAPE(w, sw)), NULL;
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != in_f)
        return ml_error_set("linear: input %s does not end in in_features %lld (weight %s)",
                            SHAPE(x, sx), (long long)in_f, SHAPE(w, sw)), NULL;
    if (b && (b->ndim != 1 || b->shape[0] != out_f))
        return ml_error_set("linear: bias must be [%lld], got %s", (long long)out_f, SHAPE(b, sx)), NULL;
    if (ml_check_same_device("linear", x, w) || (b && ml_check_same_device("linear", x, b))) return NULL;
    if (x->dtype != w->dtype || (b && b->dtype != w->dtype) || !ml_dtype_is_float(w->dtype))
        return ml_error_set("linear: input, weight and bias need one floating dtype, got %s, %s%s%s",
                            ml_dtype_name(x->dtype), ml_dtype_name(w->dtype), b ? " and " : "",
                            b ? ml_dtype_name(b->dtype) : ""), NULL;
    int64_t rows = ml_numel(x) / (in_f ? in_f : 1);
    if (in_f == 0) rows = ml_shape_numel(x->ndim - 1, x->shape);
    ml_tensor *xc = ml_as_contiguous(x); /* no copy for the usual contiguous input */
    if (!xc) return NULL;
    /* the operands as gemm reads them: x as [rows, in], w^T as a transposed view,
     * the output [.., out] as [rows, out]; none of them allocated */
    ml_tensor x2, wt;
    frame_view(&x2, xc, rows, in_f, in_f, 1, xc->offset);
    frame_view(&wt, w, in_f, out_f, w->strides[1], w->strides[0], w->offset);
    int64_t oshape[ML_MAX_DIMS];
    memcpy(oshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    oshape[x->ndim - 1] = out_f;
    ml_tensor *out = ml_tensor_empty(w->dtype, w->storage->device, x->ndim, oshape);
    ml_tensor *bc = out && b ? ml_as_contiguous(b) : NULL;
    int rc = -1;
    if (out && (!b || bc)) {
        ml_tensor y2;
        frame_view(&y2, out, rows, out_f, out_f, 1, 0);
        /* the bias goes to the backend with the product: the CPU's small-product
         * kernel adds it as it stores C (no pre-filled rows, no second pass) */
        if (bc && in_f == 0) rc = fill_rows(out, bc, rows, out_f); /* the bias alone */
        else rc = gemm_into(&x2, &wt, bc, &y2);
    }
    ml_tensor_release(bc);
    if (rc) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor *in[3] = {x, w, b};
    ml_node *n = out ? ml_node_attach(out, "LinearBackward", linear_backward, b ? 3 : 2, in) : NULL;
    if (n) {
        ml_node_save(n, &x2);
        ml_node_save(n, w);
    }
    ml_tensor_release(xc);
    return out;
}
