/* CPU kernels of the softmax family: the stable form (subtract the max), over n of
 * [outer, n, inner]; rows are independent and split across threads. */
#include <math.h>

#include "../backend.h"
#include "../error.h"
#include "iter.h"
#include "vmath.h"

#define SOFTMAX_FWD(T, EXP, LOG)                                                      \
    do {                                                                              \
        const T *xp = (const T *)ml_data(x);                                          \
        T *yp = (T *)ml_data(y);                                                      \
        ML_PARALLEL_FOR_IF(outer * n * inner > 32768,                          \
            for (int64_t o = 0; o < outer; o++)                                \
                for (int64_t j = 0; j < inner; j++) {                          \
                    const T *p = xp + o * n * inner + j;                       \
                    T *q = yp + o * n * inner + j;                             \
                    T m = -INFINITY;                                           \
                    for (int64_t i = 0; i < n; i++) m = p[i * inner] > m ? p[i * inner] : m; \
                    if (m == -INFINITY) m = 0; /* all -inf: exp gives 0s, sum 0, NaN as torch */ \
                    T s = 0;                                                   \
                    for (int64_t i = 0; i < n; i++) {                          \
                        T e = EXP(p[i * inner] - m);                           \
                        if (!is_log) q[i * inner] = e;                         \
                        s += e;                                                \
                    }                                                          \
                    if (is_log) {                                              \
                        T lse = m + LOG(s);                                    \
                        for (int64_t i = 0; i < n; i++) q[i * inner] = p[i * inner] - lse; \
                    } else {                                                   \
                        T r = (T)1 / s;                                        \
                        for (int64_t i = 0; i < n; i++) q[i * inner] *= r;     \
                    }                                                          \
                });                                                            \
    } while (0)

/* softmax: gx = y * (g - sum(g * y)); log_softmax: gx = g - exp(y) * sum(g) */
#define SOFTMAX_BWD(T, EXP)                                                           \
    do {                                                                              \
        const T *yp = (const T *)ml_data(y), *gp = (const T *)ml_data(g);             \
        T *op = (T *)ml_data(grad_x);                                                 \
        ML_PARALLEL_FOR_IF(outer * n * inner > 32768,                          \
            for (int64_t o = 0; o < outer; o++)                                \
                for (int64_t j = 0; j < inner; j++) {                          \
                    int64_t base = o * n * inner + j;                          \
                    T s = 0;                                                   \
                    if (is_log) {                                              \
                        for (int64_t i = 0; i < n; i++) s += gp[base + i * inner]; \
                        for (int64_t i = 0; i < n; i++)                        \
                            op[base + i * inner] = gp[base + i * inner] - EXP(yp[base + i * inner]) * s; \
                    } else {                                                   \
                        for (int64_t i = 0; i < n; i++) s += gp[base + i * inner] * yp[base + i * inner]; \
                        for (int64_t i = 0; i < n; i++)                        \
                            op[base + i * inner] = yp[base + i * inner] * (gp[base + i * inner] - s); \
                    }                                                          \
                });                                                            \
    } while (0)

#if defined(__AVX512F__)
/* float32 over the last dim (inner = 1, the common case) with AVX-512: each row in
 * 16-lane chunks, the tail by a mask, so a short row (the MLP's 10 classes) is one
 * masked vector and costs a few dozen instructions, where the plain loops below
 * spent ~100 ns a row in their vector prologues and scalar tails. A NaN anywhere
 * makes the row NaN, as in torch; a row of -inf gives NaN (0 / 0) as torch does. */
static void softmax_row_avx512(const float *restrict p, float *restrict q, int64_t n,
                               bool is_log) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 mv = ninf;
    __mmask16 nan = 0;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        const __m512 v = _mm512_mask_loadu_ps(ninf, mk, p + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        mv = _mm512_max_ps(mv, v);
    }
    float m = nan ? NAN : _mm512_reduce_max_ps(mv);
    if (m == -INFINITY) m = 0;
    const __m512 mb = _mm512_set1_ps(m);
    __m512 sv = _mm512_setzero_ps();
    if (n <= 16) { /* one vector: the exps stay in a register */
        const __mmask16 mk = ml_mask16(n);
        const __m512 v = _mm512_maskz_loadu_ps(mk, p);
        const __m512 e = _mm512_maskz_mov_ps(mk, ml_exp16_nonpos(_mm512_sub_ps(v, mb)));
        const float s = _mm512_reduce_add_ps(e);
        if (is_log) _mm512_mask_storeu_ps(q, mk, _mm512_sub_ps(v, _mm512_set1_ps(m + logf(s))));
        else _mm512_mask_storeu_ps(q, mk, _mm512_mul_ps(e, _mm512_set1_ps(1.0f / s)));
        return;
    }
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        const __m512 e = _mm512_maskz_mov_ps(
            mk, ml_exp16_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, p + i), mb)));
        sv = _mm512_add_ps(sv, e);
        if (!is_log) _mm512_mask_storeu_ps(q + i, mk, e);
    }
    const float s = _mm512_reduce_add_ps(sv);
    const __m512 c = _mm512_set1_ps(is_log ? m + logf(s) : 1.0f / s);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        if (is_log) _mm512_mask_storeu_ps(q + i, mk, _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, p + i), c));
        else _mm512_mask_storeu_ps(q + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, q + i), c));
    }
}

