/* CPU kernels of the pool family (contract: src/backend/pool.h): planes spread over
 * the threads, each plane's loops in pool_t.h per float type. MaxPool2d(2) (kernel
 * 2, stride 2, whole windows) has its own loop, and in float32 an AVX-512 path
 * beside it (tests/lua/pool_paths_spec.lua compares the paths). */
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"

typedef struct {
    const ml_pool_geom *g;
    const void *in;   /* x, or g for backward */
    void *out;        /* y, or gx */
    int64_t *idx;     /* max pooling's positions */
} pool_job;

#define T float
#define SUFFIX f32
#include "pool_t.h"
#undef T
#undef SUFFIX

#define T double
#define SUFFIX f64
#include "pool_t.h"
#undef T
#undef SUFFIX

#if defined(__AVX512F__)
#include <immintrin.h>

/* MaxPool2d(2) in float32 with AVX-512: each output row 16 windows at a time, the
 * two input rows' 32 floats loaded (masked) and split into even and odd columns by
 * permutes, then the comparisons of max_forward_2x2_f32 as mask blends (the same
 * order, the same NaN rule: a NaN wins, the last one); positions as int32 codes
 * widened to int64. The plain loop's rows of 14 were mostly its scalar tail. Needs
 * h * w < 2^31 (the int32 positions). */
static void max_forward_2x2_avx512(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t p = p0; p < p1; p++) {
        const float *x = (const float *)j->in + p * H * W;
        float *y = (float *)j->out + p * OH * OW;
        int64_t *idx = j->idx ? j->idx + p * OH * OW : NULL;
        for (int64_t oy = 0; oy < OH; oy++) {
            const float *r0 = x + 2 * oy * W, *r1 = r0 + W;
            for (int64_t ox = 0; ox < OW; ox += 16) {
                const int64_t n = OW - ox < 16 ? OW - ox : 16, n2 = 2 * n;
                const __mmask16 mlo = (__mmask16)(n2 >= 16 ? 0xffff : (1u << n2) - 1);
                const __mmask16 mhi = (__mmask16)(n2 > 16 ? (1u << (n2 - 16)) - 1 : 0);
                const __mmask16 mo = (__mmask16)(n == 16 ? 0xffff : (1u << n) - 1);
                const __m512 lo0 = _mm512_maskz_loadu_ps(mlo, r0 + 2 * ox);
                const __m512 hi0 = _mm512_maskz_loadu_ps(mhi, r0 + 2 * ox + 16);
                const __m512 lo1 = _mm512_maskz_loadu_ps(mlo, r1 + 2 * ox);
                const __m512 hi1 = _mm512_maskz_loadu_ps(mhi, r1 + 2 * ox + 16);
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
                code = _mm512_mask_blend_epi32(t, code, _mm512_set1_epi32((int)W));
                t = _mm512_cmp_ps_mask(d, mv, _CMP_GT_OQ) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
                mv = _mm512_mask_blend_ps(t, mv, d);
                code = _mm512_mask_blend_epi32(t, code, _mm512_set1_epi32((int)W + 1));
                _mm512_mask_storeu_ps(y + oy * OW + ox, mo, mv);
                if (!idx) continue;
                const __m512i pos = _mm512_add_epi32(
                    _mm512_add_epi32(code, lane2), _mm512_set1_epi32((int)(2 * oy * W + 2 * ox)));
                _mm512_mask_storeu_epi64(idx + oy * OW + ox, (__mmask8)mo,
                                         _mm512_cvtepi32_epi64(_mm512_castsi512_si256(pos)));
                _mm512_mask_storeu_epi64(idx + oy * OW + ox + 8, (__mmask8)(mo >> 8),
                                         _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(pos, 1)));
            }
        }
    }
}
#define MAX_2X2_F32 max_forward_2x2_avx512
#define MAX_2X2_F32_FITS(g) ((g)->h * (g)->w < ((int64_t)1 << 31))
#else
#define MAX_2X2_F32 max_forward_2x2_f32
#define MAX_2X2_F32_FITS(g) true
#endif

/* fn over the planes (one-plane blocks, contiguous runs per thread: balanced for
 * a few planes too), on several threads once the elements touched reach ML_PAR_MIN */
static int run_planes(const ml_tensor *t, const ml_pool_geom *g, ml_block_fn f32,
                      ml_block_fn f64, pool_job *j) {
    if (t->dtype != ML_F32 && t->dtype != ML_F64)
        return ml_error_set("pool: needs float32 or float64 tensors, got %s", ml_dtype_name(t->dtype));
    const int64_t planes = g->n * g->c, per = g->h * g->w + g->oh * g->ow;
    ml_parallel_blocks(planes, 1, ML_PAR_MIN / (per > 0 ? per : 1) + 1, t->dtype == ML_F32 ? f32 : f64, j);
    return 0;
}

static bool is_2x2(const ml_pool_geom *g) {
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
           g->dh == 1 && g->dw == 1 && g->oh == g->h / 2 && g->ow == g->w / 2;
}

static int cpu_pool_max_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y,
                                ml_tensor *idx) {
    pool_job j = {g, ml_data(x), ml_data(y), idx ? ml_data(idx) : NULL};
    if (is_2x2(g) && MAX_2X2_F32_FITS(g)) return run_planes(x, g, MAX_2X2_F32, max_forward_2x2_f64, &j);
    if (is_2x2(g)) return run_planes(x, g, max_forward_2x2_f32, max_forward_2x2_f64, &j);
    return run_planes(x, g, max_forward_planes_f32, max_forward_planes_f64, &j);
}

static int cpu_pool_max_backward(const ml_tensor *gy, const ml_tensor *idx, const ml_pool_geom *g,
                                 ml_tensor *gx) {
    pool_job j = {g, ml_data(gy), ml_data(gx), ml_data(idx)};
    return run_planes(gy, g, max_backward_planes_f32, max_backward_planes_f64, &j);
}

static int cpu_pool_avg_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y) {
    pool_job j = {g, ml_data(x), ml_data(y), NULL};
    return run_planes(x, g, avg_forward_planes_f32, avg_forward_planes_f64, &j);
}

static int cpu_pool_avg_backward(const ml_tensor *gy, const ml_pool_geom *g, ml_tensor *gx) {
    pool_job j = {g, ml_data(gy), ml_data(gx), NULL};
    return run_planes(gy, g, avg_backward_planes_f32, avg_backward_planes_f64, &j);
}

static int cpu_pool_adaptive_avg_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y) {
    pool_job j = {g, ml_data(x), ml_data(y), NULL};
    return run_planes(x, g, adaptive_forward_planes_f32, adaptive_forward_planes_f64, &j);
}

static int cpu_pool_adaptive_avg_backward(const ml_tensor *gy, const ml_pool_geom *g,
                                          ml_tensor *gx) {
    pool_job j = {g, ml_data(gy), ml_data(gx), NULL};
    return run_planes(gy, g, adaptive_backward_planes_f32, adaptive_backward_planes_f64, &j);
}

const ml_pool_ops ml_cpu_pool = {ML_POOL_ENTRIES(ML_BACKEND_ENTRY, cpu_pool_)};
