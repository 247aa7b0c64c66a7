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
    if (y->dtype == ML_F32) SOFTMAX_BWD(float, ml_expf);
    else if (y->dtype == ML_F64) SOFTMAX_BWD(double, exp);
    else return ml_error_set("softmax: needs a floating point tensor, got %s", ml_dtype_name(y->dtype));
    return 0;
}

const ml_softmax_ops ml_cpu_softmax = {.forward = cpu_softmax_forward, .backward = cpu_softmax_backward};
