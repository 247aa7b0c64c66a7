/* CUDA kernels of the reduce family (contract: src/backend/reduce.h): x contiguous
 * as [outer, n, inner], reduced over n.
 *
 * One reducer per op (init / add / combine / store) drives three kernels:
 *  - inner == 1: a block per row, threads stride over the row, a tree in shared
 *    memory combines them;
 *  - inner > 1: 32 consecutive columns per block (coalesced loads), 8 threads down
 *    each column, combined in shared memory;
 *  - one long row (a whole-tensor reduction of more than TWO_PASS_MIN elements):
 *    a block per PART_ELEMS elements (at most 1024 blocks) writes a partial
 *    result to scratch, one block combines them in a fixed order. The grid
 *    depends only on n, so the result is the same every run (no float atomics).
 * Float sums accumulate in double and integer sums in int64, as the CPU kernels;
 * max/min give the first extreme's position, and a NaN wins, as in torch;
 * logsumexp keeps a running (max, sum) pair so it reads x once; all/any an int. */
#include <math.h>

#include "common.cuh"

template <class T, class Acc, class OutT>
struct SumR {
    typedef Acc V;
    OutT *out;
    bool mean;
    __device__ __forceinline__ V init() const { return (Acc)0; }
    __device__ __forceinline__ V add(V a, T x, int64_t) const { return a + (Acc)x; }
    __device__ __forceinline__ V combine(V a, V b) const { return a + b; }
    __device__ __forceinline__ void store(int64_t k, V a, int64_t n) const {
        out[k] = (OutT)(mean ? a / (Acc)n : a);
    }
};

template <class T>
struct ExtV {
    T v;
    int64_t i; /* -1: nothing seen yet */
};

template <class T, bool MAX>
struct ExtremeR {
    typedef ExtV<T> V;
    void *out;
    int64_t *idx;
    bool index_only;
    __device__ __forceinline__ V init() const { return V{(T)0, -1}; }
    __device__ __forceinline__ V combine(V a, V b) const {
        if (a.i < 0) return b;
        if (b.i < 0) return a;
        bool an = a.v != a.v, bn = b.v != b.v;
        if (an || bn) return (an && bn) ? (a.i < b.i ? a : b) : (an ? a : b);
        if (MAX ? b.v > a.v : b.v < a.v) return b;
        if (a.v == b.v && b.i < a.i) return b;
        return a;
    }
    __device__ __forceinline__ V add(V a, T x, int64_t i) const { return combine(a, V{x, i}); }
    __device__ __forceinline__ void store(int64_t k, V a, int64_t) const {
        if (index_only) {
            ((int64_t *)out)[k] = a.i;
        } else {
            ((T *)out)[k] = a.v;
            if (idx) idx[k] = a.i;
        }
    }
};

struct LseV {
    double m, s; /* running max and sum of exp(x - m); m NaN once a NaN was seen */
};

/* A NaN anywhere makes the result NaN, as in torch: it is carried in m, which
 * every step checks first (carried in s, a side whose m is still -inf was
 * dropped by combine). */
template <class T>
struct LogsumexpR {
    typedef LseV V;
    T *out;
    __device__ __forceinline__ V init() const { return V{-INFINITY, 0.0}; }
    __device__ __forceinline__ V add(V a, T x, int64_t) const {
        double v = (double)x;
        if (a.m != a.m) return a;
        if (v != v) return V{v, 0.0};
        if (v == -INFINITY) return a; /* adds exp(-inf) = 0 */
        if (v > a.m) return V{v, a.s * exp(a.m - v) + 1.0};
        return V{a.m, a.s + exp(v - a.m)};
    }
    __device__ __forceinline__ V combine(V a, V b) const {
        if (a.m != a.m) return a;
        if (b.m != b.m) return b;
        if (b.m == -INFINITY) return a;
        if (a.m == -INFINITY) return b;
        if (b.m > a.m) {
            V t = a;
            a = b;
            b = t;
        }
        return V{a.m, a.s + b.s * exp(b.m - a.m)};
    }
    __device__ __forceinline__ void store(int64_t k, V a, int64_t) const {
        out[k] = (T)(a.m != a.m || isinf(a.m) ? a.m : a.m + log(a.s));
    }
};

