/* Vectorisable float math for the CPU kernels. glibc's expf is a library call the
 * compiler cannot vectorise (without -ffast-math), which made exp, sigmoid and
 * softmax several times slower than a memory-bound loop. */
#ifndef ML_CPU_VMATH_H
#define ML_CPU_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Cephes' polynomial for e^r on |r| <= ln2 / 2: the one every float exp of the CPU
 * kernels shares (ml_expf and the variants below). */
static inline float ml_exp_poly(float r) {
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r + 1.0f;
}

/* e^x for float32, within 2 ulp of expf over the whole range (Cephes' polynomial
 * after the reduction x = n ln2 + r, |r| <= ln2 / 2); overflows to inf above
 * ~88.72, gives subnormals and 0 below -87.3 as expf does, and keeps NaN. Written
 * without calls or branches so that a loop over it vectorises. */
static inline float ml_expf(float x) {
    float xc = x < -104.0f ? -104.0f : x;
    xc = xc > 89.0f ? 89.0f : xc;
    xc = x != x ? 0.0f : xc;
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (round to nearest, vectorises) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = ml_exp_poly(r);
    /* 2^n as two factors, so that n down to -150 (subnormal results) and up to 128
     * (overflow to inf) need no special case */
    int32_t ni = (int32_t)n;
    int32_t h = ni / 2;
    int32_t b1 = (h + 127) << 23, b2 = (ni - h + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = p * s1 * s2;
    return x != x ? x : y;
}

/* e^x for float32 as the loss kernels take it (src/cpu/loss_*.c): within 2 ulp of
 * expf on [-87.3, 88.4], 0 below (no subnormals: the exponent is built from bits
 * in one step), inf above, NaN kept. Vectorises. */
static inline float ml_expf_clamped(float x) {
    const float hi = 88.3762626647949f, lo = -87.3365478515625f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    xc = x != x ? 0.0f : xc; /* a NaN must not reach the int conversion (UB) */
    /* round to nearest by the 1.5 * 2^23 trick (floorf does not vectorise) */
    float k = xc * 1.44269504088896341f + 12582912.0f;
    k -= 12582912.0f;
    float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
    float p = ml_exp_poly(r);
    int32_t e = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    float y = p * scale;
    y = x < lo ? 0.0f : y;
    y = x > hi ? INFINITY : y;
    return x != x ? x : y;
}

/* ml_expf_clamped for x <= 0 (or NaN), what softmax's x - max and x - logsumexp
 * are (equal to it there): without the overflow clamp and the selects for inf
 * and NaN (NaN propagates through the arithmetic), three operations fewer on the
 * exp that dominates small rows. */
static inline float ml_expf_nonpos(float x) {
    const float lo = -87.3365478515625f;
    float xc = x < lo ? lo : x;
    xc = x != x ? 0.0f : xc; /* a NaN must not reach the int conversion (UB) */
    float k = xc * 1.44269504088896341f + 12582912.0f;
    k -= 12582912.0f;
    const float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
    float p = ml_exp_poly(r);
    const int32_t e = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    /* below lo: 0, NaN: x (a product and bit masks, not `?:`s, which kept gcc
     * from vectorising) */
    float y = p * scale * (float)(x >= lo);
    int32_t yb, xb;
    memcpy(&yb, &y, sizeof yb);
    memcpy(&xb, &x, sizeof xb);
    const int32_t nan = -(int32_t)(x != x);
    yb = (yb & ~nan) | (xb & nan);
    memcpy(&y, &yb, sizeof y);
    return y;
}

/* log for float32 that vectorises: Cephes' logf (x = m 2^e, m in [sqrt(1/2),
 * sqrt(2)), a degree-9 polynomial in m - 1), about 1 ulp from logf, for finite
 * x > 0 (the loss kernels pass row sums of exps, >= 1); NaN stays NaN. Selects are
 * written as arithmetic: a `?:` here kept gcc from vectorising the loops that
 * call it. */
static inline float ml_logf(float x) {
    int32_t ix;
    memcpy(&ix, &x, sizeof ix);
    int32_t e = ((ix >> 23) & 0xff) - 126;
    int32_t im = (ix & 0x007fffff) | 0x3f000000; /* m in [0.5, 1) */
    float m;
    memcpy(&m, &im, sizeof m);
    /* below sqrt(1/2): m -> 2m, e -> e - 1 (written as arithmetic so it vectorises) */
    const float lo = (float)(m < 0.707106781186547524f);
    m = m + m * lo - 1.0f;
    const float fe = (float)e - lo;
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    float r = m + y;
    r += 0.693359375f * fe;
    return r + (x - x); /* NaN stays NaN */
}

#if defined(__AVX512F__)
#include <immintrin.h>

/* e^x on 16 float lanes for x <= 0 (or NaN): what softmax's x - max gives. The
 * reduction and polynomial of ml_expf in AVX-512's own terms (vrndscaleps rounds,
 * vscalefps applies 2^n, so no integer tricks): about half the operations gcc makes
 * of ml_expf. Below -104 it gives 0; NaN stays NaN. */
static inline __m512 ml_exp16_nonpos(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* maxps keeps a NaN in x */
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(k, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, k);
}

/* ml_logf on 16 lanes (getexp / getmant for the split, the same polynomial), for
 * finite x > 0; NaN stays NaN. */
static inline __m512 ml_log16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = _mm512_add_ps(_mm512_getexp_ps(x), one);
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_src); /* [0.5, 1) */
    const __mmask16 lo = _mm512_cmp_ps_mask(m, _mm512_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
    m = _mm512_mask_add_ps(m, lo, m, m);
    e = _mm512_mask_sub_ps(e, lo, e, one);
    m = _mm512_sub_ps(m, one);
    const __m512 z = _mm512_mul_ps(m, m);
    __m512 y = _mm512_set1_ps(7.0376836292e-2f);
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(-1.1514610310e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(1.1676998740e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(-1.2420140846e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(1.4249322787e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(-1.6668057665e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(2.0000714765e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(-2.4999993993e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(3.3333331174e-1f));
    y = _mm512_mul_ps(_mm512_mul_ps(y, m), z);
    y = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), y);
    y = _mm512_fmadd_ps(z, _mm512_set1_ps(-0.5f), y);
    __m512 r = _mm512_add_ps(m, y);
    return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), r);
}

/* The lanes of the first n (<= 16) elements. */
static inline __mmask16 ml_mask16(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}
#endif

#endif
