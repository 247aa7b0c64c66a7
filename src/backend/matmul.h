/* Backend family: matrix products (OpenBLAS on the CPU, cuBLAS on CUDA).
 *
 * Row-major C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] for b < batch, with
 * op() a transpose when trans_*; A, B, C given as base tensors plus leading
 * dimensions and batch strides in elements. When bias is set (length n) it is added
 * to every row of C (the bias of nn.Linear folded into the product). */
#ifndef ML_BACKEND_MATMUL_H
#define ML_BACKEND_MATMUL_H

#include "../tensor.h"
#include "table.h"

typedef struct ml_gemm_args {
    bool trans_a, trans_b;
    int64_t m, n, k;
    double alpha, beta;
    const ml_tensor *a, *b;
    ml_tensor *c;
    int64_t lda, ldb, ldc;
    int64_t batch, stride_a, stride_b, stride_c;
    const ml_tensor *bias;
} ml_gemm_args;

/* The family's entries (see table.h): gemm, as above; 0 or -1. */
#define ML_MATMUL_ENTRIES(X, P) X(P, int, gemm, (const ml_gemm_args *args))

typedef struct ml_matmul_ops {
    ML_MATMUL_ENTRIES(ML_BACKEND_FIELD, _)
} ml_matmul_ops;

#endif
