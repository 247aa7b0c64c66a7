/* Small float32 products (see small_gemm.h). C is cut into panels of up to 64
 * columns and each panel into tiles of R rows; a tile's R x (up to 4 vectors of 16)
 * sums stay in registers over all of k, so C is written once, bias added on the
 * way out. B is read as [k, n] rows: as stored (nn, tn), or, when given as [n, k]
 * (nt: nn.Linear's weight), transposed panel by panel into a buffer first (16 x 16
 * blocks in registers). A is read one broadcast element at a time, so its
 * transpose (tn: the weight gradient g^T @ x) costs nothing. */
#include "small_gemm.h"

#include <string.h>

#include "capability.h"

#if defined(__AVX512F__)
#define ML_SMALL_AVX512 1
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* the portable build (this file is compiled once, not per ISA level): the kernel is
 * compiled for AVX-512 all the same and chosen at run time when the CPU backend
 * runs at that level (capability.h) */
#define ML_SMALL_AVX512 1
#define ML_SMALL_AVX512_RUNTIME 1
#endif

#if ML_SMALL_AVX512
#include <immintrin.h>
#endif

#define PANEL 64 /* columns of C per panel: 4 vectors */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* --- plain C --- */

/* rows of up to 4 by 16 columns; B's 16 columns packed (zero-padded) as [k][16] */
#define GR 4
#define GW 16

void ml_small_sgemm_generic(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float *a, int64_t lda, const float *b, int64_t ldb,
                            float beta, float *c, int64_t ldc, const float *bias) {
    if (k > ML_SMALL_GEMM_KBLOCK) { /* by blocks of k, each added onto C */
        for (int64_t p0 = 0; p0 < k; p0 += ML_SMALL_GEMM_KBLOCK) {
            const int64_t kc = min64(ML_SMALL_GEMM_KBLOCK, k - p0);
            ml_small_sgemm_generic(ta, tb, m, n, kc, alpha, a + p0 * (ta ? lda : 1), lda,
                                   b + p0 * (tb ? 1 : ldb), ldb, p0 ? 1.0f : beta, c, ldc,
                                   p0 ? NULL : bias);
        }
        return;
    }
    float bp[ML_SMALL_GEMM_KBLOCK * GW] __attribute__((aligned(64)));
    const int64_t sai = ta ? 1 : lda, sak = ta ? lda : 1;
    for (int64_t j0 = 0; j0 < n; j0 += GW) {
        const int64_t nv = min64(GW, n - j0);
        for (int64_t p = 0; p < k; p++) {
            float *row = bp + p * GW;
            for (int64_t j = 0; j < nv; j++) row[j] = tb ? b[(j0 + j) * ldb + p] : b[p * ldb + j0 + j];
            for (int64_t j = nv; j < GW; j++) row[j] = 0.0f;
        }
        for (int64_t i = 0; i < m; i += GR) {
            const int64_t rr = min64(GR, m - i);
            const float *ar[GR];
            /* rows past m repeat the last one; their sums are not stored */
            for (int r = 0; r < GR; r++) ar[r] = a + min64(i + r, m - 1) * sai;
            float acc[GR][GW];
            memset(acc, 0, sizeof acc);
            for (int64_t p = 0; p < k; p++) {
                const float *bk = bp + p * GW;
                for (int r = 0; r < GR; r++) {
                    const float av = ar[r][p * sak];
#pragma omp simd
                    for (int j = 0; j < GW; j++) acc[r][j] += av * bk[j];
                }
            }
            for (int64_t r = 0; r < rr; r++) {
                float *cr = c + (i + r) * ldc + j0;
                for (int64_t j = 0; j < nv; j++) {
                    float x = alpha * acc[r][j];
                    if (bias) x += bias[j0 + j];
                    else if (beta != 0.0f) x += beta * cr[j];
                    cr[j] = x;
                }
            }
        }
    }
}

/* --- AVX-512 --- */

#if ML_SMALL_AVX512
#if ML_SMALL_AVX512_RUNTIME
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif

#define INLINE static inline __attribute__((always_inline))

