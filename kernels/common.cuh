/* What every CUDA kernel file shares: the C core's headers, the one stream, error
 * reporting that never aborts, dtype dispatch, launch geometry, and a strided
 * iterator (up to 4 tensors of one shape, dims merged where the strides allow).
 *
 * Every CUDA/cuBLAS failure becomes ml_error_set("<op>: <message>") and -1. Ops
 * only queue work on the stream; the host waits only in to_host and synchronize. */
#ifndef ML_KERNELS_COMMON_CUH
#define ML_KERNELS_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend.h"
#include "cuda_api.h"
#include "error.h"
#include "tensor.h"
}

/* backend.cu: the stream every op is queued on (created with the backend). */
cudaStream_t ml_cu_stream(void);
/* memory.cu: device scratch from the caching allocator (stream-ordered reuse). */
void *ml_cu_alloc(size_t nbytes);
void ml_cu_free(void *p, size_t nbytes);

/* Each family's table (one per kernels/<family>.cu); `extern` gives the const
 * definitions external linkage in C++. */
extern const ml_memory_ops ml_cuda_memory;
extern const ml_elementwise_ops ml_cuda_elementwise;
extern const ml_reduce_ops ml_cuda_reduce;
extern const ml_matmul_ops ml_cuda_matmul;
extern const ml_softmax_ops ml_cuda_softmax;
extern const ml_loss_ops ml_cuda_loss;
extern const ml_optim_ops ml_cuda_optim;
extern const ml_index_ops ml_cuda_index;
extern const ml_data_ops ml_cuda_data;
extern const ml_sort_ops ml_cuda_sort;
/* convolution, pooling, batch norm (issue 16) */
extern const ml_conv_ops ml_cuda_conv;
extern const ml_pool_ops ml_cuda_pool;
extern const ml_batchnorm_ops ml_cuda_batchnorm;
/* normalisation, embeddings (issue 16) */
extern const ml_norm_ops ml_cuda_norm;
extern const ml_embedding_ops ml_cuda_embedding;

static inline int ml_cu_fail(const char *op, cudaError_t e) {
    (void)cudaGetLastError(); /* clear a non-sticky error so the next op starts clean */
    return ml_error_set("%s: %s", op, cudaGetErrorString(e));
}
#define ML_CU_TRY(op, call)                                                           \
    do {                                                                              \
        cudaError_t e_ = (call);                                                      \
        if (e_ != cudaSuccess) return ml_cu_fail(op, e_);                             \
    } while (0)
/* After a kernel launch: a bad configuration shows up here, not as an abort. */
#define ML_CU_LAUNCHED(op) ML_CU_TRY(op, cudaGetLastError())

#define ML_CU_THREADS 256
static inline unsigned ml_cu_blocks(int64_t n, int threads = ML_CU_THREADS) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > (1 << 20)) b = 1 << 20; /* grid-stride loops cover the rest */
    return (unsigned)b;
}

/* switch on a dtype with T bound to the C type */
#define ML_CU_CASE(DT, TYPE, ...) case DT: { typedef TYPE T; __VA_ARGS__; } break;
#define ML_CU_DISPATCH_FLOAT(dt, ...)                                                  \
    switch (dt) {                                                                      \
    ML_CU_CASE(ML_F32, float, __VA_ARGS__)                                             \
    ML_CU_CASE(ML_F64, double, __VA_ARGS__)                                            \
    default: break;                                                                    \
    }
#define ML_CU_DISPATCH_ALL(dt, ...)                                                    \
    switch (dt) {                                                                      \
    ML_CU_CASE(ML_F32, float, __VA_ARGS__)                                             \
    ML_CU_CASE(ML_F64, double, __VA_ARGS__)                                            \
    ML_CU_CASE(ML_I64, int64_t, __VA_ARGS__)                                           \
    ML_CU_CASE(ML_U8, uint8_t, __VA_ARGS__)                                            \
    default: break;                                                                    \
    }

