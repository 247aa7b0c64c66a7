/* CPU kernel of the matmul family, one call per batch item. A product big enough
 * is cut into slices of C fixed by its shape, spread over the threads; each slice (or a
 * small product whole) is computed by our own AVX-512 float32 kernel (small_gemm.c,
 * bias fused) where the CPU has AVX-512 and ml_small_sgemm_pays says it beats
 * OpenBLAS, else by OpenBLAS sgemm/dgemm on one thread (whose kernels are chosen at
 * run time for the CPU; our plain-C kernel, built for the baseline x86-64, is not
 * used there: see small_gemm.h). For OpenBLAS, nn.Linear's bias is copied into C's
 * rows first and the product added onto them (beta = 1): at small shapes OpenBLAS
 * zeroing C and a second pass adding the bias cost more. */
#include <cblas.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "../threads.h"
#include "parallel.h"
#include "small_gemm.h"

/* How many slices one product is cut into: by its shape alone, never by the
 * threads, so that a product's bits do not depend on them (each slice is one call,
 * and our kernel or OpenBLAS may sum a slice differently from a whole). Below
 * ML_GEMM_PAR_MIN_FLOPS a product is one call; above, 2 slices, then a power of
 * two with at least 8 MFLOP each (up to ML_GEMM_MAX_SLICES), each at least 16
 * rows or columns. At the MLP's shapes (128 x 784 x 64) that is 2 slices: on two
 * threads one each, which beat OpenBLAS's own threads by ~2x there. */
static int64_t gemm_slices(const ml_gemm_args *g, int64_t len) {
    const double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    if (flops < ML_GEMM_PAR_MIN_FLOPS || len < 32) return 1;
    int64_t s = 2;
    while (s * 2 <= ML_GEMM_MAX_SLICES && flops / (double)(s * 2) >= 8e6 && len / (s * 2) >= 16)
        s *= 2;
    return s;
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
    if (g->c->dtype == ML_F32 && ml_small_sgemm_pays(g->trans_b, m, n, g->k) &&
        ml_small_sgemm_avx512(g->trans_a, g->trans_b, m, n, g->k, (float)g->alpha, (const float *)a,
                              g->lda, (const float *)b, g->ldb, (float)beta, (float *)c, g->ldc,
                              (const float *)bias))
        return;
    if (bias) { /* bias rows, the product added onto them */
        fill_bias_rows(c, g->ldc, bias, m, n, es);
        beta = 1.0;
    }
    const int saved = ml_blas_enter(); /* one thread: the bits by the shape alone */
    if (g->c->dtype == ML_F32) BLAS_SLICE(float, cblas_sgemm);
    else BLAS_SLICE(double, cblas_dgemm);
    ml_blas_leave(saved);
}

/* One batch item as gemm_slices(g) slices of whole 16-element runs (each starts
 * aligned to a vector), spread over the team. Each slice packs the whole operand
 * it shares, so the longer side is split and the shared one is the smaller
 * (grad_weight's [64, 784] = g^T x splits its 784 columns: x, 400 KB, is not read
 * twice; 88-94 -> 94-98 % of OpenBLAS's own two threads). */
typedef struct {
    const ml_gemm_args *g;
    int64_t item, len, slices;
    bool split_m;
} gemm_job;

static int64_t slice_start(const gemm_job *j, int64_t i) {
    if (i >= j->slices) return j->len;
    const int64_t s = (j->len * i / j->slices + 15) / 16 * 16;
    return s < j->len ? s : j->len;
}

static void gemm_job_slice(void *ctx, int64_t i, int64_t lo, int64_t hi) {
    (void)lo;
    (void)hi;
    const gemm_job *j = ctx;
    const int64_t a = slice_start(j, i), b = slice_start(j, i + 1);
    if (a < b) gemm_slice(j->g, j->item, j->split_m, a, b);
}

static void gemm_item(const ml_gemm_args *g, int64_t item) {
    const bool split_m = g->m >= g->n;
    const int64_t len = split_m ? g->m : g->n;
    gemm_job job = {g, item, len, gemm_slices(g, len), split_m};
    if (job.slices == 1) { /* no trip through the team at all */
        gemm_slice(g, item, split_m, 0, len);
        return;
    }
    ml_parallel_blocks(job.slices, 1, 2, gemm_job_slice, &job);
}

static int cpu_matmul_gemm(const ml_gemm_args *g) {
    if (g->a->dtype != g->c->dtype || g->b->dtype != g->c->dtype)
        return ml_error_set("matmul: dtypes %s and %s differ", ml_dtype_name(g->a->dtype),
                            ml_dtype_name(g->b->dtype));
    if (g->c->dtype != ML_F32 && g->c->dtype != ML_F64)
        return ml_error_set("matmul: needs float32 or float64 tensors, got %s",
                            ml_dtype_name(g->c->dtype));
    for (int64_t item = 0; item < g->batch; item++) gemm_item(g, item);
    return 0;
}

const ml_matmul_ops ml_cpu_matmul = {ML_MATMUL_ENTRIES(ML_BACKEND_ENTRY, cpu_matmul_)};
