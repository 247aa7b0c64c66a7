/* CPU kernels of the elementwise family. Each op is a typed loop generated from
 * one expression, with the switch on the op outside the loop so that the compiler
 * vectorises the loop body; long unit-stride runs are split across OpenMP threads. */
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "../cast.h"
#include "../error.h"
#include "iter.h"
#include "vmath.h"

/* One loop over (x -> out) applying expr to `v`, for type T. */
#define UNARY_LOOP(T, OUT_T, expr)                                                    \
    do {                                                                              \
        const T *xp = (const T *)ml_data(x);                                          \
        OUT_T *op = (OUT_T *)ml_data(out);                                            \
        const ml_tensor *ts[2] = {out, x};                                            \
        ml_iter it;                                                                   \
        ml_iter_init(&it, 2, ts);                                                     \
        ML_ITER_FOR(&it, off, len, st, {                                              \
            OUT_T *o = op + off[0];                                                   \
            const T *a = xp + off[1];                                                 \
            if (st[0] == 1 && st[1] == 1) {                                           \
                ML_PARALLEL_FOR_SIMD_IF(len > ML_PARALLEL_MIN,                 \
                    for (int64_t i = 0; i < len; i++) { T v = a[i]; o[i] = (OUT_T)(expr); }); \
            } else {                                                                  \
                for (int64_t i = 0; i < len; i++) {                                   \
                    T v = a[i * st[1]];                                               \
                    o[i * st[0]] = (OUT_T)(expr);                                     \
                }                                                                     \
            }                                                                         \
        });                                                                           \
    } while (0)

#define FLOAT_UNARY(T, EXP, LOG, LOG1P, FABS, SQRT, TANH)                             \
    switch (opc) {                                                                    \
    case ML_UN_NEG: UNARY_LOOP(T, T, -v); break;                                      \
    case ML_UN_EXP: UNARY_LOOP(T, T, EXP(v)); break;                                  \
    case ML_UN_LOG: UNARY_LOOP(T, T, LOG(v)); break;                                  \
    case ML_UN_LOG1P: UNARY_LOOP(T, T, LOG1P(v)); break;                              \
    case ML_UN_ABS: UNARY_LOOP(T, T, FABS(v)); break;                                 \
    case ML_UN_SQRT: UNARY_LOOP(T, T, SQRT(v)); break;                                \
    case ML_UN_SQUARE: UNARY_LOOP(T, T, v * v); break;                                \
    case ML_UN_SIGN: UNARY_LOOP(T, T, (T)((v > 0) - (v < 0))); break;                 \
    case ML_UN_RELU: UNARY_LOOP(T, T, v > 0 ? v : (T)0); break;                       \
    case ML_UN_SIGMOID: UNARY_LOOP(T, T, (T)1 / ((T)1 + EXP(-v))); break;             \
    case ML_UN_TANH: UNARY_LOOP(T, T, TANH(v)); break;                                \
    case ML_UN_RECIPROCAL: UNARY_LOOP(T, T, (T)1 / v); break;                         \
    default: return ml_error_set("unary op %d is not defined for %s", (int)opc,        \
                                 ml_dtype_name(x->dtype));                            \
    }

#define INT_UNARY(T)                                                                  \
    switch (opc) {                                                                    \
    case ML_UN_NEG: UNARY_LOOP(T, T, -v); break;                                      \
    case ML_UN_ABS: UNARY_LOOP(T, T, v < 0 ? -v : v); break;                          \
    case ML_UN_SQUARE: UNARY_LOOP(T, T, v * v); break;                                \
    case ML_UN_SIGN: UNARY_LOOP(T, T, (T)((v > 0) - (v < 0))); break;                 \
    case ML_UN_RELU: UNARY_LOOP(T, T, v > 0 ? v : (T)0); break;                       \
    default: return ml_error_set("this unary op needs a floating point tensor, got %s", \
                                 ml_dtype_name(x->dtype));                            \
    }

