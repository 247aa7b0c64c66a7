/* CUDA kernel of the embedding family (contract: src/backend/embedding.h): the
 * weight gradient from the CSR that ops/embedding.c built. A thread per (id,
 * column) adds the gradient rows of the id's positions in their order, then
 * scales; the CPU adds in the same order, so both give the same bits. No
 * atomics. */
#include "common.cuh"

template <class T>
__global__ void k_embedding_segments(const T *__restrict__ g, const int64_t *__restrict__ order,
                                     const int64_t *__restrict__ starts,
                                     const int64_t *__restrict__ rows, int64_t nseg, int64_t d,
                                     bool scale_by_freq, T *__restrict__ gw) {
    for (int64_t u = blockIdx.y; u < nseg; u += gridDim.y)
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < d;
             j += (int64_t)gridDim.x * blockDim.x) {
            const int64_t a = starts[u], z = starts[u + 1];
            T acc = 0;
            for (int64_t p = a; p < z; p++) acc += g[order[p] * d + j];
            if (scale_by_freq && z > a) acc *= (T)1 / (T)(z - a);
            gw[rows[u] * d + j] = acc;
        }
}

static int cu_embedding_dense_backward(const ml_tensor *g, const ml_tensor *order,
                                       const ml_tensor *starts, const ml_tensor *rows, int64_t nseg,
                                       bool scale_by_freq, ml_tensor *gw) {
    if (!ml_dtype_is_float(g->dtype))
        return ml_error_set("embedding: needs a floating point weight, got %s", ml_dtype_name(g->dtype));
    const int64_t d = gw->ndim == 2 ? gw->shape[1] : 1;
    if (nseg == 0 || d == 0) return 0;
    const unsigned threads = d >= ML_CU_THREADS ? ML_CU_THREADS : 32 * (unsigned)((d + 31) / 32);
    const int64_t bx = (d + threads - 1) / threads;
    dim3 grid((unsigned)(bx < 65535 ? bx : 65535), (unsigned)(nseg < 65535 ? nseg : 65535));
    cudaStream_t s = ml_cu_stream();
    ML_CU_DISPATCH_FLOAT(g->dtype, {
        k_embedding_segments<T><<<grid, threads, 0, s>>>(
            (const T *)ml_data(g), (const int64_t *)ml_data(order), (const int64_t *)ml_data(starts),
            (const int64_t *)ml_data(rows), nseg, d, scale_by_freq, (T *)ml_data(gw));
    })
    ML_CU_LAUNCHED("embedding backward");
    return 0;
}

const ml_embedding_ops ml_cuda_embedding = {ML_EMBEDDING_ENTRIES(ML_BACKEND_ENTRY, cu_embedding_)};