/* r[t] := column t of the 16 x 16 block whose rows r held */
INLINE void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* each 128-bit lane l of r[4i + q]: column 4l + q of rows 4i .. 4i + 3 */
    for (int i = 0; i < 4; i++) {
        __m512d t0 = _mm512_castps_pd(t[4 * i]), t1 = _mm512_castps_pd(t[4 * i + 1]);
        __m512d t2 = _mm512_castps_pd(t[4 * i + 2]), t3 = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    /* then a 4 x 4 transpose of 128-bit lanes across r[q], r[4 + q], r[8 + q], r[12 + q] */
    __m512 o[16];
    for (int q = 0; q < 4; q++) {
        __m512 y0 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x44);
        __m512 y1 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xEE);
        __m512 y2 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x44);
        __m512 y3 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xEE);
        o[q] = _mm512_shuffle_f32x4(y0, y2, 0x88);
        o[4 + q] = _mm512_shuffle_f32x4(y0, y2, 0xDD);
        o[8 + q] = _mm512_shuffle_f32x4(y1, y3, 0x88);
        o[12 + q] = _mm512_shuffle_f32x4(y1, y3, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = o[i];
}

/* buf [k][ldp] := the w rows of b ([w, k], row stride ldb) transposed, columns
 * w .. ldp - 1 zero; ldp a multiple of 16 */
static void pack_transposed(const float *b, int64_t ldb, int64_t w, int64_t k, float *buf,
                            int64_t ldp) {
    for (int64_t jb = 0; jb < ldp; jb += 16) {
        for (int64_t pb = 0; pb < k; pb += 16) {
            const int64_t kc = min64(16, k - pb);
            const __mmask16 km = (__mmask16)((1u << kc) - 1u);
            __m512 r[16];
            for (int t = 0; t < 16; t++)
                r[t] = jb + t < w ? _mm512_maskz_loadu_ps(km, b + (jb + t) * ldb + pb)
                                  : _mm512_setzero_ps();
            transpose16(r);
            for (int64_t t = 0; t < kc; t++) _mm512_store_ps(buf + (pb + t) * ldp + jb, r[t]);
        }
    }
}

/* The next tile's rows of C (R rows of V vectors after the tile at c), fetched for
 * writing while this one computes: C is usually a fresh output whose lines left
 * the cache since their last use (a [128, 32] output from L3 cost 0.8 us of a 5 us
 * product). Rows past the end are harmless: a prefetch never faults. */
INLINE void prefetch_next_rows(const int R, const int V, const float *c, int64_t ldc) {
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
        const char *cn = (const char *)(c + (R + r) * ldc);
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) __builtin_prefetch(cn + 64 * v, 1, 3);
        __builtin_prefetch(cn + 64 * V - 4, 1, 3); /* a row that straddles one more line */
    }
}

/* One R x V tile: C[0 .. R, 0 .. 16 V] from A's rows (element (r, p) at a[r sai + p
 * sak]) and B's rows b + p ldb, the last vector masked by last. */
INLINE void tile(const int R, const int V, int64_t k, const float *a, int64_t sai, int64_t sak,
                 const float *b, int64_t ldb, __mmask16 last, float *c, int64_t ldc,
                 const float *bias, float alpha, float beta) {
    __m512 acc[12][4];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    prefetch_next_rows(R, V, c, ldc);
    for (int64_t p = 0; p < k; p++) {
        const float *bk = b + p * ldb;
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            bv[v] = v < V - 1 ? _mm512_loadu_ps(bk + 16 * v) : _mm512_maskz_loadu_ps(last, bk + 16 * v);
        const float *ap = a + p * sak;
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            const __m512 av = _mm512_set1_ps(ap[r * sai]);
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            const __mmask16 mk = v < V - 1 ? (__mmask16)0xFFFF : last;
            float *cp = c + r * ldc + 16 * v;
            __m512 x = alpha == 1.0f ? acc[r][v] : _mm512_mul_ps(va, acc[r][v]);
            if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, bias + 16 * v));
            else if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, cp), x);
            _mm512_mask_storeu_ps(cp, mk, x);
        }
    }
}

/* A panel function, NAME_V: all m rows of one panel V vectors wide, in tiles of up
 * to RMAX rows, each tile TILE(r) for its r rows (TILE is defined before each family
 * and sees i, the tile's first row, and V); PARAMS the parameter list (m first).
 * Not inlined into the callers: there gcc kept the row pointers on the stack. */
#define TILE_CASE(r) case r: TILE(r); break;
#define CASES_6 TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
#define CASES_8 CASES_6 TILE_CASE(7) TILE_CASE(8)
#define CASES_12 CASES_8 TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
#define PANEL_FN(NAME, V_, RMAX, PARAMS)                                                   \
    static __attribute__((noinline)) void NAME##_##V_ PARAMS {                             \
        enum { V = V_ };                                                                   \
        for (int64_t i = 0; i < m; i += RMAX) {                                            \
            switch ((int)min64(RMAX, m - i)) { CASES_##RMAX }                              \
        }                                                                                  \
    }

