/* The CPU's definitions of the math helpers that the op lists' expressions use
 * (src/backend/elementwise_ops.h): one name for every element type, chosen by C11
 * _Generic. float32 takes the vectorisable ml_expf (vmath.h) where there is one,
 * else libm's float function; float64 libm's double one. A type that a helper does
 * not list is a compile error, as is a helper missing here that the CUDA side has
 * (kernels/common.cuh defines the same names as overloads). */
#ifndef ML_CPU_SCALAR_MATH_H
#define ML_CPU_SCALAR_MATH_H

#include <math.h>
#include <stdint.h>

#include "vmath.h"

#define ml_exp(v) _Generic((v), float: ml_expf, double: exp)(v)
#define ml_expm1(v) _Generic((v), float: expm1f, double: expm1)(v)
#define ml_log(v) _Generic((v), float: logf, double: log)(v)
#define ml_log1p(v) _Generic((v), float: log1pf, double: log1p)(v)
#define ml_sqrt(v) _Generic((v), float: sqrtf, double: sqrt)(v)
#define ml_tanh(v) _Generic((v), float: tanhf, double: tanh)(v)
#define ml_erf(v) _Generic((v), float: erff, double: erf)(v)
#define ml_sin(v) _Generic((v), float: sinf, double: sin)(v)
#define ml_cos(v) _Generic((v), float: cosf, double: cos)(v)
/* a to the power b (named so as not to clash with the op ml_pow of ops/) */
#define ml_power(a, b) _Generic((a), float: powf, double: pow)(a, b)

/* |v|; unsigned values are their own */
static inline int64_t ml_abs_i64(int64_t v) { return v < 0 ? -v : v; }
static inline uint8_t ml_abs_u8(uint8_t v) { return v; }
#define ml_abs(v) \
    _Generic((v), float: fabsf, double: fabs, int64_t: ml_abs_i64, uint8_t: ml_abs_u8)(v)

/* -1, 0 or 1 (0 for NaN, as torch.sign) */
static inline float ml_sign_f32(float v) { return (float)((v > 0) - (v < 0)); }
static inline double ml_sign_f64(double v) { return (double)((v > 0) - (v < 0)); }
static inline int64_t ml_sign_i64(int64_t v) { return (v > 0) - (v < 0); }
static inline uint8_t ml_sign_u8(uint8_t v) { return v > 0; }
#define ml_sign(v)                                                                        \
    _Generic((v), float: ml_sign_f32, double: ml_sign_f64, int64_t: ml_sign_i64,          \
             uint8_t: ml_sign_u8)(v)

/* 1 for a NaN; integers never are (so `ml_isnan(a) || ...` serves every type) */
static inline int ml_isnan_f32(float v) { return v != v; }
static inline int ml_isnan_f64(double v) { return v != v; }
static inline int ml_isnan_i64(int64_t v) { return (void)v, 0; }
static inline int ml_isnan_u8(uint8_t v) { return (void)v, 0; }
#define ml_isnan(v)                                                                       \
    _Generic((v), float: ml_isnan_f32, double: ml_isnan_f64, int64_t: ml_isnan_i64,       \
             uint8_t: ml_isnan_u8)(v)

/* 1 for +-inf; integers never are */
static inline int ml_isinf_f32(float v) { return isinf(v) != 0; }
static inline int ml_isinf_f64(double v) { return isinf(v) != 0; }
static inline int ml_isinf_i64(int64_t v) { return (void)v, 0; }
static inline int ml_isinf_u8(uint8_t v) { return (void)v, 0; }
#define ml_isinf(v)                                                                       \
    _Generic((v), float: ml_isinf_f32, double: ml_isinf_f64, int64_t: ml_isinf_i64,       \
             uint8_t: ml_isinf_u8)(v)

/* floor(a / b) as torch.floor_divide (Python's //): for floats the quotient of the
 * exact remainder, so that a == b * q + fmod(a, b) holds where it can, and IEEE's
 * inf/NaN for b == 0; for integers truncation corrected towards -inf. An integer
 * b == 0 gives 0 (ops/ reports that division as an error before any kernel runs),
 * and INT64_MIN / -1 wraps instead of trapping. kernels/common.cuh: the same. */
static inline float ml_floordiv_f32(float a, float b) {
    if (b == 0) return a / b;
    const float mod = fmodf(a, b);
    float div = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) div -= 1;
    if (div == 0) return copysignf(0.0f, a / b);
    float q = floorf(div);
    if (div - q > 0.5f) q += 1;
    return q;
}
static inline double ml_floordiv_f64(double a, double b) {
    if (b == 0) return a / b;
    const double mod = fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) div -= 1;
    if (div == 0) return copysign(0.0, a / b);
    double q = floor(div);
    if (div - q > 0.5) q += 1;
    return q;
}
static inline int64_t ml_floordiv_i64(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    const int64_t q = a / b, r = a % b;
    return r != 0 && (r < 0) != (b < 0) ? q - 1 : q;
}
static inline uint8_t ml_floordiv_u8(uint8_t a, uint8_t b) { return b == 0 ? 0 : a / b; }
#define ml_floordiv(a, b)                                                                 \
    _Generic((a), float: ml_floordiv_f32, double: ml_floordiv_f64, int64_t: ml_floordiv_i64, \
             uint8_t: ml_floordiv_u8)(a, b)

#endif