static int cpu_unary(ml_unary_op opc, const ml_tensor *x, ml_tensor *out) {
    switch (x->dtype) {
    case ML_F32: FLOAT_UNARY(float, ml_expf, logf, log1pf, fabsf, sqrtf, tanhf); break;
    case ML_F64: FLOAT_UNARY(double, exp, log, log1p, fabs, sqrt, tanh); break;
    case ML_I64: INT_UNARY(int64_t); break;
    case ML_U8: /* unsigned: abs and relu are the identity, sign is 0 or 1 */
        switch (opc) {
        case ML_UN_ABS:
        case ML_UN_RELU: UNARY_LOOP(uint8_t, uint8_t, v); break;
        case ML_UN_SIGN: UNARY_LOOP(uint8_t, uint8_t, v > 0); break;
        case ML_UN_NEG: UNARY_LOOP(uint8_t, uint8_t, -v); break;
        case ML_UN_SQUARE: UNARY_LOOP(uint8_t, uint8_t, v * v); break;
        default: return ml_error_set("this unary op needs a floating point tensor, got uint8");
        }
        break;
    default: break;
    }
    return 0;
}

/* One loop over (a, b -> out) applying expr to `u`, `v`. */
#define BINARY_LOOP(T, OUT_T, expr)                                                   \
    do {                                                                              \
        const T *ap = (const T *)ml_data(a);                                          \
        const T *bp = (const T *)ml_data(b);                                          \
        OUT_T *op = (OUT_T *)ml_data(out);                                            \
        const ml_tensor *ts[3] = {out, a, b};                                         \
        ml_iter it;                                                                   \
        ml_iter_init(&it, 3, ts);                                                     \
        ML_ITER_FOR(&it, off, len, st, {                                              \
            OUT_T *o = op + off[0];                                                   \
            const T *pa = ap + off[1], *pb = bp + off[2];                             \
            if (st[0] == 1 && st[1] == 1 && st[2] == 1) {                             \
                ML_PARALLEL_FOR_SIMD_IF(len > ML_PARALLEL_MIN,                 \
                    for (int64_t i = 0; i < len; i++) { T u = pa[i], v = pb[i]; o[i] = (OUT_T)(expr); }); \
            } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {                      \
                const T v = pb[0];                                                    \
                ML_PARALLEL_FOR_SIMD_IF(len > ML_PARALLEL_MIN,                 \
                    for (int64_t i = 0; i < len; i++) { T u = pa[i]; o[i] = (OUT_T)(expr); }); \
            } else {                                                                  \
                for (int64_t i = 0; i < len; i++) {                                   \
                    T u = pa[i * st[1]], v = pb[i * st[2]];                           \
                    o[i * st[0]] = (OUT_T)(expr);                                     \
                }                                                                     \
            }                                                                         \
        });                                                                           \
    } while (0)

#define COMPARE_CASES(T)                                                              \
    case ML_BIN_EQ: BINARY_LOOP(T, uint8_t, u == v); break;                           \
    case ML_BIN_NE: BINARY_LOOP(T, uint8_t, u != v); break;                           \
    case ML_BIN_LT: BINARY_LOOP(T, uint8_t, u < v); break;                            \
    case ML_BIN_LE: BINARY_LOOP(T, uint8_t, u <= v); break;                           \
    case ML_BIN_GT: BINARY_LOOP(T, uint8_t, u > v); break;                            \
    case ML_BIN_GE: BINARY_LOOP(T, uint8_t, u >= v); break;