/* The math helpers of the op lists' expressions (src/backend/elementwise_ops.h),
 * one overload per element type that an op's domain allows: the CUDA side of
 * src/cpu/scalar_math.h, same names, same results. A helper missing here for a type
 * the list needs is a compile error. */
__device__ __forceinline__ float ml_exp(float v) { return expf(v); }
__device__ __forceinline__ double ml_exp(double v) { return exp(v); }
__device__ __forceinline__ float ml_expm1(float v) { return expm1f(v); }
__device__ __forceinline__ double ml_expm1(double v) { return expm1(v); }
__device__ __forceinline__ float ml_log(float v) { return logf(v); }
__device__ __forceinline__ double ml_log(double v) { return log(v); }
__device__ __forceinline__ float ml_log1p(float v) { return log1pf(v); }
__device__ __forceinline__ double ml_log1p(double v) { return log1p(v); }
__device__ __forceinline__ float ml_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double ml_sqrt(double v) { return sqrt(v); }
__device__ __forceinline__ float ml_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double ml_tanh(double v) { return tanh(v); }
__device__ __forceinline__ float ml_erf(float v) { return erff(v); }
__device__ __forceinline__ double ml_erf(double v) { return erf(v); }
__device__ __forceinline__ float ml_sin(float v) { return sinf(v); }
__device__ __forceinline__ double ml_sin(double v) { return sin(v); }
__device__ __forceinline__ float ml_cos(float v) { return cosf(v); }
__device__ __forceinline__ double ml_cos(double v) { return cos(v); }
__device__ __forceinline__ float ml_power(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double ml_power(double a, double b) { return pow(a, b); }
/* |v|; unsigned values are their own */
__device__ __forceinline__ float ml_abs(float v) { return fabsf(v); }
__device__ __forceinline__ double ml_abs(double v) { return fabs(v); }
__device__ __forceinline__ int64_t ml_abs(int64_t v) { return v < 0 ? -v : v; }
__device__ __forceinline__ uint8_t ml_abs(uint8_t v) { return v; }
/* -1, 0 or 1 (0 for NaN, as torch.sign) */
__device__ __forceinline__ float ml_sign(float v) { return (float)((v > 0) - (v < 0)); }
__device__ __forceinline__ double ml_sign(double v) { return (double)((v > 0) - (v < 0)); }
__device__ __forceinline__ int64_t ml_sign(int64_t v) { return (v > 0) - (v < 0); }
__device__ __forceinline__ uint8_t ml_sign(uint8_t v) { return v > 0; }
/* 1 for a NaN; integers never are */
__device__ __forceinline__ int ml_isnan(float v) { return v != v; }
__device__ __forceinline__ int ml_isnan(double v) { return v != v; }
__device__ __forceinline__ int ml_isnan(int64_t) { return 0; }
__device__ __forceinline__ int ml_isnan(uint8_t) { return 0; }
/* 1 for +-inf; integers never are */
__device__ __forceinline__ int ml_isinf(float v) { return isinf(v) != 0; }
__device__ __forceinline__ int ml_isinf(double v) { return isinf(v) != 0; }
__device__ __forceinline__ int ml_isinf(int64_t) { return 0; }
__device__ __forceinline__ int ml_isinf(uint8_t) { return 0; }
/* torch.floor_divide (Python's //), as src/cpu/scalar_math.h computes it: floats by
 * the exact remainder, IEEE's inf/NaN for b == 0; integers by truncation corrected
 * towards -inf, 0 for b == 0 (ops/ refuses that division first), INT64_MIN / -1
 * wrapping */
__device__ __forceinline__ float ml_floordiv(float a, float b) {
    if (b == 0) return a / b;
    const float mod = fmodf(a, b);
    float div = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) div -= 1;
    if (div == 0) return copysignf(0.0f, a / b);
    float q = floorf(div);
    if (div - q > 0.5f) q += 1;
    return q;
}
__device__ __forceinline__ double ml_floordiv(double a, double b) {
    if (b == 0) return a / b;
    const double mod = fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) div -= 1;
    if (div == 0) return copysign(0.0, a / b);
    double q = floor(div);
    if (div - q > 0.5) q += 1;
    return q;
}
__device__ __forceinline__ int64_t ml_floordiv(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    const int64_t q = a / b, r = a % b;
    return r != 0 && (r < 0) != (b < 0) ? q - 1 : q;
}
__device__ __forceinline__ uint8_t ml_floordiv(uint8_t a, uint8_t b) { return b == 0 ? 0 : a / b; }