/* all/any: 1 when every / some element is nonzero (a NaN is), as the CPU */
template <class T, bool ANY>
struct TruthR {
    typedef int V;
    uint8_t *out;
    __device__ __forceinline__ V init() const { return ANY ? 0 : 1; }
    __device__ __forceinline__ V add(V a, T x, int64_t) const {
        return ANY ? (a | (x != (T)0)) : (a & (x != (T)0));
    }
    __device__ __forceinline__ V combine(V a, V b) const { return ANY ? (a | b) : (a & b); }
    __device__ __forceinline__ void store(int64_t k, V a, int64_t) const { out[k] = (uint8_t)a; }
};

/* Tree over blockDim.x (a power of two <= 256) entries. */
template <class R>
__device__ __forceinline__ typename R::V block_combine(const R &r, typename R::V v) {
    __shared__ typename R::V sh[256];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] = r.combine(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    typename R::V out = sh[0];
    __syncthreads();
    return out;
}

template <class R, class T>
__global__ void k_rows(R r, const T *x, int64_t outer, int64_t n) {
    for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
        typename R::V acc = r.init();
        const T *p = x + o * n;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc = r.add(acc, p[i], i);
        acc = block_combine(r, acc);
        if (threadIdx.x == 0) r.store(o, acc, n);
    }
}

#define COL_X 32
#define COL_Y 8
template <class R, class T>
__global__ void k_cols(R r, const T *x, int64_t outer, int64_t n, int64_t inner) {
    __shared__ typename R::V sh[COL_Y][COL_X];
    int tx = threadIdx.x, ty = threadIdx.y;
    int64_t j = (int64_t)blockIdx.x * COL_X + tx;
    for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
        typename R::V acc = r.init();
        if (j < inner) {
            const T *p = x + o * n * inner + j;
            for (int64_t i = ty; i < n; i += COL_Y) acc = r.add(acc, p[i * inner], i);
        }
        sh[ty][tx] = acc;
        __syncthreads();
        for (int s = COL_Y / 2; s > 0; s >>= 1) {
            if (ty < s) sh[ty][tx] = r.combine(sh[ty][tx], sh[ty + s][tx]);
            __syncthreads();
        }
        if (ty == 0 && j < inner) r.store(o * inner + j, sh[0][tx], n);
        __syncthreads();
    }
}