/* The last panel vector's mask for a panel w columns wide (nvec vectors) */
static inline __mmask16 panel_last(int64_t w, int *nvec) {
    *nvec = (int)((w + 15) / 16);
    return (__mmask16)((1u << (w - 16 * (*nvec - 1))) - 1u);
}

#define TILE(r) tile(r, V, k, a + i * sai, sai, sak, b, ldb, last, c + i * ldc, ldc, bias, alpha, beta)
#define PANEL_PARAMS                                                                        \
    (int64_t m, int64_t k, const float *a, int64_t sai, int64_t sak, const float *b,       \
     int64_t ldb, __mmask16 last, float *c, int64_t ldc, const float *bias, float alpha,   \
     float beta)
PANEL_FN(panel, 1, 8, PANEL_PARAMS)
PANEL_FN(panel, 2, 12, PANEL_PARAMS)
PANEL_FN(panel, 3, 8, PANEL_PARAMS)
PANEL_FN(panel, 4, 6, PANEL_PARAMS)
#undef TILE

static void avx512_run(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                       float *c, int64_t ldc, const float *bias) {
    float buf[ML_SMALL_GEMM_KBLOCK * PANEL] __attribute__((aligned(64)));
    const int64_t sai = ta ? 1 : lda, sak = ta ? lda : 1;
    /* B as [k, n] rows is read in place, over all of k at once. B given as [n, k]
     * is transposed into buf a block of k at a time, and each block's sums are
     * added onto C (the first block's with the bias or beta): a tile of C is then
     * re-read once a block, a few loads for 128 x 24 multiply-adds. */
    const int64_t kb = tb ? ML_SMALL_GEMM_KBLOCK : k;
    for (int64_t j0 = 0; j0 < n; j0 += PANEL) {
        const int64_t w = min64(PANEL, n - j0);
        int nvec;
        const __mmask16 last = panel_last(w, &nvec);
        for (int64_t p0 = 0; p0 < k; p0 += kb) {
            const int64_t kc = min64(kb, k - p0);
            const float *bp = b + j0, *ap = a + p0 * sak;
            int64_t ldp = ldb;
            if (tb) {
                ldp = 16 * nvec;
                pack_transposed(b + j0 * ldb + p0, ldb, w, kc, buf, ldp);
                bp = buf;
            }
            const float *bj = bias && p0 == 0 ? bias + j0 : NULL;
            const float be = p0 == 0 ? beta : 1.0f;
            switch (nvec) {
            case 1: panel_1(m, kc, ap, sai, sak, bp, ldp, last, c + j0, ldc, bj, alpha, be); break;
            case 2: panel_2(m, kc, ap, sai, sak, bp, ldp, last, c + j0, ldc, bj, alpha, be); break;
            case 3: panel_3(m, kc, ap, sai, sak, bp, ldp, last, c + j0, ldc, bj, alpha, be); break;
            default: panel_4(m, kc, ap, sai, sak, bp, ldp, last, c + j0, ldc, bj, alpha, be); break;
            }
        }
    }
}

/* --- B read from shifted planes (ml_small_sgemm_shifted) --- */

/* One R x V tile of a shifted product: C[0 .. R, 0 .. 16 V] for the columns j0 ..
 * of B. Row k = p taps + t of B is plane p at column q + shift[t] where its mask
 * bit is set: a masked load, whose cleared lanes are never read (the address
 * may lie before or past the planes there), so it is computed as an integer. */
