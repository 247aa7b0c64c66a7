/* Small float32 products without OpenBLAS: at the MLP's small layers (a few
 * hundred thousand multiply-adds) OpenBLAS's dispatch, packing and its beta = 1
 * path cost as much as the product. One pass, single-threaded, bias fused.
 *
 * Row-major C [m, n] = alpha * op(A) @ op(B) + (bias ? bias (broadcast over rows)
 * : beta * C), with op() a transpose when ta / tb: A is [m, k] (lda) or, with ta,
 * [k, m]; B is [k, n] (ldb) or, with tb, [n, k]. beta == 0 never reads C. Floats
 * accumulate in float, in order of k, as sgemm does. */
#ifndef ML_CPU_SMALL_GEMM_H
#define ML_CPU_SMALL_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/* B given as [n, k] is transposed a block of ML_SMALL_GEMM_KBLOCK rows of k at a
 * time (a stack buffer of k x 64 floats, 32 KiB); longer sums go block by block. */
#define ML_SMALL_GEMM_KBLOCK 128

static inline bool ml_small_sgemm_fits(int64_t m, int64_t n, int64_t k) {
    return m > 0 && n > 0 && k > 0;
}

/* Where the kernel beats single-threaded OpenBLAS (Zen 4, hot caches; cpu_gemm
 * calls it for a whole product or for each thread's slice of one): at least 32
 * rows, a last vector of C at least 9 of 16 wide (n = 1..8 or 20 wastes lanes that
 * OpenBLAS does not), and up to 32M multiply-adds (no cache blocking beyond a
 * 64-column panel and, for B transposed, 128 rows of k). Then
 *  - B transposed (nn.Linear's weight, [n, k]) at any size: [128, 32] x [10, 32]^T
 *    1.48 vs 2.05 us, [128, 64] x [32, 64]^T 5.1 vs 6.3 us, a thread's share of the
 *    MLP's first layer, [64, 784] x [64, 784]^T, 62 vs 73 us;
 *  - the other layouts from 1M multiply-adds (the first layer's weight gradient
 *    g^T x, a thread's [128, 64]^T x [128, 400]: 61 vs 69 us; [256, 256, 256]
 *    nn 299 vs 330 us); below that OpenBLAS's small-matrix kernels are as fast or
 *    faster (nn [128, 64] x [32, 64]: 5.5 vs 5.2 us). */
static inline bool ml_small_sgemm_pays(bool tb, int64_t m, int64_t n, int64_t k) {
    const double mnk = (double)m * (double)n * (double)k;
    if (!ml_small_sgemm_fits(m, n, k) || m < 32 || !(n % 16 == 0 || n % 16 > 8) || mnk > 32e6)
        return false;
    return tb || mnk >= 1e6;
}

/* Both need ml_small_sgemm_fits(m, n, k). The products of matmul.c and conv.c use
 * the AVX-512 kernel where the CPU has it and OpenBLAS elsewhere.
 *
 * Plain C that the compiler vectorises, on any machine: the reference the AVX-512
 * kernel is tested against. Not used for the products: this file is built for the
 * baseline x86-64 (SSE2) in the portable build, where it ran 2.3x the instructions
 * of the same code built for AVX2 (callgrind, the reference experiment on a CPU
 * without AVX-512), and it was never measured against OpenBLAS's own AVX2 kernels. */
void ml_small_sgemm_generic(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float *a, int64_t lda, const float *b, int64_t ldb,
                            float beta, float *c, int64_t ldc, const float *bias);

/* Whether the two AVX-512 kernels below run here (the build and the CPU have it) */
bool ml_small_sgemm_available(void);

/* AVX-512 intrinsics; false (nothing done) where the build or the CPU lacks them */
bool ml_small_sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b, int64_t ldb,
                           float beta, float *c, int64_t ldc, const float *bias);

/* A product whose B is never stored: its rows are planes read at a shift, as a
 * convolution of stride 1 whose output is as wide as its input sees its input
 * (conv.c: the forward reads x's planes, the input gradient g's). Row
 * k = p taps + t of B [planes taps, n] is plane p (x + p plane_stride) read at
 * column q + shift[t] where bit q % 16 of mask[t nvec + q / 16] is set, and 0
 * where it is clear (nvec = (n + 15) / 16; bits from column n on clear). A clear
 * bit's element is never read: the shifts may reach before or past the planes. */
typedef struct {
    const float *x;
    int64_t planes, plane_stride, taps, nvec;
    const int64_t *shift;  /* [taps] */
    const uint16_t *mask;  /* [taps][nvec] */
} ml_shifted_planes;

/* C [m, n] (row stride ldc) = A [m, planes taps] (row stride lda) @ B, plus bias[i]
 * on row i when bias is not NULL; each element summed in order of k from 0, as
 * ml_small_sgemm_avx512 sums the same product from a stored B (the same bits).
 * AVX-512 only: false (nothing done) where the build or the CPU lacks it. */
bool ml_small_sgemm_shifted(int64_t m, int64_t n, const float *a, int64_t lda,
                            const ml_shifted_planes *b, float *c, int64_t ldc, const float *bias);

/* An A never stored, whose rows are windows of zero-padded planes: a convolution's
 * col as the weight gradient (col @ g^T) reads it. Row r = p taps + t of A
 * [m, rows cols] is plane p (x + p plane_stride) from offset[t] on, walked as
 * rows x cols elements a row_stride apart: A(r, y cols + x) = x[p plane_stride +
 * offset[t] + y row_stride + x]. */
typedef struct {
    const float *x;
    int64_t plane_stride, taps, rows, cols, row_stride;
    const int64_t *offset; /* [taps] */
} ml_window_rows;

/* C [m, n] (row stride ldc) = A @ B [rows cols, n] (row stride ldb) + beta C, each
 * element summed in order of k from 0 and then added to beta C (beta 0: C not
 * read). AVX-512 only: false (nothing done) where the build or the CPU lacks it. */
bool ml_small_sgemm_windows(int64_t m, int64_t n, const ml_window_rows *a, const float *b,
                            int64_t ldb, float beta, float *c, int64_t ldc);

/* dst [cols, rows] (row stride ldd) = src [rows, cols] (row stride lds) transposed,
 * by 16 x 16 blocks in registers. AVX-512 only: false (nothing done) elsewhere. */
bool ml_transpose_f32(const float *src, int64_t rows, int64_t cols, int64_t lds, float *dst,
                      int64_t ldd);

#endif
