/* scaled_dot_product_attention from existing ops: the scale folded into q (fewer
 * elements than the scores when S > E), one batched matmul with a transposed view
 * of k (gemm reads it in place), the mask by where (bool) or add (float), softmax
 * over the last dim, dropout by a drawn mask, and a second batched matmul. Each
 * op records its own node, so autograd needs nothing here. */
#include "attention.h"

#include <math.h>

#include "../error.h"
#include "creation.h"
#include "elementwise.h"
#include "matmul.h"
#include "shape.h"
#include "softmax.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)
#define FNAME "scaled_dot_product_attention"

/* Temporaries of one call, released together. */
typedef struct {
    ml_tensor *t[24];
    int n;
} scratch;

static ml_tensor *keep(scratch *s, ml_tensor *t) {
    if (t && s->n < 24) s->t[s->n++] = t;
    return t;
}

static void drop_all(scratch *s) {
    for (int i = 0; i < s->n; i++) ml_tensor_release(s->t[i]);
    s->n = 0;
}

static int check_inputs(const ml_tensor *q, const ml_tensor *k, const ml_tensor *v) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX], c[ML_SHAPE_STR_MAX];
    if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2)
        return ml_error_set(FNAME ": q, k and v need at least 2 dims ([*, L, E], [*, S, E], "
                            "[*, S, Ev]), got %s, %s and %s", SHAPE(q, a), SHAPE(k, b), SHAPE(v, c));
    if (!ml_dtype_is_float(q->dtype) || q->dtype != k->dtype || q->dtype != v->dtype)
        return ml_error_set(FNAME ": q, k and v must be float tensors of one dtype, got %s, %s "
                            "and %s", ml_dtype_name(q->dtype), ml_dtype_name(k->dtype),
                            ml_dtype_name(v->dtype));
    if (ml_check_same_device(FNAME, q, k) || ml_check_same_device(FNAME, q, v)) return -1;
    if (q->shape[q->ndim - 1] != k->shape[k->ndim - 1])
        return ml_error_set(FNAME ": q of shape %s and k of shape %s differ in their last dim "
                            "(the embedding E, expected equal)", SHAPE(q, a), SHAPE(k, b));
    if (k->shape[k->ndim - 2] != v->shape[v->ndim - 2])
        return ml_error_set(FNAME ": k of shape %s and v of shape %s differ in their "
                            "second-to-last dim (the source length S, expected equal)",
                            SHAPE(k, a), SHAPE(v, b));
    return 0;
}

/* A uint8 [l, s] on dev: 1 where j <= i (the positions a causal query sees). */
static ml_tensor *causal_mask(int64_t l, int64_t s, ml_device dev) {
    int64_t shape[2] = {l, s};
    ml_tensor *m = ml_tensor_empty(ML_U8, ML_CPU, 2, shape);
    if (!m) return NULL;
    uint8_t *p = ml_data(m);
    for (int64_t i = 0; i < l; i++)
        for (int64_t j = 0; j < s; j++) p[i * s + j] = j <= i;
    ml_tensor *d = ml_to_device(m, dev);
    ml_tensor_release(m);
    return d;
}

/* scores with the mask applied: where (uint8) or + (float, cast to the scores'
 * dtype); the mask must broadcast to the scores' shape. */