INLINE void tile_shifted(const int R, const int V, const ml_shifted_planes *b, int64_t j0,
                         const float *a, int64_t lda, __mmask16 last, float *c, int64_t ldc,
                         const float *bias) {
    __m512 acc[12][4];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    prefetch_next_rows(R, V, c, ldc);
    const int64_t taps = b->taps, nvec = b->nvec;
    const uint16_t *panel_mask = b->mask + j0 / 16;
    uintptr_t plane = (uintptr_t)b->x + (uintptr_t)j0 * sizeof(float); /* j0 may pass the plane */
    const uintptr_t plane_bytes = (uintptr_t)(b->plane_stride * (int64_t)sizeof(float));
    for (int64_t p = 0; p < b->planes; p++, plane += plane_bytes) {
        const float *ap = a + p * taps;
        for (int64_t t = 0; t < taps; t++) {
            const uintptr_t src = plane + (uintptr_t)(b->shift[t] * (int64_t)sizeof(float));
            const uint16_t *mk = panel_mask + t * nvec;
            __m512 bv[4];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                bv[v] = _mm512_maskz_loadu_ps((__mmask16)mk[v], (const void *)(src + 64 * (uintptr_t)v));
#pragma GCC unroll 12
            for (int r = 0; r < R; r++) {
                const __m512 av = _mm512_set1_ps(ap[r * lda + t]);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
            }
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
        const __m512 br = _mm512_set1_ps(bias ? bias[r] : 0.0f);
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            const __mmask16 mk = v < V - 1 ? (__mmask16)0xFFFF : last;
            const __m512 x = bias ? _mm512_add_ps(acc[r][v], br) : acc[r][v];
            _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mk, x);
        }
    }
}

#define TILE(r) tile_shifted(r, V, b, j0, a + i * lda, lda, last, c + i * ldc + j0, ldc, bias ? bias + i : NULL)
#define SHIFTED_PARAMS                                                                      \
    (int64_t m, const ml_shifted_planes *b, int64_t j0, const float *a, int64_t lda,      \
     __mmask16 last, float *c, int64_t ldc, const float *bias)
PANEL_FN(shifted_panel, 1, 8, SHIFTED_PARAMS)
PANEL_FN(shifted_panel, 2, 12, SHIFTED_PARAMS)
PANEL_FN(shifted_panel, 3, 8, SHIFTED_PARAMS)
PANEL_FN(shifted_panel, 4, 6, SHIFTED_PARAMS)
#undef TILE

static void shifted_run(int64_t m, int64_t n, const float *a, int64_t lda,
                        const ml_shifted_planes *b, float *c, int64_t ldc, const float *bias) {
    for (int64_t j0 = 0; j0 < n; j0 += PANEL) {
        const int64_t w = min64(PANEL, n - j0);
        int nvec;
        const __mmask16 last = panel_last(w, &nvec);
        switch (nvec) {
        case 1: shifted_panel_1(m, b, j0, a, lda, last, c, ldc, bias); break;
        case 2: shifted_panel_2(m, b, j0, a, lda, last, c, ldc, bias); break;
        case 3: shifted_panel_3(m, b, j0, a, lda, last, c, ldc, bias); break;
        default: shifted_panel_4(m, b, j0, a, lda, last, c, ldc, bias); break;
        }
    }
}

/* dst [cols, rows] (row stride ldd) := src [rows, cols] (row stride lds)
 * transposed, 16 x 16 blocks in registers */
static void transpose_run(const float *src, int64_t rows, int64_t cols, int64_t lds, float *dst,
                          int64_t ldd) {
    for (int64_t i0 = 0; i0 < rows; i0 += 16) {
        const int64_t ni = min64(16, rows - i0);
        const __mmask16 mi = (__mmask16)((1u << ni) - 1u);
        for (int64_t j0 = 0; j0 < cols; j0 += 16) {
            const int64_t nj = min64(16, cols - j0);
            const __mmask16 mj = (__mmask16)((1u << nj) - 1u);
            __m512 r[16];
            for (int t = 0; t < 16; t++)
                r[t] = t < ni ? _mm512_maskz_loadu_ps(mj, src + (i0 + t) * lds + j0) : _mm512_setzero_ps();
            transpose16(r);
            for (int64_t t = 0; t < nj; t++) _mm512_mask_storeu_ps(dst + (j0 + t) * ldd + i0, mi, r[t]);
        }
    }
}

/* --- A read as windows of planes (ml_small_sgemm_windows) --- */

/* One R x V tile of a windows product: C[0 .. R, 0 .. 16 V] (+)= A's rows r0 .. r0 + R
 * @ B's columns. Each row's window is walked row by row; its elements are
 * broadcast from the plane, B's rows loaded whole. */