/* The backward of one row: softmax gx = y * (g - sum(g * y)); log_softmax
 * gx = g - exp(y) * sum(g) (y <= 0 there, so the non-positive exp serves). */
static void softmax_row_backward_avx512(const float *restrict y, const float *restrict g,
                                        float *restrict gx, int64_t n, bool is_log) {
    __m512 sv = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(mk, g + i);
        sv = is_log ? _mm512_add_ps(sv, gv) : _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(mk, y + i), sv);
    }
    const __m512 s = _mm512_set1_ps(_mm512_reduce_add_ps(sv));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(mk, g + i), yv = _mm512_maskz_loadu_ps(mk, y + i);
        const __m512 r = is_log ? _mm512_fnmadd_ps(ml_exp16_nonpos(yv), s, gv)
                                : _mm512_mul_ps(yv, _mm512_sub_ps(gv, s));
        _mm512_mask_storeu_ps(gx + i, mk, r);
    }
}

static void softmax_rows_f32(const float *restrict xp, float *restrict yp, int64_t rows,
                             int64_t n, bool is_log) {
    ML_PARALLEL_FOR_IF(rows * n > 32768,
        for (int64_t o = 0; o < rows; o++) softmax_row_avx512(xp + o * n, yp + o * n, n, is_log););
}

static bool softmax_rows_backward_f32(const ml_tensor *y, const ml_tensor *g, int64_t rows,
                                      int64_t n, bool is_log, ml_tensor *grad_x) {
    const float *yp = (const float *)ml_data(y), *gp = (const float *)ml_data(g);
    float *op = (float *)ml_data(grad_x);
    ML_PARALLEL_FOR_IF(rows * n > 32768,
        for (int64_t o = 0; o < rows; o++)
            softmax_row_backward_avx512(yp + o * n, gp + o * n, op + o * n, n, is_log););
    return true;
}
#else
/* float32 over the last dim (inner = 1, the common case): each row's three passes
 * are unit-stride loops the compiler vectorises, ml_expf included. */
static void softmax_rows_f32(const float *restrict xp, float *restrict yp, int64_t rows,
                             int64_t n, bool is_log) {
    ML_PARALLEL_FOR_IF(rows * n > 32768,
        for (int64_t o = 0; o < rows; o++) {
            const float *restrict p = xp + o * n;
            float *restrict q = yp + o * n;
            float m = -INFINITY;
            _Pragma("omp simd reduction(max : m)")
            for (int64_t i = 0; i < n; i++) m = p[i] > m ? p[i] : m;
            for (int64_t i = 0; i < n; i++) /* a NaN anywhere makes the row NaN, as torch */
                if (p[i] != p[i]) m = p[i];
            if (m == -INFINITY) m = 0;
            float s = 0;
            _Pragma("omp simd reduction(+ : s)")
            for (int64_t i = 0; i < n; i++) {
                float e = ml_expf(p[i] - m);
                q[i] = e;
                s += e;
            }
            if (is_log) {
                float lse = m + logf(s);
                _Pragma("omp simd")
                for (int64_t i = 0; i < n; i++) q[i] = p[i] - lse;
            } else {
                float r = 1.0f / s;
                _Pragma("omp simd")
                for (int64_t i = 0; i < n; i++) q[i] *= r;
            }
        });
}

static bool softmax_rows_backward_f32(const ml_tensor *y, const ml_tensor *g, int64_t rows,
                                      int64_t n, bool is_log, ml_tensor *grad_x) {
    (void)y, (void)g, (void)rows, (void)n, (void)is_log, (void)grad_x;
    return false; /* the generic loops serve */
}
#endif

static int cpu_softmax_forward(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                               bool is_log, ml_tensor *y) {
    if (x->dtype == ML_F32 && inner == 1) softmax_rows_f32(ml_data(x), ml_data(y), outer, n, is_log);
    else if (x->dtype == ML_F32) SOFTMAX_FWD(float, ml_expf, logf);
    else if (x->dtype == ML_F64) SOFTMAX_FWD(double, exp, log);
    else return ml_error_set("softmax: needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
    return 0;
}

static int cpu_softmax_backward(const ml_tensor *y, const ml_tensor *g, int64_t outer,
                                int64_t n, int64_t inner, bool is_log, ml_tensor *grad_x) {
    if (y->dtype == ML_F32 && inner == 1 &&
        softmax_rows_backward_f32(y, g, outer, n, is_log, grad_x))
        return 0;
    if (y->dtype == ML_F32) SOFTMAX_BWD(float, ml_expf);
    else if (y->dtype == ML_F64) SOFTMAX_BWD(double, exp);
    else return ml_error_set("softmax: needs a floating point tensor, got %s", ml_dtype_name(y->dtype));
    return 0;
}

const ml_softmax_ops ml_cpu_softmax = {ML_SOFTMAX_ENTRIES(ML_BACKEND_ENTRY, cpu_softmax_)};
