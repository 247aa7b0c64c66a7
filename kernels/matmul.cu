/* CUDA kernel of the matmul family (contract: src/backend/matmul.h): cuBLAS.
 *
 * cuBLAS is column-major: a row-major C = op(A) op(B) is the column-major
 * C^T = op(B)^T op(A)^T, so the call swaps the operands (and m with n) and keeps
 * the transpose flags. A batch is one strided-batched call. nn.Linear's bias is
 * copied into every row of C first and the product added onto it (beta = 1), as
 * the CPU kernel does. float32 products use TF32 tensor cores when
 * ml.set_float32_matmul_precision("high") asked for it, as in PyTorch. */
#include <cublas_v2.h>
#include <pthread.h>

#include "common.cuh"

/* One handle per math mode, each configured once when it is created and never
 * changed: a handle's mode switched under a lock while gemms ran outside it let a
 * thread's gemm run in the mode another thread had just set. cuBLAS allows calls
 * on one handle from several threads as long as its configuration stays fixed. */
static pthread_mutex_t handle_lock = PTHREAD_MUTEX_INITIALIZER;
static cublasHandle_t handles[2]; /* [0]: full float32, [1]: TF32 tensor cores */

static int blas_fail(cublasStatus_t st) {
    return ml_error_set("matmul: %s", cublasGetStatusString(st));
}

/* A new handle bound to the stream, in the math mode for tf32; NULL on error. */
static cublasHandle_t create_handle(int tf32) {
    cublasHandle_t h = NULL;
    cublasStatus_t st = cublasCreate(&h);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetStream(h, ml_cu_stream());
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (st == CUBLAS_STATUS_SUCCESS) return h;
    if (h) cublasDestroy(h);
    blas_fail(st);
    return NULL;
}

/* The handle for the float32 precision asked for now, created on first use. */
static cublasHandle_t get_handle(void) {
    int tf32 = ml_get_float32_matmul_precision() != ML_MATMUL_HIGHEST;
    pthread_mutex_lock(&handle_lock);
    if (!handles[tf32]) handles[tf32] = create_handle(tf32);
    cublasHandle_t h = handles[tf32];
    pthread_mutex_unlock(&handle_lock);
    return h;
}

template <class T>
__global__ void k_bias_rows(T *c, const T *bias, int64_t batch, int64_t m, int64_t n, int64_t ldc,
                            int64_t stride_c) {
    int64_t total = batch * m * n;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = i % n, r = i / n;
        int64_t row = r % m, b = r / m;
        c[b * stride_c + row * ldc + j] = bias[j];
    }
}

static bool fits_int(int64_t v) { return v >= 0 && v <= 0x7fffffff; }

static int cu_matmul_gemm(const ml_gemm_args *g) {
    if (g->a->dtype != g->c->dtype || g->b->dtype != g->c->dtype)
        return ml_error_set("matmul: dtypes %s and %s differ", ml_dtype_name(g->a->dtype),
                            ml_dtype_name(g->b->dtype));
    if (!ml_dtype_is_float(g->c->dtype))
        return ml_error_set("matmul: needs float32 or float64 tensors, got %s",
                            ml_dtype_name(g->c->dtype));
    if (!fits_int(g->m) || !fits_int(g->n) || !fits_int(g->k) || !fits_int(g->lda) ||
        !fits_int(g->ldb) || !fits_int(g->ldc) || !fits_int(g->batch))
        return ml_error_set("matmul: sizes beyond cuBLAS's 32-bit limits (m %lld, n %lld, k %lld)",
                            (long long)g->m, (long long)g->n, (long long)g->k);
    if (g->m == 0 || g->n == 0 || g->batch == 0) return 0;
    cudaStream_t s = ml_cu_stream();
    double beta = g->beta;
    if (g->bias) {
        ML_CU_DISPATCH_FLOAT(g->c->dtype, {
            k_bias_rows<T><<<ml_cu_blocks(g->batch * g->m * g->n), ML_CU_THREADS, 0, s>>>(
                (T *)ml_data(g->c), (const T *)ml_data(g->bias), g->batch, g->m, g->n, g->ldc,
                g->stride_c);
        })
        ML_CU_LAUNCHED("matmul");
        beta = 1.0;
    }
    cublasHandle_t h = get_handle();
    if (!h) return -1;
    /* column-major: C^T (n x m) = op(B)^T (n x k) op(A)^T (k x m) */
    cublasOperation_t ta = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    int m = (int)g->n, n = (int)g->m, k = (int)g->k;
    int lda = (int)g->ldb, ldb = (int)g->lda, ldc = (int)g->ldc;
    if (k == 0) { /* an empty product: C = beta * C, and beta = 0 ignores what C held */
        if (beta == 1.0) return 0;
        if (beta == 0.0) return ml_cuda_elementwise.fill(g->c, 0.0);
        return ml_cuda_elementwise.axpy(g->c, beta - 1.0, g->c, g->c);
    }
    cublasStatus_t st;
    if (g->c->dtype == ML_F32) {
        float alpha = (float)g->alpha, fbeta = (float)beta;
        const float *A = (const float *)ml_data(g->b), *B = (const float *)ml_data(g->a);
        float *C = (float *)ml_data(g->c);
        if (g->batch == 1)
            st = cublasSgemm(h, tb, ta, m, n, k, &alpha, A, lda, B, ldb, &fbeta, C, ldc);
        else
            st = cublasSgemmStridedBatched(h, tb, ta, m, n, k, &alpha, A, lda, g->stride_b, B, ldb,
                                           g->stride_a, &fbeta, C, ldc, g->stride_c, (int)g->batch);
    } else {
        double alpha = g->alpha;
        const double *A = (const double *)ml_data(g->b), *B = (const double *)ml_data(g->a);
        double *C = (double *)ml_data(g->c);
        if (g->batch == 1)
            st = cublasDgemm(h, tb, ta, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc);
        else
            st = cublasDgemmStridedBatched(h, tb, ta, m, n, k, &alpha, A, lda, g->stride_b, B, ldb,
                                           g->stride_a, &beta, C, ldc, g->stride_c, (int)g->batch);
    }
    if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st);
    return 0;
}

const ml_matmul_ops ml_cuda_matmul = {ML_MATMUL_ENTRIES(ML_BACKEND_ENTRY, cu_matmul_)};