/* MAXIMUM/MINIMUM propagate NaN as torch.maximum does. */
#define FLOAT_BINARY(T, POW)                                                          \
    switch (opc) {                                                                    \
    case ML_BIN_ADD: BINARY_LOOP(T, T, u + v); break;                                 \
    case ML_BIN_SUB: BINARY_LOOP(T, T, u - v); break;                                 \
    case ML_BIN_MUL: BINARY_LOOP(T, T, u * v); break;                                 \
    case ML_BIN_DIV: BINARY_LOOP(T, T, u / v); break;                                 \
    case ML_BIN_POW: BINARY_LOOP(T, T, POW(u, v)); break;                             \
    case ML_BIN_MAXIMUM: BINARY_LOOP(T, T, (u != u || u > v) ? u : v); break;         \
    case ML_BIN_MINIMUM: BINARY_LOOP(T, T, (u != u || u < v) ? u : v); break;         \
    COMPARE_CASES(T)                                                                  \
    case ML_BIN_RELU_BACKWARD: BINARY_LOOP(T, T, v > 0 ? u : (T)0); break;            \
    case ML_BIN_SIGMOID_BACKWARD: BINARY_LOOP(T, T, u * v * ((T)1 - v)); break;       \
    case ML_BIN_TANH_BACKWARD: BINARY_LOOP(T, T, u * ((T)1 - v * v)); break;          \
    default: return ml_error_set("binary op %d is not defined", (int)opc);            \
    }

/* Integer division truncates towards zero like C; torch's floor division differs
 * for negatives, so ops/ refuses integer "/" (it promotes to float, as torch's
 * true division does) and the case is never reached with ints. */
#define INT_BINARY(T)                                                                 \
    switch (opc) {                                                                    \
    case ML_BIN_ADD: BINARY_LOOP(T, T, u + v); break;                                 \
    case ML_BIN_SUB: BINARY_LOOP(T, T, u - v); break;                                 \
    case ML_BIN_MUL: BINARY_LOOP(T, T, u * v); break;                                 \
    case ML_BIN_MAXIMUM: BINARY_LOOP(T, T, u > v ? u : v); break;                     \
    case ML_BIN_MINIMUM: BINARY_LOOP(T, T, u < v ? u : v); break;                     \
    COMPARE_CASES(T)                                                                  \
    default: return ml_error_set("this op needs floating point tensors, got %s",       \
                                 ml_dtype_name(a->dtype));                            \
    }

static int cpu_binary(ml_binary_op opc, const ml_tensor *a, const ml_tensor *b,
                      ml_tensor *out) {
    switch (a->dtype) {
    case ML_F32: FLOAT_BINARY(float, powf); break;
    case ML_F64: FLOAT_BINARY(double, pow); break;
    case ML_I64: INT_BINARY(int64_t); break;
    case ML_U8: INT_BINARY(uint8_t); break;
    default: break;
    }
    return 0;
}

static int cpu_axpy(const ml_tensor *a, double alpha, const ml_tensor *b, ml_tensor *out) {
    switch (a->dtype) {
    case ML_F32: { float s = (float)alpha; BINARY_LOOP(float, float, u + s * v); break; }
    case ML_F64: BINARY_LOOP(double, double, u + alpha * v); break;
    case ML_I64: { int64_t s = (int64_t)alpha; BINARY_LOOP(int64_t, int64_t, u + s * v); break; }
    case ML_U8: { uint8_t s = (uint8_t)alpha; BINARY_LOOP(uint8_t, uint8_t, u + s * v); break; }
    default: break;
    }
    return 0;
}

static int cpu_clamp(const ml_tensor *x, double lo, double hi, ml_tensor *out) {
    bool has_lo = !isnan(lo), has_hi = !isnan(hi);
    switch (x->dtype) {
    case ML_F32: {
        float l = has_lo ? (float)lo : -INFINITY, h = has_hi ? (float)hi : INFINITY;
        UNARY_LOOP(float, float, v != v ? v : (v < l ? l : (v > h ? h : v)));
        break;
    }
    case ML_F64: {
        double l = has_lo ? lo : -INFINITY, h = has_hi ? hi : INFINITY;
        UNARY_LOOP(double, double, v != v ? v : (v < l ? l : (v > h ? h : v)));
        break;
    }
    case ML_I64: {
        int64_t l = has_lo ? (int64_t)ceil(lo) : INT64_MIN, h = has_hi ? (int64_t)floor(hi) : INT64_MAX;
        UNARY_LOOP(int64_t, int64_t, v < l ? l : (v > h ? h : v));
        break;
    }
    default: return ml_error_set("clamp: not defined for %s", ml_dtype_name(x->dtype));
    }
    return 0;
}