template <class R, class T>
__global__ void k_partial(R r, const T *x, int64_t n, typename R::V *part) {
    typename R::V acc = r.init();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        acc = r.add(acc, x[i], i);
    acc = block_combine(r, acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

template <class R>
__global__ void k_final(R r, const typename R::V *part, int parts, int64_t n) {
    typename R::V acc = r.init();
    for (int i = threadIdx.x; i < parts; i += blockDim.x) acc = r.combine(acc, part[i]);
    acc = block_combine(r, acc);
    if (threadIdx.x == 0) r.store(0, acc, n);
}

#define PART_ELEMS (256 * 16)
#define TWO_PASS_MIN (2 * PART_ELEMS) /* below: one block, not worth a second launch */

static unsigned row_threads(int64_t n) {
    unsigned t = 32;
    while (t < 256 && (int64_t)t < n) t <<= 1;
    return t;
}

template <class R, class T>
static int run(const char *name, R r, const ml_tensor *x, int64_t outer, int64_t n, int64_t inner) {
    if (outer * inner == 0) return 0;
    const T *xp = (const T *)ml_data(x);
    cudaStream_t s = ml_cu_stream();
    if (outer == 1 && inner == 1 && n > TWO_PASS_MIN) {
        int parts = (int)((n + PART_ELEMS - 1) / PART_ELEMS);
        if (parts > 1024) parts = 1024;
        size_t bytes = sizeof(typename R::V) * (size_t)parts;
        typename R::V *part = (typename R::V *)ml_cu_alloc(bytes);
        if (!part) return -1;
        k_partial<<<parts, 256, 0, s>>>(r, xp, n, part);
        k_final<<<1, 256, 0, s>>>(r, part, parts, n);
        cudaError_t e = cudaGetLastError();
        ml_cu_free(part, bytes); /* stream order: reused only by later work */
        if (e != cudaSuccess) return ml_cu_fail(name, e);
        return 0;
    }
    if (inner == 1) {
        unsigned blocks = (unsigned)(outer < (1 << 20) ? outer : (1 << 20));
        k_rows<<<blocks, row_threads(n), 0, s>>>(r, xp, outer, n);
    } else {
        dim3 grid((unsigned)((inner + COL_X - 1) / COL_X), (unsigned)(outer < 65535 ? outer : 65535));
        k_cols<<<grid, dim3(COL_X, COL_Y), 0, s>>>(r, xp, outer, n, inner);
    }
    ML_CU_LAUNCHED(name);
    return 0;
}

static int reduce_sum(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner, ml_tensor *out,
                      bool mean) {
    const char *name = mean ? "mean" : "sum";
    switch (x->dtype) {
    case ML_F32:
        return run<SumR<float, double, float>, float>(name, {(float *)ml_data(out), mean}, x, outer, n, inner);
    case ML_F64:
        return run<SumR<double, double, double>, double>(name, {(double *)ml_data(out), mean}, x, outer, n, inner);
    case ML_I64:
        return run<SumR<int64_t, int64_t, int64_t>, int64_t>(name, {(int64_t *)ml_data(out), false}, x, outer, n, inner);
    case ML_U8:
        return run<SumR<uint8_t, int64_t, int64_t>, uint8_t>(name, {(int64_t *)ml_data(out), false}, x, outer, n, inner);
    default: return 0;
    }
}

static int reduce_extreme(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                          ml_tensor *out, ml_tensor *idx, bool is_max, bool index_only) {
    if (n == 0) return ml_error_set("max/min: cannot reduce over a dim of size 0");
    const char *name = index_only ? (is_max ? "argmax" : "argmin") : (is_max ? "max" : "min");
    void *o = ml_data(out);
    int64_t *ip = idx ? (int64_t *)ml_data(idx) : NULL;
    ML_CU_DISPATCH_ALL(x->dtype, {
        if (is_max) return run<ExtremeR<T, true>, T>(name, {o, ip, index_only}, x, outer, n, inner);
        return run<ExtremeR<T, false>, T>(name, {o, ip, index_only}, x, outer, n, inner);
    })
    return 0;
}

/* The family's entries, one per reduction of ML_REDUCE_OPS. */
static int cu_reduce_sum(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                         ml_tensor *out, ml_tensor *) {
    return reduce_sum(x, outer, n, inner, out, false);
}
static int cu_reduce_mean(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                          ml_tensor *out, ml_tensor *) {
    return reduce_sum(x, outer, n, inner, out, true);
}
static int cu_reduce_max(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                         ml_tensor *out, ml_tensor *idx) {
    return reduce_extreme(x, outer, n, inner, out, idx, true, false);
}
static int cu_reduce_min(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                         ml_tensor *out, ml_tensor *idx) {
    return reduce_extreme(x, outer, n, inner, out, idx, false, false);
}
static int cu_reduce_argmax(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                            ml_tensor *out, ml_tensor *) {
    return reduce_extreme(x, outer, n, inner, out, NULL, true, true);
}
static int cu_reduce_argmin(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                            ml_tensor *out, ml_tensor *) {
    return reduce_extreme(x, outer, n, inner, out, NULL, false, true);
}
static int cu_reduce_logsumexp(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                               ml_tensor *out, ml_tensor *) {
    if (x->dtype == ML_F32)
        return run<LogsumexpR<float>, float>("logsumexp", {(float *)ml_data(out)}, x, outer, n, inner);
    if (x->dtype == ML_F64)
        return run<LogsumexpR<double>, double>("logsumexp", {(double *)ml_data(out)}, x, outer, n, inner);
    return ml_error_set("logsumexp: needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
}

static int reduce_truth(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                        ml_tensor *out, bool any) {
    uint8_t *o = (uint8_t *)ml_data(out);
    const char *name = any ? "any" : "all";
    ML_CU_DISPATCH_ALL(x->dtype, {
        if (any) return run<TruthR<T, true>, T>(name, {o}, x, outer, n, inner);
        return run<TruthR<T, false>, T>(name, {o}, x, outer, n, inner);
    })
    return ml_error_set("%s: not defined for %s", name, ml_dtype_name(x->dtype));
}
static int cu_reduce_all(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                         ml_tensor *out, ml_tensor *) {
    return reduce_truth(x, outer, n, inner, out, false);
}
static int cu_reduce_any(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                         ml_tensor *out, ml_tensor *) {
    return reduce_truth(x, outer, n, inner, out, true);
}

#define ENTRY(NAME, name, ...) cu_reduce_##name,
const ml_reduce_ops ml_cuda_reduce = {ML_REDUCE_OPS(ENTRY)};
#undef ENTRY
