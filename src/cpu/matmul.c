/* CPU kernel of the matmul family: OpenBLAS sgemm/dgemm, one call per batch item.
 * nn.Linear's bias is added to C in one pass after a beta = 0 product: OpenBLAS's
 * small-matrix kernels (the MLP's shapes) serve only beta = 0, and a pass over C
 * (M x N) is cheap beside the product's reads (M x K + K x N). */
#include <cblas.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"

#define ADD_BIAS(T)                                                                    \
    do {                                                                               \
        T *c = (T *)ml_data(g->c) + batch_index * g->stride_c;                         \
        const T *restrict bias = (const T *)ml_data(g->bias);                          \
        for (int64_t i = 0; i < g->m; i++) {                                           \
            T *restrict row = c + i * g->ldc;                                          \
            _Pragma("omp simd")                                                        \
            for (int64_t j = 0; j < g->n; j++) row[j] += bias[j];                      \
        }                                                                              \
    } while (0)

static void add_bias(const ml_gemm_args *g, int64_t batch_index) {
    if (g->c->dtype == ML_F32) ADD_BIAS(float);
    else ADD_BIAS(double);
}

static int cpu_gemm(const ml_gemm_args *g) {
    if (g->a->dtype != g->c->dtype || g->b->dtype != g->c->dtype)
        return ml_error_set("matmul: dtypes %s and %s differ", ml_dtype_name(g->a->dtype),
                            ml_dtype_name(g->b->dtype));
    CBLAS_TRANSPOSE ta = g->trans_a ? CblasTrans : CblasNoTrans;
    CBLAS_TRANSPOSE tb = g->trans_b ? CblasTrans : CblasNoTrans;
    for (int64_t b = 0; b < g->batch; b++) {
        double beta = g->bias ? 0.0 : g->beta;
        if (g->c->dtype == ML_F32) {
            const float *A = (const float *)ml_data(g->a) + b * g->stride_a;
            const float *B = (const float *)ml_data(g->b) + b * g->stride_b;
            float *C = (float *)ml_data(g->c) + b * g->stride_c;
            cblas_sgemm(CblasRowMajor, ta, tb, (blasint)g->m, (blasint)g->n, (blasint)g->k,
                        (float)g->alpha, A, (blasint)g->lda, B, (blasint)g->ldb, (float)beta, C,
                        (blasint)g->ldc);
        } else if (g->c->dtype == ML_F64) {
            const double *A = (const double *)ml_data(g->a) + b * g->stride_a;
            const double *B = (const double *)ml_data(g->b) + b * g->stride_b;
            double *C = (double *)ml_data(g->c) + b * g->stride_c;
            cblas_dgemm(CblasRowMajor, ta, tb, (blasint)g->m, (blasint)g->n, (blasint)g->k,
                        g->alpha, A, (blasint)g->lda, B, (blasint)g->ldb, beta, C,
                        (blasint)g->ldc);
        } else {
            return ml_error_set("matmul: needs float32 or float64 tensors, got %s",
                                ml_dtype_name(g->c->dtype));
        }
        if (g->bias) add_bias(g, b);
    }
    return 0;
}

const ml_matmul_ops ml_cpu_matmul = {.gemm = cpu_gemm};