INLINE void tile_windows(const int R, const int V, const ml_window_rows *a, int64_t r0,
                         const float *b, int64_t ldb, __mmask16 last, float beta, float *c,
                         int64_t ldc) {
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    prefetch_next_rows(R, V, c, ldc);
    const float *ar[8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        ar[r] = a->x + (r0 + r) / a->taps * a->plane_stride + a->offset[(r0 + r) % a->taps];
    for (int64_t y = 0; y < a->rows; y++) {
        const int64_t ay = y * a->row_stride;
        const float *by = b + y * a->cols * ldb;
        for (int64_t x = 0; x < a->cols; x++) {
            const float *bk = by + x * ldb;
            __m512 bv[4];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                bv[v] = v < V - 1 ? _mm512_loadu_ps(bk + 16 * v) : _mm512_maskz_loadu_ps(last, bk + 16 * v);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const __m512 av = _mm512_set1_ps(ar[r][ay + x]);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
            }
        }
    }
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            const __mmask16 mk = v < V - 1 ? (__mmask16)0xFFFF : last;
            float *cp = c + r * ldc + 16 * v;
            __m512 x = acc[r][v];
            if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, cp), x);
            _mm512_mask_storeu_ps(cp, mk, x);
        }
    }
}

/* tiles of at most 8 rows: a row's window pointer each */
#define TILE(r) tile_windows(r, V, a, i, b + j0, ldb, last, beta, c + i * ldc + j0, ldc)
#define WINDOWS_PARAMS                                                                      \
    (int64_t m, const ml_window_rows *a, const float *b, int64_t ldb, int64_t j0,          \
     __mmask16 last, float beta, float *c, int64_t ldc)
PANEL_FN(windows_panel, 1, 8, WINDOWS_PARAMS)
PANEL_FN(windows_panel, 2, 8, WINDOWS_PARAMS)
PANEL_FN(windows_panel, 3, 6, WINDOWS_PARAMS)
PANEL_FN(windows_panel, 4, 6, WINDOWS_PARAMS)
#undef TILE

static void windows_run(int64_t m, int64_t n, const ml_window_rows *a, const float *b,
                        int64_t ldb, float beta, float *c, int64_t ldc) {
    for (int64_t j0 = 0; j0 < n; j0 += PANEL) {
        const int64_t w = min64(PANEL, n - j0);
        int nvec;
        const __mmask16 last = panel_last(w, &nvec);
        switch (nvec) {
        case 1: windows_panel_1(m, a, b, ldb, j0, last, beta, c, ldc); break;
        case 2: windows_panel_2(m, a, b, ldb, j0, last, beta, c, ldc); break;
        case 3: windows_panel_3(m, a, b, ldb, j0, last, beta, c, ldc); break;
        default: windows_panel_4(m, a, b, ldb, j0, last, beta, c, ldc); break;
        }
    }
}

#if ML_SMALL_AVX512_RUNTIME
#pragma GCC pop_options
#endif
#endif /* ML_SMALL_AVX512 */

static bool have_avx512(void) {
#if !ML_SMALL_AVX512
    return false;
#else
    return ml_cpu_capability() >= ML_CPU_AVX512;
#endif
}

bool ml_small_sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b, int64_t ldb,
                           float beta, float *c, int64_t ldc, const float *bias) {
    if (!have_avx512()) return false;
#if ML_SMALL_AVX512
    avx512_run(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
    return true;
#else
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b;
    (void)ldb, (void)beta, (void)c, (void)ldc, (void)bias;
    return false;
#endif
}

bool ml_small_sgemm_available(void) { return have_avx512(); }

bool ml_small_sgemm_shifted(int64_t m, int64_t n, const float *a, int64_t lda,
                            const ml_shifted_planes *b, float *c, int64_t ldc, const float *bias) {
    if (!have_avx512()) return false;
#if ML_SMALL_AVX512
    shifted_run(m, n, a, lda, b, c, ldc, bias);
    return true;
#else
    (void)m, (void)n, (void)a, (void)lda, (void)b, (void)c, (void)ldc, (void)bias;
    return false;
#endif
}

bool ml_small_sgemm_windows(int64_t m, int64_t n, const ml_window_rows *a, const float *b,
                            int64_t ldb, float beta, float *c, int64_t ldc) {
    if (!have_avx512()) return false;
#if ML_SMALL_AVX512
    windows_run(m, n, a, b, ldb, beta, c, ldc);
    return true;
#else
    (void)m, (void)n, (void)a, (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
    return false;
#endif
}

bool ml_transpose_f32(const float *src, int64_t rows, int64_t cols, int64_t lds, float *dst,
                      int64_t ldd) {
    if (!have_avx512()) return false;
#if ML_SMALL_AVX512
    transpose_run(src, rows, cols, lds, dst, ldd);
    return true;
#else
    (void)src, (void)rows, (void)cols, (void)lds, (void)dst, (void)ldd;
    return false;
#endif
}
