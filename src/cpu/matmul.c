/* CPU kernel of the matmul family, one call per batch item. A product big enough
 * is split across the threads by hand, one slice of C per thread; each slice (or a
 * small product whole) is computed by our own float32 kernel (small_gemm.c, bias
 * fused) where ml_small_sgemm_pays says it beats OpenBLAS, else by OpenBLAS
 * sgemm/dgemm on one thread. For OpenBLAS, nn.Linear's bias is copied into C's
 * rows first and the product added onto them (beta = 1): at small shapes OpenBLAS
 * zeroing C and a second pass adding the bias cost more. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "../threads.h"
#include "small_gemm.h"

/* The threads for one product. By hand, the larger of M and N is cut into one
 * slice per thread, each a single-threaded call (OpenBLAS runs single-threaded
 * inside a parallel region): at the MLP's shapes (128 x 784 x 64) OpenBLAS's own
 * threads reach about half that rate, as they split such small products poorly.
 * Below ~4 MFLOP one call on one thread is faster. */
static int gemm_threads(const ml_gemm_args *g) {
    if (omp_in_parallel()) return 1;
    int nt = ml_team_threads(); /* 1 while the other cores are taken (threads.h) */
    double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    if (nt < 2 || flops < 4e6) return 1;
    return nt;
}

/* m rows of n elements of C (row stride ldc) set to the bias (n elements). */
static void fill_bias_rows(char *c, int64_t ldc, const char *bias, int64_t m, int64_t n,
                           size_t es) {
    for (int64_t i = 0; i < m; i++) memcpy(c + (size_t)(i * ldc) * es, bias, (size_t)n * es);
}

#define BLAS_SLICE(T, CBLAS_GEMM)                                                        \
    CBLAS_GEMM(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,                     \
               g->trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,            \
               (blasint)g->k, (T)g->alpha, (const T *)a, (blasint)g->lda, (const T *)b,   \
               (blasint)g->ldb, (T)beta, (T *)c, (blasint)g->ldc)

/* Rows (split_m) or columns [lo, hi) of C for batch item `item`, on this thread. */
static void gemm_slice(const ml_gemm_args *g, int64_t item, bool split_m, int64_t lo,
                       int64_t hi) {
    const size_t es = ml_dtype_size(g->c->dtype);
    const char *a = (const char *)ml_data(g->a) + (size_t)(item * g->stride_a) * es;
    const char *b = (const char *)ml_data(g->b) + (size_t)(item * g->stride_b) * es;
    char *c = (char *)ml_data(g->c) + (size_t)(item * g->stride_c) * es;
    const char *bias = g->bias ? (const char *)ml_data(g->bias) : NULL;
    int64_t m = g->m, n = g->n;
    if (split_m) {
        a += (size_t)(g->trans_a ? lo : lo * g->lda) * es;
        c += (size_t)(lo * g->ldc) * es;
        m = hi - lo;
    } else {
        b += (size_t)(g->trans_b ? lo * g->ldb : lo) * es;
        c += (size_t)lo * es;
        if (bias) bias += (size_t)lo * es;
        n = hi - lo;
    }
    double beta = g->beta;
    if (g->c->dtype == ML_F32 && ml_small_sgemm_pays(g->trans_b, m, n, g->k)) {
        ml_small_sgemm(g->trans_a, g->trans_b, m, n, g->k, (float)g->alpha, (const float *)a,
                       g->lda, (const float *)b, g->ldb, (float)beta, (float *)c, g->ldc,
                       (const float *)bias);
        return;
    }
    if (bias) { /* bias rows, the product added onto them */
        fill_bias_rows(c, g->ldc, bias, m, n, es);
        beta = 1.0;
    }
    if (g->c->dtype == ML_F32) BLAS_SLICE(float, cblas_sgemm);
    else BLAS_SLICE(double, cblas_dgemm);
}

/* One batch item: whole on this thread, or one slice per thread. Each slice packs
 * the whole operand it shares, so the longer side is split and the shared one is
 * the smaller (grad_weight's [64, 784] = g^T x splits its 784 columns: x, 400 KB,
 * is not read twice; 88-94 -> 94-98 % of OpenBLAS's own two threads). */
static void gemm_item(const ml_gemm_args *g, int64_t item) {
    const int nt = gemm_threads(g);
    const bool split_m = g->m >= g->n;
    const int64_t len = split_m ? g->m : g->n;
    if (nt == 1) { /* no libgomp at all: even an if(0) region costs a futex call */
        gemm_slice(g, item, split_m, 0, len);
        return;
    }
    /* slices of whole 16-element runs, so each starts aligned to a vector */
    const int64_t chunk = ((len + nt - 1) / nt + 15) / 16 * 16;
    const double t0 = ml_clock_seconds();
    double own = 0;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        const int64_t lo = t * chunk, hi = lo + chunk < len ? lo + chunk : len;
        if (lo < hi) gemm_slice(g, item, split_m, lo, hi);
        if (t == 0) own = ml_clock_seconds() - t0; /* static: slice 0 is thread 0's */
    }
    ml_team_report(ml_clock_seconds() - t0, own);
}

static int cpu_gemm(const ml_gemm_args *g) {
    if (g->a->dtype != g->c->dtype || g->b->dtype != g->c->dtype)
        return ml_error_set("matmul: dtypes %s and %s differ", ml_dtype_name(g->a->dtype),
                            ml_dtype_name(g->b->dtype));
    if (g->c->dtype != ML_F32 && g->c->dtype != ML_F64)
        return ml_error_set("matmul: needs float32 or float64 tensors, got %s",
                            ml_dtype_name(g->c->dtype));
    for (int64_t item = 0; item < g->batch; item++) gemm_item(g, item);
    return 0;
}

const ml_matmul_ops ml_cpu_matmul = {.gemm = cpu_gemm};
