/* Temporaries of an op composed from other ops (var, norm, their backward rules):
 * every intermediate result is kept in one ml_temps and released together, and
 * once one step fails (returns NULL) the following steps are skipped, so a rule
 * reads as its formula without a release and a NULL check per line:
 *
 *     ml_temps s = {0};
 *     ml_tensor *d = tmp_sub(&s, x, mean);
 *     ml_tensor *r = tmp_mul_scalar(&s, tmp_mul(&s, g, d), 2.0 / dof);
 *     gin[0] = tmp_result(&s, r);      -- r retained for the caller, NULL if any failed
 *     tmp_release(&s);
 *
 * Each tmp_<op> is ml_<op> (ops.h) with NULL operands passed through. ml_error
 * keeps the first failure's message (nothing runs after it). Header-only, static
 * inline: a debugger steps into each wrapper. */
#ifndef ML_OPS_TEMPS_H
#define ML_OPS_TEMPS_H

#include "../error.h"
#include "elementwise.h"
#include "reduce.h"
#include "shape.h"

#define ML_TEMPS_MAX 48

typedef struct ml_temps {
    ml_tensor *t[ML_TEMPS_MAX];
    int n;
    bool failed;
} ml_temps;

/* Keeps t (a new reference, or NULL for a failed step) and returns it. */
static inline ml_tensor *tmp_keep(ml_temps *s, ml_tensor *t) {
    if (!t) {
        s->failed = true;
        return NULL;
    }
    if (s->n == ML_TEMPS_MAX) { /* a composition longer than the pool is a bug */
        ml_tensor_release(t);
        s->failed = true;
        ml_error_set("internal: more than %d temporaries in one composed op", ML_TEMPS_MAX);
        return NULL;
    }
    s->t[s->n++] = t;
    return t;
}

/* A new reference to r for the caller (NULL when any step failed). */
static inline ml_tensor *tmp_result(ml_temps *s, ml_tensor *r) {
    return s->failed || !r ? NULL : ml_tensor_retain(r);
}

static inline void tmp_release(ml_temps *s) {
    for (int i = 0; i < s->n; i++) ml_tensor_release(s->t[i]);
    s->n = 0;
}

static inline ml_tensor *tmp_binary(ml_temps *s, ml_binary_op op, ml_tensor *a, ml_tensor *b) {
    return a && b && !s->failed ? tmp_keep(s, ml_binary(op, a, b)) : NULL;
}
static inline ml_tensor *tmp_add(ml_temps *s, ml_tensor *a, ml_tensor *b) {
    return tmp_binary(s, ML_BIN_ADD, a, b);
}
static inline ml_tensor *tmp_sub(ml_temps *s, ml_tensor *a, ml_tensor *b) {
    return tmp_binary(s, ML_BIN_SUB, a, b);
}
static inline ml_tensor *tmp_mul(ml_temps *s, ml_tensor *a, ml_tensor *b) {
    return tmp_binary(s, ML_BIN_MUL, a, b);
}
static inline ml_tensor *tmp_div(ml_temps *s, ml_tensor *a, ml_tensor *b) {
    return tmp_binary(s, ML_BIN_DIV, a, b);
}
static inline ml_tensor *tmp_unary(ml_temps *s, ml_unary_op op, ml_tensor *x) {
    return x && !s->failed ? tmp_keep(s, ml_unary(op, x)) : NULL;
}
static inline ml_tensor *tmp_mul_scalar(ml_temps *s, ml_tensor *x, double v) {
    return x && !s->failed ? tmp_keep(s, ml_mul_scalar(x, v)) : NULL;
}
static inline ml_tensor *tmp_pow_scalar(ml_temps *s, ml_tensor *x, double p) {
    return x && !s->failed ? tmp_keep(s, ml_pow_scalar(x, p)) : NULL;
}
static inline ml_tensor *tmp_cast(ml_temps *s, ml_tensor *x, ml_dtype dt) {
    return x && !s->failed ? tmp_keep(s, ml_cast(x, dt)) : NULL;
}
static inline ml_tensor *tmp_sum(ml_temps *s, ml_tensor *x, int dim, bool keepdim) {
    return x && !s->failed ? tmp_keep(s, ml_sum(x, dim, keepdim)) : NULL;
}
static inline ml_tensor *tmp_mean(ml_temps *s, ml_tensor *x, int dim, bool keepdim) {
    return x && !s->failed ? tmp_keep(s, ml_mean(x, dim, keepdim)) : NULL;
}
/* where(cond, a, b); a number is a tmp_scalar. */
static inline ml_tensor *tmp_where(ml_temps *s, ml_tensor *cond, ml_tensor *a, ml_tensor *b) {
    return cond && a && b && !s->failed ? tmp_keep(s, ml_where(cond, a, b)) : NULL;
}
/* A 0-dim tensor of v with like's dtype and device. */
static inline ml_tensor *tmp_scalar(ml_temps *s, const ml_tensor *like, double v) {
    return like && !s->failed ? tmp_keep(s, ml_scalar(v, like->dtype, like->storage->device))
                              : NULL;
}
/* t reshaped to shape (same number of elements). */
static inline ml_tensor *tmp_reshape(ml_temps *s, ml_tensor *t, int ndim, const int64_t *shape) {
    return t && !s->failed ? tmp_keep(s, ml_reshape(t, ndim, shape)) : NULL;
}

#endif