/* The older names of the same functions, which kernels/loss.cu uses. */
__device__ __forceinline__ float cu_exp(float v) { return ml_exp(v); }
__device__ __forceinline__ double cu_exp(double v) { return ml_exp(v); }
__device__ __forceinline__ float cu_log(float v) { return ml_log(v); }
__device__ __forceinline__ double cu_log(double v) { return ml_log(v); }
__device__ __forceinline__ float cu_log1p(float v) { return ml_log1p(v); }
__device__ __forceinline__ double cu_log1p(double v) { return ml_log1p(v); }
__device__ __forceinline__ float cu_abs(float v) { return ml_abs(v); }
__device__ __forceinline__ double cu_abs(double v) { return ml_abs(v); }
__device__ __forceinline__ float cu_sqrt(float v) { return ml_sqrt(v); }
__device__ __forceinline__ double cu_sqrt(double v) { return ml_sqrt(v); }
__device__ __forceinline__ float cu_tanh(float v) { return ml_tanh(v); }
__device__ __forceinline__ double cu_tanh(double v) { return ml_tanh(v); }
__device__ __forceinline__ float cu_pow(float a, float b) { return ml_power(a, b); }
__device__ __forceinline__ double cu_pow(double a, double b) { return ml_power(a, b); }

/* --- bad data found by a kernel ---
 * A kernel that finds bad data (a class id out of range, ...) raises the flag of
 * a status word in device memory and records the value; the host reads it back
 * (one small copy and a wait on the stream) to return the error. Only kernels
 * whose contract has such errors pay that wait. */
struct ml_cu_status {
    unsigned long long bad;  /* 0, or 1 once some thread found bad data */
    long long value;         /* the offending value (the first flagger's) */
    double acc, wsum;        /* reductions that also come back (losses) */
};

__device__ __forceinline__ void ml_cu_flag(ml_cu_status *st, long long value) {
    if (atomicExch(&st->bad, 1ULL) == 0ULL) st->value = value;
}

/* A zeroed status word on the device (from the caching allocator), or NULL. */
static inline ml_cu_status *ml_cu_status_new(const char *op) {
    ml_cu_status *st = (ml_cu_status *)ml_cu_alloc(sizeof(ml_cu_status));
    if (!st) return NULL;
    cudaError_t e = cudaMemsetAsync(st, 0, sizeof *st, ml_cu_stream());
    if (e != cudaSuccess) {
        ml_cu_free(st, sizeof *st);
        ml_cu_fail(op, e);
        return NULL;
    }
    return st;
}