static ml_tensor *apply_mask(scratch *s, ml_tensor *scores, ml_tensor *mask, const ml_tensor *q,
                             const ml_tensor *k) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX], c[ML_SHAPE_STR_MAX], d[ML_SHAPE_STR_MAX];
    if (mask->dtype != ML_U8 && !ml_dtype_is_float(mask->dtype))
        return ml_error_set(FNAME ": attn_mask must be a float tensor (added) or a boolean one "
                            "(uint8, as comparisons give), got %s", ml_dtype_name(mask->dtype)), NULL;
    int nd;
    int64_t shape[ML_MAX_DIMS];
    bool fits = mask->ndim <= scores->ndim &&
                ml_broadcast_shapes(FNAME, mask->ndim, mask->shape, scores->ndim, scores->shape,
                                    &nd, shape) == 0 && nd == scores->ndim;
    for (int i = 0; fits && i < nd; i++) fits = shape[i] == scores->shape[i];
    if (!fits)
        return ml_error_set(FNAME ": attn_mask of shape %s does not broadcast to the attention "
                            "weights' shape %s (q %s, k %s)", SHAPE(mask, a), SHAPE(scores, b),
                            SHAPE(q, c), SHAPE(k, d)), NULL;
    if (ml_check_same_device(FNAME, scores, mask)) return NULL;
    if (mask->dtype == ML_U8) {
        ml_tensor *ninf = keep(s, ml_scalar(-INFINITY, scores->dtype, scores->storage->device));
        return ninf ? keep(s, ml_where(mask, scores, ninf)) : NULL;
    }
    ml_tensor *mc = keep(s, ml_cast(mask, scores->dtype));
    return mc ? keep(s, ml_add(scores, mc)) : NULL;
}

/* attn * (a drawn mask: 1 / (1 - p) with probability 1 - p, else 0) */
static ml_tensor *dropout(scratch *s, ml_tensor *attn, double p) {
    const ml_device dev = attn->storage->device;
    if (p >= 1) {
        ml_tensor *zero = keep(s, ml_scalar(0, attn->dtype, dev));
        return zero ? keep(s, ml_mul(attn, zero)) : NULL;
    }
    ml_tensor *r = keep(s, ml_rand(attn->dtype, dev, attn->ndim, attn->shape, 0, 1));
    ml_tensor *kp = r ? keep(s, ml_scalar(1 - p, attn->dtype, dev)) : NULL;
    ml_tensor *kept = kp ? keep(s, ml_binary(ML_BIN_LT, r, kp)) : NULL;
    ml_tensor *one = kept ? keep(s, ml_scalar(1 / (1 - p), attn->dtype, dev)) : NULL;
    ml_tensor *zero = one ? keep(s, ml_scalar(0, attn->dtype, dev)) : NULL;
    ml_tensor *m = zero ? keep(s, ml_where(kept, one, zero)) : NULL;
    return m ? keep(s, ml_mul(attn, m)) : NULL;
}

ml_tensor *ml_scaled_dot_product_attention(ml_tensor *q, ml_tensor *k, ml_tensor *v,
                                           ml_tensor *mask, bool is_causal, double dropout_p,
                                           double scale, ml_tensor **weights) {
    if (weights) *weights = NULL;
    if (check_inputs(q, k, v)) return NULL;
    if (is_causal && mask)
        return ml_error_set(FNAME ": give attn_mask or is_causal, not both"), NULL;
    if (!(dropout_p >= 0 && dropout_p <= 1))
        return ml_error_set(FNAME ": dropout_p must be in [0, 1], got %g", dropout_p), NULL;
    const int64_t e = q->shape[q->ndim - 1];
    if (isnan(scale)) scale = e > 0 ? 1 / sqrt((double)e) : 1;
    scratch s = {.n = 0};
    ml_tensor *out = NULL;
    ml_tensor *qs = keep(&s, ml_mul_scalar(q, scale));
    ml_tensor *kt = qs ? keep(&s, ml_transpose(k, -1, -2)) : NULL;
    ml_tensor *scores = kt ? keep(&s, ml_matmul(qs, kt)) : NULL;
    if (scores && is_causal) {
        ml_tensor *cm = keep(&s, causal_mask(q->shape[q->ndim - 2], k->shape[k->ndim - 2],
                                             q->storage->device));
        scores = cm ? apply_mask(&s, scores, cm, q, k) : NULL;
    } else if (scores && mask) {
        scores = apply_mask(&s, scores, mask, q, k);
    }
    ml_tensor *attn = scores ? keep(&s, ml_softmax(scores, -1)) : NULL;
    if (attn && dropout_p > 0) attn = dropout(&s, attn, dropout_p);
    if (attn) out = ml_matmul(attn, v);
    if (out && weights) *weights = ml_tensor_retain(attn);
    drop_all(&s);
    return out;
}
