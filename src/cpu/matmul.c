/* CPU kernel of the matmul family, one call per batch item: small float32 products
 * with B transposed (nn.Linear's forward at the MLP's small layers, where
 * ml_small_sgemm_pays) by our own kernel (small_gemm.c, bias fused), everything
 * else by OpenBLAS sgemm/dgemm. There
 * nn.Linear's bias is copied into C's rows first and the product added onto them
 * (beta = 1): at small shapes OpenBLAS zeroing C and a second pass adding the bias
 * cost more, at [128, 784] x [64, 784]^T it is alike. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "../threads.h"
#include "small_gemm.h"

/* Every row of C[batch_index] set to the bias, for a beta = 1 product onto it. */
static void fill_bias_rows(const ml_gemm_args *g, int64_t batch_index) {
    const size_t es = ml_dtype_size(g->c->dtype), rb = (size_t)g->n * es;
    char *c = (char *)ml_data(g->c) + (size_t)(batch_index * g->stride_c) * es;
    const char *bias = ml_data(g->bias);
    for (int64_t i = 0; i < g->m; i++) memcpy(c + (size_t)(i * g->ldc) * es, bias, rb);
}

/* One product split across threads by hand: the larger of M and N is cut into one
 * slice per thread, each a single-threaded sgemm (OpenBLAS runs single-threaded
 * inside a parallel region). At the MLP's shapes (128 x 784 x 64) this reaches
 * about twice OpenBLAS's own two-thread rate, which splits such small products
 * poorly. Below ~4 MFLOP one call on one thread is faster. */
static int gemm_threads(const ml_gemm_args *g) {
    if (omp_in_parallel()) return 1;
    int nt = ml_team_threads(); /* 1 while the other cores are taken (threads.h) */
    double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    if (nt < 2 || flops < 4e6) return 1;
    return nt;
}

#define SLICED_GEMM(T, CBLAS_GEMM)                                                       \
    do {                                                                               \
        const T *A = (const T *)ml_data(g->a) + b * g->stride_a;                       \
        const T *B = (const T *)ml_data(g->b) + b * g->stride_b;                       \
        T *C = (T *)ml_data(g->c) + b * g->stride_c;                                   \
        int nt = gemm_threads(g);                                                      \
        /* each slice packs the whole operand it shares: split the longer side, so  \
         * the shared one is the smaller (grad_weight's [64, 784] = g^T x splits  \
         * its 784 columns: x, 400 KB, is not packed twice; 88-94 -> 94-98 % of   \
         * OpenBLAS's own two threads) */                                        \
        bool split_m = g->m >= g->n;                                                   \
        int64_t len = split_m ? g->m : g->n;                                           \
        /* slices of whole 16-element runs, so each starts aligned to a vector */      \
        int64_t chunk = ((len + nt - 1) / nt + 15) / 16 * 16;                          \
        if (nt == 1) { /* no libgomp at all: even an if(0) region costs a futex call */ \
            CBLAS_GEMM(CblasRowMajor, ta, tb, (blasint)g->m, (blasint)g->n, (blasint)g->k, \
                       (T)g->alpha, A, (blasint)g->lda, B, (blasint)g->ldb, (T)beta, C,  \
                       (blasint)g->ldc);                                               \
            break;                                                                     \
        }                                                                              \
        const double t0 = ml_clock_seconds();                                             \
        double own = 0;                                                                \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                   \
        for (int t = 0; t < nt; t++) {                                                 \
            int64_t lo = t * chunk, hi = lo + chunk < len ? lo + chunk : len;           \
            if (lo < hi) {                                                             \
                const T *a = A, *bb = B;                                               \
                T *c = C;                                                              \
                int64_t m = g->m, n = g->n;                                            \
                if (split_m) {                                                         \
                    a += g->trans_a ? lo : lo * g->lda;                                \
                    c += lo * g->ldc;                                                  \
                    m = hi - lo;                                                       \
                } else {                                                               \
                    bb += g->trans_b ? lo * g->ldb : lo;                               \
                    c += lo;                                                           \
                    n = hi - lo;                                                       \
                }                                                                      \
                CBLAS_GEMM(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)g->k, \
                           (T)g->alpha, a, (blasint)g->lda, bb, (blasint)g->ldb,       \
                           (T)beta, c, (blasint)g->ldc);                               \
            }                                                                          \
            if (t == 0) own = ml_clock_seconds() - t0; /* static: slice 0 is thread 0's */ \
        }                                                                              \
        ml_team_report(ml_clock_seconds() - t0, own);                                     \
    } while (0)

static int cpu_gemm(const ml_gemm_args *g) {
    if (g->a->dtype != g->c->dtype || g->b->dtype != g->c->dtype)
        return ml_error_set("matmul: dtypes %s and %s differ", ml_dtype_name(g->a->dtype),
                            ml_dtype_name(g->b->dtype));
    CBLAS_TRANSPOSE ta = g->trans_a ? CblasTrans : CblasNoTrans;
    CBLAS_TRANSPOSE tb = g->trans_b ? CblasTrans : CblasNoTrans;
    /* ours where it pays: B transposed (nn.Linear's weight) at the small shapes
     * small_gemm.h names, the bias then added as C is stored */
    const bool small = g->c->dtype == ML_F32 && g->trans_b && ml_small_sgemm_pays(g->m, g->n, g->k);
    for (int64_t b = 0; b < g->batch; b++) {
        double beta = g->beta;
        if (small) {
            ml_small_sgemm(g->trans_a, g->trans_b, g->m, g->n, g->k, (float)g->alpha,
                           (const float *)ml_data(g->a) + b * g->stride_a, g->lda,
                           (const float *)ml_data(g->b) + b * g->stride_b, g->ldb, (float)beta,
                           (float *)ml_data(g->c) + b * g->stride_c, g->ldc,
                           g->bias ? (const float *)ml_data(g->bias) : NULL);
            continue;
        }
        if (g->bias) { /* bias rows, the product added onto them */
            fill_bias_rows(g, b);
            beta = 1.0;
        }
        if (g->c->dtype == ML_F32) {
            SLICED_GEMM(float, cblas_sgemm);
        } else if (g->c->dtype == ML_F64) {
            SLICED_GEMM(double, cblas_dgemm);
        } else {
            return ml_error_set("matmul: needs float32 or float64 tensors, got %s",
                                ml_dtype_name(g->c->dtype));
        }
    }
    return 0;
}

const ml_matmul_ops ml_cpu_matmul = {.gemm = cpu_gemm};