static int cpu_clamp_backward(const ml_tensor *g, const ml_tensor *x, double lo, double hi,
                              ml_tensor *out) {
    const ml_tensor *a = g, *b = x;
    double l = isnan(lo) ? -INFINITY : lo, h = isnan(hi) ? INFINITY : hi;
    switch (g->dtype) {
    case ML_F32: {
        float fl = (float)l, fh = (float)h;
        BINARY_LOOP(float, float, (v >= fl && v <= fh) ? u : 0.0f);
        break;
    }
    case ML_F64: BINARY_LOOP(double, double, (v >= l && v <= h) ? u : 0.0); break;
    default: return ml_error_set("clamp: backward needs floating point, got %s", ml_dtype_name(g->dtype));
    }
    return 0;
}

static inline int64_t ipow(int64_t base, int64_t e) {
    int64_t r = 1;
    for (; e > 0; e >>= 1, base *= base)
        if (e & 1) r *= base;
    return r;
}

static int cpu_pow_scalar(const ml_tensor *x, double p, ml_tensor *out) {
    switch (x->dtype) {
    case ML_F32: {
        float fp = (float)p;
        if (p == 2.0) UNARY_LOOP(float, float, v * v);
        else if (p == 0.5) UNARY_LOOP(float, float, sqrtf(v));
        else UNARY_LOOP(float, float, powf(v, fp));
        break;
    }
    case ML_F64: UNARY_LOOP(double, double, pow(v, p)); break;
    case ML_I64: {
        int64_t ip = (int64_t)p;
        UNARY_LOOP(int64_t, int64_t, ipow(v, ip));
        break;
    }
    default: return ml_error_set("pow: not defined for %s", ml_dtype_name(x->dtype));
    }
    return 0;
}

static int cpu_pow_scalar_backward(const ml_tensor *g, const ml_tensor *x, double p,
                                   ml_tensor *out) {
    const ml_tensor *a = g, *b = x;
    switch (g->dtype) {
    case ML_F32: {
        float fp = (float)p, fq = (float)(p - 1.0);
        if (p == 2.0) BINARY_LOOP(float, float, 2.0f * u * v);
        else BINARY_LOOP(float, float, u * fp * powf(v, fq));
        break;
    }
    case ML_F64: BINARY_LOOP(double, double, p == 0.0 ? 0.0 : u * p * pow(v, p - 1.0)); break;
    default: return ml_error_set("pow: backward needs floating point, got %s", ml_dtype_name(g->dtype));
    }
    return 0;
}

#define FILL_LOOP(T)                                                                  \
    do {                                                                              \
        T val = ML_CAST(T, value);                                                    \
        T *op = (T *)ml_data(out);                                                    \
        const ml_tensor *ts[1] = {out};                                               \
        ml_iter it;                                                                   \
        ml_iter_init(&it, 1, ts);                                                     \
        ML_ITER_FOR(&it, off, len, st, {                                              \
            T *o = op + off[0];                                                       \
            for (int64_t i = 0; i < len; i++) o[i * st[0]] = val;                     \
        });                                                                           \
    } while (0)

static int cpu_fill(ml_tensor *out, double value) {
    switch (out->dtype) {
    case ML_F32: FILL_LOOP(float); break;
    case ML_F64: FILL_LOOP(double); break;
    case ML_I64: FILL_LOOP(int64_t); break;
    case ML_U8: FILL_LOOP(uint8_t); break;
    default: break;
    }
    return 0;
}