/* Copies the status to the host (waiting for the kernels before it) and frees it. */
static inline int ml_cu_status_read(const char *op, ml_cu_status *st, ml_cu_status *host) {
    cudaStream_t s = ml_cu_stream();
    cudaError_t e = cudaMemcpyAsync(host, st, sizeof *host, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    ml_cu_free(st, sizeof *st);
    if (e != cudaSuccess) return ml_cu_fail(op, e);
    return 0;
}

/* The sum over a block (blockDim.x a power of two <= 1024), valid in thread 0. */
template <class T>
__device__ __forceinline__ T ml_cu_block_sum(T v) {
    __shared__ T sh[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = (int)threadIdx.x < nw ? sh[threadIdx.x] : (T)0;
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

/* --- strided iteration --- */

#define ML_CU_ITER_MAX 4
struct ml_cu_iter {
    int ndim;                                 /* after merging; 0 or 1 = one run */
    int64_t shape[ML_MAX_DIMS];
    int64_t st[ML_CU_ITER_MAX][ML_MAX_DIMS];  /* strides in elements, per tensor */
};

/* n tensors of t[0]'s shape: drop size-1 dims, merge neighbours contiguous in all. */
static inline void ml_cu_iter_init(ml_cu_iter *it, int n, const ml_tensor *const *t) {
    it->ndim = 0;
    for (int k = 0; k < ML_CU_ITER_MAX; k++)
        for (int d = 0; d < ML_MAX_DIMS; d++) it->st[k][d] = 0;
    for (int d = 0; d < t[0]->ndim; d++) {
        if (t[0]->shape[d] == 1) continue;
        int nd = it->ndim;
        bool merge = nd > 0;
        for (int k = 0; merge && k < n; k++)
            merge = it->st[k][nd - 1] == t[k]->strides[d] * t[0]->shape[d];
        if (merge) {
            it->shape[nd - 1] *= t[0]->shape[d];
            for (int k = 0; k < n; k++) it->st[k][nd - 1] = t[k]->strides[d];
        } else {
            it->shape[nd] = t[0]->shape[d];
            for (int k = 0; k < n; k++) it->st[k][nd] = t[k]->strides[d];
            it->ndim++;
        }
    }
    if (it->ndim == 0) { /* a single element (or 0-dim) */
        it->ndim = 1;
        it->shape[0] = 1;
    }
}

/* f(o0, o1, o2, o3): element offsets of the i-th element in each tensor. */
template <class F>
__global__ void ml_cu_map_1d(F f, int64_t n, int64_t s0, int64_t s1, int64_t s2, int64_t s3) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        f(i * s0, i * s1, i * s2, i * s3);
}

template <class F>
__global__ void ml_cu_map_contig(F f, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        f(i, i, i, i);
}

/* index decomposition in I (32-bit when the count allows: divisions are cheaper) */
template <class F, class I>
__global__ void ml_cu_map_nd(F f, ml_cu_iter it, I n) {
    for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        int64_t o[ML_CU_ITER_MAX] = {0, 0, 0, 0};
        I r = i;
        for (int d = it.ndim - 1; d >= 0; d--) {
            I s = (I)it.shape[d];
            I q = r / s;
            int64_t c = (int64_t)(r - q * s);
            r = q;
#pragma unroll
            for (int k = 0; k < ML_CU_ITER_MAX; k++) o[k] += c * it.st[k][d];
        }
        f(o[0], o[1], o[2], o[3]);
    }
}

/* Runs f over every element of the n tensors t (t[0] gives the shape). */
template <class F>
static int ml_cu_map(const char *op, F f, int n, const ml_tensor *const *t) {
    int64_t count = ml_numel(t[0]);
    if (count == 0) return 0;
    ml_cu_iter it;
    ml_cu_iter_init(&it, n, t);
    cudaStream_t s = ml_cu_stream();
    unsigned blocks = ml_cu_blocks(count);
    if (it.ndim == 1) {
        bool contig = true;
        for (int k = 0; k < n; k++) contig = contig && it.st[k][0] == 1;
        if (contig)
            ml_cu_map_contig<<<blocks, ML_CU_THREADS, 0, s>>>(f, count);
        else
            ml_cu_map_1d<<<blocks, ML_CU_THREADS, 0, s>>>(f, count, it.st[0][0], it.st[1][0],
                                                          it.st[2][0], it.st[3][0]);
    } else if (count <= (int64_t)UINT32_MAX / 2) {
        ml_cu_map_nd<F, uint32_t><<<blocks, ML_CU_THREADS, 0, s>>>(f, it, (uint32_t)count);
    } else {
        ml_cu_map_nd<F, uint64_t><<<blocks, ML_CU_THREADS, 0, s>>>(f, it, (uint64_t)count);
    }
    ML_CU_LAUNCHED(op);
    return 0;
}

#endif
