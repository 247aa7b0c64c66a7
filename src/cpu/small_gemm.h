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

/* the largest m * n * k and k the small kernel takes (k bounds its stack buffer:
 * k x 64 floats, 32 KiB) */
#define ML_SMALL_GEMM_MNK (320 * 1024)
#define ML_SMALL_GEMM_KMAX 128

static inline bool ml_small_sgemm_fits(int64_t m, int64_t n, int64_t k) {
    return m > 0 && n > 0 && k > 0 && k <= ML_SMALL_GEMM_KMAX &&
           (double)m * (double)n * (double)k <= (double)ML_SMALL_GEMM_MNK;
}

/* Where the kernel beats OpenBLAS (single-threaded, Zen 4, B transposed as
 * nn.Linear's weight is): enough rows to pay for transposing B (m >= 32), short
 * sums (k <= ML_SMALL_GEMM_KMAX = 128; beyond, OpenBLAS's kernels win at small n),
 * and a last vector of C at least 9 of 16 wide (n = 1..8 or 20 wastes lanes that
 * OpenBLAS does not).
 * E.g. [128, 32] x [10, 32]^T 1.35 vs 1.96 us, [128, 64] x [32, 64]^T 5.0 vs 6.3 us.
 * For the nn and tn layouts OpenBLAS's small-matrix kernels are as fast. */
static inline bool ml_small_sgemm_pays(int64_t m, int64_t n, int64_t k) {
    return ml_small_sgemm_fits(m, n, k) && m >= 32 && (n % 16 == 0 || n % 16 > 8);
}

/* Both need ml_small_sgemm_fits(m, n, k). ml_small_sgemm takes the best path for
 * this CPU; the two below are that choice made by hand (for the tests). */
void ml_small_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                    float *c, int64_t ldc, const float *bias);

/* plain C that the compiler vectorises: any machine */
void ml_small_sgemm_generic(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float *a, int64_t lda, const float *b, int64_t ldb,
                            float beta, float *c, int64_t ldc, const float *bias);

/* AVX-512 intrinsics; false (nothing done) where the build or the CPU lacks them */
bool ml_small_sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b, int64_t ldb,
                           float beta, float *c, int64_t ldc, const float *bias);

#endif
