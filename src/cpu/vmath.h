/* Vectorisable float math for the CPU kernels. glibc's expf is a library call the
 * compiler cannot vectorise (without -ffast-math), which made exp, sigmoid and
 * softmax several times slower than a memory-bound loop. */
#ifndef ML_CPU_VMATH_H
#define ML_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

/* e^x for float32, within 2 ulp of expf over the whole range (Cephes' polynomial
 * after the reduction x = n ln2 + r, |r| <= ln2 / 2); overflows to inf above
 * ~88.72, gives subnormals and 0 below -87.3 as expf does, and keeps NaN. Written
 * without calls or branches so that a loop over it vectorises. */
/* Cephes' polynomial for e^r on |r| <= ln2 / 2: the one every float exp of the CPU
 * kernels shares (ml_expf here, loss.c's variants). */
static inline float ml_exp_poly(float r) {
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r + 1.0f;
}

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

/* The lanes of the first n (<= 16) elements. */
static inline __mmask16 ml_mask16(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}
#endif

#endif