/* Typed copy loops for every (source, destination) dtype pair (casts: src/cast.h). */
#define COPY_LOOP(ST, DT)                                                             \
    do {                                                                              \
        const ST *sp = (const ST *)ml_data(src);                                      \
        DT *dp = (DT *)ml_data(dst);                                                  \
        const ml_tensor *ts[2] = {dst, src};                                          \
        ml_iter it;                                                                   \
        ml_iter_init(&it, 2, ts);                                                     \
        ML_ITER_FOR(&it, off, len, st, {                                              \
            DT *o = dp + off[0];                                                      \
            const ST *s = sp + off[1];                                                \
            if (st[0] == 1 && st[1] == 1) {                                           \
                ML_PARALLEL_FOR_SIMD_IF(len > ML_PARALLEL_MIN,                 \
                    for (int64_t i = 0; i < len; i++) o[i] = ML_CAST(DT, s[i]);); \
            } else {                                                                  \
                for (int64_t i = 0; i < len; i++) o[i * st[0]] = ML_CAST(DT, s[i * st[1]]); \
            }                                                                         \
        });                                                                           \
    } while (0)

#define COPY_TO(DT)                                                                   \
    switch (src->dtype) {                                                             \
    case ML_F32: COPY_LOOP(float, DT); break;                                         \
    case ML_F64: COPY_LOOP(double, DT); break;                                        \
    case ML_I64: COPY_LOOP(int64_t, DT); break;                                       \
    case ML_U8: COPY_LOOP(uint8_t, DT); break;                                        \
    default: break;                                                                   \
    }

static int cpu_copy(const ml_tensor *src, ml_tensor *dst) {
    if (src->dtype == dst->dtype && ml_is_contiguous(src) && ml_is_contiguous(dst)) {
        memcpy(ml_data(dst), ml_data(src), (size_t)ml_numel(src) * ml_dtype_size(src->dtype));
        return 0;
    }
    switch (dst->dtype) {
    case ML_F32: COPY_TO(float); break;
    case ML_F64: COPY_TO(double); break;
    case ML_I64: COPY_TO(int64_t); break;
    case ML_U8: COPY_TO(uint8_t); break;
    default: break;
    }
    return 0;
}

#define WHERE_LOOP(T)                                                                 \
    do {                                                                              \
        const uint8_t *cp = (const uint8_t *)ml_data(cond);                           \
        const T *ap = (const T *)ml_data(a), *bp = (const T *)ml_data(b);             \
        T *op = (T *)ml_data(out);                                                    \
        int64_t n = ml_numel(out);                                                    \
        ml_tensor *ts_[4] = {out, (ml_tensor *)cond, (ml_tensor *)a, (ml_tensor *)b}; \
        (void)ts_;                                                                    \
        /* general strides: index arithmetic per element (where is not hot) */       \
        int64_t idx[ML_MAX_DIMS] = {0};                                               \
        for (int64_t i = 0; i < n; i++) {                                             \
            int64_t oc = 0, oa = 0, ob = 0, oo = 0;                                   \
            for (int d = 0; d < out->ndim; d++) {                                     \
                oc += idx[d] * cond->strides[d];                                      \
                oa += idx[d] * a->strides[d];                                         \
                ob += idx[d] * b->strides[d];                                         \
                oo += idx[d] * out->strides[d];                                       \
            }                                                                         \
            op[oo] = cp[oc] ? ap[oa] : bp[ob];                                        \
            for (int d = out->ndim - 1; d >= 0; d--) {                                \
                if (++idx[d] < out->shape[d]) break;                                  \
                idx[d] = 0;                                                           \
            }                                                                         \
        }                                                                             \
    } while (0)

static int cpu_where(const ml_tensor *cond, const ml_tensor *a, const ml_tensor *b,
                     ml_tensor *out) {
    switch (out->dtype) {
    case ML_F32: WHERE_LOOP(float); break;
    case ML_F64: WHERE_LOOP(double); break;
    case ML_I64: WHERE_LOOP(int64_t); break;
    case ML_U8: WHERE_LOOP(uint8_t); break;
    default: break;
    }
    return 0;
}

const ml_elementwise_ops ml_cpu_elementwise = {
    .unary = cpu_unary,
    .binary = cpu_binary,
    .axpy = cpu_axpy,
    .clamp = cpu_clamp,
    .clamp_backward = cpu_clamp_backward,
    .pow_scalar = cpu_pow_scalar,
    .pow_scalar_backward = cpu_pow_scalar_backward,
    .fill = cpu_fill,
    .copy = cpu_copy,
    .where = cpu_where,
};
