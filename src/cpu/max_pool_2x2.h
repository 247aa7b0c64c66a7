/* One output row of a 2 x 2, stride 2 max pooling in float32 with AVX-512, shared
 * by MaxPool2d(2) (pool.c) and batch norm + MaxPool2d(2) (batchnorm_t.h). Include
 * where __AVX512F__ is defined. */
#ifndef ML_CPU_MAX_POOL_2X2_H
#define ML_CPU_MAX_POOL_2X2_H

#include <immintrin.h>
#include <stdint.h>

/* The windows of input rows r0 and r0 + w (w columns each) into y [ow] and, when
 * idx is not NULL, their positions base + offset in the plane into idx [ow], when
 * codes is not NULL the window-local ones (0 1 / 2 3) into codes [ow];
 * affine non-NULL: each element is first mapped to x * affine[0] + affine[1] (a
 * multiply, then an add: batch norm's y). 16 windows at a time: the two rows' 32
 * floats loaded (masked) and split into even and odd columns by permutes, then the
 * comparisons of pool_t.h's max_forward_2x2 as mask blends (the same order, the
 * same NaN rule: a NaN wins, the last one); positions as int32 codes widened to
 * int64 (base + 2 w < 2^31). The plain loop's rows of 14 were mostly its scalar
 * tail. */
static inline void ml_max_pool_2x2_row(const float *r0, int64_t w, int64_t ow, int64_t base,
                                       const float *affine, float *y, int64_t *idx,
                                       uint8_t *codes) {
    const float *r1 = r0 + w;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512 va = _mm512_set1_ps(affine ? affine[0] : 1.0f);
    const __m512 vb = _mm512_set1_ps(affine ? affine[1] : 0.0f);
    for (int64_t ox = 0; ox < ow; ox += 16) {
        const int64_t n = ow - ox < 16 ? ow - ox : 16, n2 = 2 * n;
        const __mmask16 mlo = (__mmask16)(n2 >= 16 ? 0xffff : (1u << n2) - 1);
        const __mmask16 mhi = (__mmask16)(n2 > 16 ? (1u << (n2 - 16)) - 1 : 0);
        const __mmask16 mo = (__mmask16)(n == 16 ? 0xffff : (1u << n) - 1);
        __m512 lo0 = _mm512_maskz_loadu_ps(mlo, r0 + 2 * ox);
        __m512 hi0 = _mm512_maskz_loadu_ps(mhi, r0 + 2 * ox + 16);
        __m512 lo1 = _mm512_maskz_loadu_ps(mlo, r1 + 2 * ox);
        __m512 hi1 = _mm512_maskz_loadu_ps(mhi, r1 + 2 * ox + 16);
        if (affine) {
            lo0 = _mm512_add_ps(_mm512_mul_ps(lo0, va), vb);
            hi0 = _mm512_add_ps(_mm512_mul_ps(hi0, va), vb);
            lo1 = _mm512_add_ps(_mm512_mul_ps(lo1, va), vb);
            hi1 = _mm512_add_ps(_mm512_mul_ps(hi1, va), vb);
        }
        const __m512 a = _mm512_permutex2var_ps(lo0, even, hi0);
        const __m512 b = _mm512_permutex2var_ps(lo0, odd, hi0);
        const __m512 c = _mm512_permutex2var_ps(lo1, even, hi1);
        const __m512 d = _mm512_permutex2var_ps(lo1, odd, hi1);
        __m512 mv = a;
        __m512i code = _mm512_setzero_si512();
        __mmask16 t = _mm512_cmp_ps_mask(b, mv, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
        mv = _mm512_mask_blend_ps(t, mv, b);
        code = _mm512_mask_blend_epi32(t, code, _mm512_set1_epi32(1));
        t = _mm512_cmp_ps_mask(c, mv, _CMP_GT_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q);
        mv = _mm512_mask_blend_ps(t, mv, c);
        code = _mm512_mask_blend_epi32(t, code, _mm512_set1_epi32((int)w));
        t = _mm512_cmp_ps_mask(d, mv, _CMP_GT_OQ) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
        mv = _mm512_mask_blend_ps(t, mv, d);
        code = _mm512_mask_blend_epi32(t, code, _mm512_set1_epi32((int)w + 1));
        _mm512_mask_storeu_ps(y + ox, mo, mv);
        if (codes) { /* 0, 1, w, w + 1 as 0, 1, 2, 3 */
            const __mmask16 bottom = _mm512_cmpge_epi32_mask(code, _mm512_set1_epi32((int)w));
            const __m512i local = _mm512_mask_sub_epi32(code, bottom, code, _mm512_set1_epi32((int)w - 2));
            _mm512_mask_cvtepi32_storeu_epi8(codes + ox, mo, local);
        }
        if (!idx) continue;
        const __m512i pos = _mm512_add_epi32(_mm512_add_epi32(code, even),
                                             _mm512_set1_epi32((int)(base + 2 * ox)));
        _mm512_mask_storeu_epi64(idx + ox, (__mmask8)mo,
                                 _mm512_cvtepi32_epi64(_mm512_castsi512_si256(pos)));
        _mm512_mask_storeu_epi64(idx + ox + 8, (__mmask8)(mo >> 8),
                                 _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(pos, 1)));
    }
}

#endif
