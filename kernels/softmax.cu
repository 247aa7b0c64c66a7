/* CUDA kernels of the softmax family (contract: src/backend/softmax.h): softmax or
 * log_softmax over n of [outer, n, inner], the stable form (subtract the row max).
 * inner == 1 (the last dim, the usual case): a block per row, the max and the sum
 * combined in shared memory. inner > 1: a thread per (outer, inner) column, loads
 * coalesced across the columns. Same arithmetic as the CPU kernels. */
#include <math.h>

#include "common.cuh"

struct MaxOp {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return b > a ? b : a; }
};
struct SumOp {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

/* Every thread gets the combination of all blockDim.x (a power of two) values. */
template <class T, class Op>
__device__ __forceinline__ T block_all(T v, Op op) {
    __shared__ T sh[256];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] = op(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    T out = sh[0];
    __syncthreads();
    return out;
}

template <class T>
__global__ void k_fwd_rows(const T *x, T *y, int64_t outer, int64_t n, bool is_log) {
    for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
        const T *p = x + o * n;
        T *q = y + o * n;
        T m = -INFINITY;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = p[i] > m ? p[i] : m;
        m = block_all(m, MaxOp());
        if (m == -INFINITY) m = 0; /* all -inf: exp gives 0s, sum 0, NaN as torch */
        T s = 0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += cu_exp(p[i] - m);
        s = block_all(s, SumOp());
        if (is_log) {
            T lse = m + cu_log(s);
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) q[i] = p[i] - lse;
        } else {
            T r = (T)1 / s;
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) q[i] = cu_exp(p[i] - m) * r;
        }
    }
}

template <class T>
__global__ void k_fwd_cols(const T *x, T *y, int64_t outer, int64_t n, int64_t inner, bool is_log) {
    int64_t total = outer * inner;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < total;
         c += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = c / inner, j = c - o * inner;
        const T *p = x + o * n * inner + j;
        T *q = y + o * n * inner + j;
        T m = -INFINITY;
        for (int64_t i = 0; i < n; i++) m = p[i * inner] > m ? p[i * inner] : m;
        if (m == -INFINITY) m = 0;
        T s = 0;
        for (int64_t i = 0; i < n; i++) s += cu_exp(p[i * inner] - m);
        if (is_log) {
            T lse = m + cu_log(s);
            for (int64_t i = 0; i < n; i++) q[i * inner] = p[i * inner] - lse;
        } else {
            T r = (T)1 / s;
            for (int64_t i = 0; i < n; i++) q[i * inner] = cu_exp(p[i * inner] - m) * r;
        }
    }
}

/* softmax: gx = y * (g - sum(g * y)); log_softmax: gx = g - exp(y) * sum(g) */
template <class T>
__global__ void k_bwd_rows(const T *y, const T *g, T *gx, int64_t outer, int64_t n, bool is_log) {
    for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
        const T *yp = y + o * n, *gp = g + o * n;
        T *op = gx + o * n;
        T s = 0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += is_log ? gp[i] : gp[i] * yp[i];
        s = block_all(s, SumOp());
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            op[i] = is_log ? gp[i] - cu_exp(yp[i]) * s : yp[i] * (gp[i] - s);
    }
}

template <class T>
__global__ void k_bwd_cols(const T *y, const T *g, T *gx, int64_t outer, int64_t n, int64_t inner,
                           bool is_log) {
    int64_t total = outer * inner;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < total;
         c += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = c / inner, j = c - o * inner;
        int64_t base = o * n * inner + j;
        T s = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t k = base + i * inner;
            s += is_log ? g[k] : g[k] * y[k];
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t k = base + i * inner;
            gx[k] = is_log ? g[k] - cu_exp(y[k]) * s : y[k] * (g[k] - s);
        }
    }
}

static unsigned row_threads(int64_t n) {
    unsigned t = 32;
    while (t < 256 && (int64_t)t < n) t <<= 1;
    return t;
}

static unsigned row_blocks(int64_t outer) { return (unsigned)(outer < (1 << 20) ? outer : (1 << 20)); }

static int cu_softmax_forward(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                              bool is_log, ml_tensor *y) {
    const char *name = is_log ? "log_softmax" : "softmax";
    if (!ml_dtype_is_float(x->dtype))
        return ml_error_set("softmax: needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
    if (outer * n * inner == 0) return 0;
    cudaStream_t s = ml_cu_stream();
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        const T *xp = (const T *)ml_data(x);
        T *yp = (T *)ml_data(y);
        if (inner == 1)
            k_fwd_rows<T><<<row_blocks(outer), row_threads(n), 0, s>>>(xp, yp, outer, n, is_log);
        else
            k_fwd_cols<T><<<ml_cu_blocks(outer * inner), ML_CU_THREADS, 0, s>>>(xp, yp, outer, n,
                                                                              inner, is_log);
    })
    ML_CU_LAUNCHED(name);
    return 0;
}

static int cu_softmax_backward(const ml_tensor *y, const ml_tensor *g, int64_t outer, int64_t n,
                               int64_t inner, bool is_log, ml_tensor *grad_x) {
    const char *name = is_log ? "log_softmax" : "softmax";
    if (!ml_dtype_is_float(y->dtype))
        return ml_error_set("softmax: needs a floating point tensor, got %s", ml_dtype_name(y->dtype));
    if (outer * n * inner == 0) return 0;
    cudaStream_t s = ml_cu_stream();
    ML_CU_DISPATCH_FLOAT(y->dtype, {
        const T *yp = (const T *)ml_data(y), *gp = (const T *)ml_data(g);
        T *op = (T *)ml_data(grad_x);
        if (inner == 1)
            k_bwd_rows<T><<<row_blocks(outer), row_threads(n), 0, s>>>(yp, gp, op, outer, n, is_log);
        else
            k_bwd_cols<T><<<ml_cu_blocks(outer * inner), ML_CU_THREADS, 0, s>>>(yp, gp, op, outer, n,
                                                                               inner, is_log);
    })
    ML_CU_LAUNCHED(name);
    return 0;
}

const ml_softmax_ops ml_cuda_softmax = {ML_SOFTMAX_ENTRIES(ML_BACKEND_ENTRY, cu_softmax_)};
