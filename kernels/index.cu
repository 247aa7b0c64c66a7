/* CUDA kernels of the index family (contract: src/backend/index.h): gather /
 * scatter_add, index_select / index_add, one_hot. Tensors are contiguous and the
 * index values were checked by ops/index.c. A thread per index (or output)
 * element; the adjoints add with atomicAdd, since two elements of the index may
 * name one element of out (the order of those additions is not fixed, so float
 * sums may differ from the CPU's in the last bits). gather and index_select only
 * move elements and are typed by element size; the adjoints by dtype. */
#include "common.cuh"

/* The geometry of gather/scatter_add: the index's shape and the strides of the
 * indexed tensor (x or out), the dim the index values run along. */
struct gather_geom {
    int nd, dim;
    int64_t shape[ML_MAX_DIMS];
    int64_t st[ML_MAX_DIMS];
};

static gather_geom make_geom(const ml_tensor *index, const ml_tensor *t, int dim) {
    gather_geom g;
    g.nd = index->ndim;
    g.dim = dim;
    for (int k = 0; k < ML_MAX_DIMS; k++) {
        g.shape[k] = k < index->ndim ? index->shape[k] : 1;
        g.st[k] = k < t->ndim ? t->strides[k] : 0;
    }
    return g;
}

/* The offset in the indexed tensor of index element e whose value is v. */
__device__ __forceinline__ int64_t geom_offset(const gather_geom &g, int64_t e, int64_t v) {
    int64_t off = 0;
    for (int k = g.nd - 1; k >= 0; k--) {
        int64_t s = g.shape[k];
        int64_t q = e / s, c = e - q * s;
        e = q;
        off += (k == g.dim ? v : c) * g.st[k];
    }
    return off;
}

template <class T>
__global__ void k_gather(const T *__restrict__ x, const int64_t *__restrict__ idx, T *__restrict__ out,
                         int64_t n, gather_geom g) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x)
        out[e] = x[geom_offset(g, e, idx[e])];
}

static int cu_index_gather(const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out) {
    int64_t n = ml_numel(index);
    if (n == 0) return 0;
    gather_geom g = make_geom(index, x, dim);
    const int64_t *ip = (const int64_t *)ml_data(index);
    cudaStream_t s = ml_cu_stream();
    unsigned b = ml_cu_blocks(n);
    switch (ml_dtype_size(x->dtype)) {
    case 1: k_gather<uint8_t><<<b, ML_CU_THREADS, 0, s>>>((const uint8_t *)ml_data(x), ip, (uint8_t *)ml_data(out), n, g); break;
    case 4: k_gather<uint32_t><<<b, ML_CU_THREADS, 0, s>>>((const uint32_t *)ml_data(x), ip, (uint32_t *)ml_data(out), n, g); break;
    case 8: k_gather<uint64_t><<<b, ML_CU_THREADS, 0, s>>>((const uint64_t *)ml_data(x), ip, (uint64_t *)ml_data(out), n, g); break;
    default: return ml_error_set("gather: unsupported dtype %s", ml_dtype_name(x->dtype));
    }
    ML_CU_LAUNCHED("gather");
    return 0;
}

/* atomicAdd for the adjoints' dtypes (int64 through the unsigned 64-bit form:
 * two's complement addition is the same) */
__device__ __forceinline__ void cu_atomic_add(float *p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void cu_atomic_add(double *p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void cu_atomic_add(int64_t *p, int64_t v) {
    atomicAdd((unsigned long long *)p, (unsigned long long)v);
}

template <class T>
__global__ void k_scatter_add(T *out, const int64_t *__restrict__ idx, const T *__restrict__ src,
                              int64_t n, gather_geom g) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x)
        cu_atomic_add(out + geom_offset(g, e, idx[e]), src[e]);
}

static int cu_index_scatter_add(ml_tensor *out, int dim, const ml_tensor *index, const ml_tensor *src) {
    int64_t n = ml_numel(index);
    if (n == 0) return 0;
    if (out->dtype != ML_F32 && out->dtype != ML_F64 && out->dtype != ML_I64)
        return ml_error_set("scatter_add: not defined for %s", ml_dtype_name(out->dtype));
    gather_geom g = make_geom(index, out, dim);
    const int64_t *ip = (const int64_t *)ml_data(index);
    cudaStream_t s = ml_cu_stream();
    unsigned b = ml_cu_blocks(n);
    switch (out->dtype) {
    case ML_F32: k_scatter_add<float><<<b, ML_CU_THREADS, 0, s>>>((float *)ml_data(out), ip, (const float *)ml_data(src), n, g); break;
    case ML_F64: k_scatter_add<double><<<b, ML_CU_THREADS, 0, s>>>((double *)ml_data(out), ip, (const double *)ml_data(src), n, g); break;
    default: k_scatter_add<int64_t><<<b, ML_CU_THREADS, 0, s>>>((int64_t *)ml_data(out), ip, (const int64_t *)ml_data(src), n, g); break;
    }
    ML_CU_LAUNCHED("scatter_add");
    return 0;
}

/* x (or out) seen as [outer, n, inner]; the index picks m of the n slices; the
 * selected tensor is [outer, m, inner]. */
static void geometry(const ml_tensor *x, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *n = x->shape[dim];
}

/* element e of [outer, m, inner] -> the offset of its slice element in [outer, n, inner] */
__device__ __forceinline__ int64_t select_offset(int64_t e, const int64_t *idx, int64_t n,
                                                 int64_t m, int64_t inner) {
    int64_t j = e % inner, r = e / inner;
    int64_t i = r % m, o = r / m;
    return (o * n + idx[i]) * inner + j;
}

template <class T>
__global__ void k_index_select(const T *__restrict__ x, const int64_t *__restrict__ idx,
                               T *__restrict__ out, int64_t total, int64_t n, int64_t m, int64_t inner) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x)
        out[e] = x[select_offset(e, idx, n, m, inner)];
}

static int cu_index_index_select(const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out) {
    int64_t outer, n, inner, m = ml_numel(index);
    geometry(x, dim, &outer, &n, &inner);
    int64_t total = outer * m * inner;
    if (total == 0) return 0;
    const int64_t *ip = (const int64_t *)ml_data(index);
    cudaStream_t s = ml_cu_stream();
    unsigned b = ml_cu_blocks(total);
    switch (ml_dtype_size(x->dtype)) {
    case 1: k_index_select<uint8_t><<<b, ML_CU_THREADS, 0, s>>>((const uint8_t *)ml_data(x), ip, (uint8_t *)ml_data(out), total, n, m, inner); break;
    case 4: k_index_select<uint32_t><<<b, ML_CU_THREADS, 0, s>>>((const uint32_t *)ml_data(x), ip, (uint32_t *)ml_data(out), total, n, m, inner); break;
    case 8: k_index_select<uint64_t><<<b, ML_CU_THREADS, 0, s>>>((const uint64_t *)ml_data(x), ip, (uint64_t *)ml_data(out), total, n, m, inner); break;
    default: return ml_error_set("index_select: unsupported dtype %s", ml_dtype_name(x->dtype));
    }
    ML_CU_LAUNCHED("index_select");
    return 0;
}

template <class T>
__global__ void k_index_add(T *out, const int64_t *__restrict__ idx, const T *__restrict__ src,
                            int64_t total, int64_t n, int64_t m, int64_t inner) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x)
        cu_atomic_add(out + select_offset(e, idx, n, m, inner), src[e]);
}

static int cu_index_index_add(ml_tensor *out, int dim, const ml_tensor *index, const ml_tensor *src) {
    int64_t outer, n, inner, m = ml_numel(index);
    geometry(out, dim, &outer, &n, &inner);
    int64_t total = outer * m * inner;
    if (out->dtype != ML_F32 && out->dtype != ML_F64 && out->dtype != ML_I64)
        return ml_error_set("index_add: not defined for %s", ml_dtype_name(out->dtype));
    if (total == 0) return 0;
    const int64_t *ip = (const int64_t *)ml_data(index);
    cudaStream_t s = ml_cu_stream();
    unsigned b = ml_cu_blocks(total);
    switch (out->dtype) {
    case ML_F32: k_index_add<float><<<b, ML_CU_THREADS, 0, s>>>((float *)ml_data(out), ip, (const float *)ml_data(src), total, n, m, inner); break;
    case ML_F64: k_index_add<double><<<b, ML_CU_THREADS, 0, s>>>((double *)ml_data(out), ip, (const double *)ml_data(src), total, n, m, inner); break;
    default: k_index_add<int64_t><<<b, ML_CU_THREADS, 0, s>>>((int64_t *)ml_data(out), ip, (const int64_t *)ml_data(src), total, n, m, inner); break;
    }
    ML_CU_LAUNCHED("index_add");
    return 0;
}

/* a thread per output element: no separate zeroing pass */
template <class T>
__global__ void k_one_hot(const int64_t *__restrict__ labels, T *__restrict__ out, int64_t total,
                          int64_t n) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e / n, c = e - i * n;
        out[e] = labels[i] == c ? (T)1 : (T)0;
    }
}

static int cu_index_one_hot(const ml_tensor *labels, int64_t n, ml_tensor *out) {
    int64_t total = ml_numel(labels) * n;
    if (total == 0) return 0;
    const int64_t *lp = (const int64_t *)ml_data(labels);
    cudaStream_t s = ml_cu_stream();
    unsigned b = ml_cu_blocks(total);
    switch (out->dtype) {
    case ML_F32: k_one_hot<float><<<b, ML_CU_THREADS, 0, s>>>(lp, (float *)ml_data(out), total, n); break;
    case ML_F64: k_one_hot<double><<<b, ML_CU_THREADS, 0, s>>>(lp, (double *)ml_data(out), total, n); break;
    case ML_I64: k_one_hot<int64_t><<<b, ML_CU_THREADS, 0, s>>>(lp, (int64_t *)ml_data(out), total, n); break;
    case ML_U8: k_one_hot<uint8_t><<<b, ML_CU_THREADS, 0, s>>>(lp, (uint8_t *)ml_data(out), total, n); break;
    default: return ml_error_set("one_hot: unsupported output dtype %s", ml_dtype_name(out->dtype));
    }
    ML_CU_LAUNCHED("one_hot");
    return 0;
}

const ml_index_ops ml_cuda_index = {ML_INDEX_ENTRIES(ML_BACKEND_ENTRY, cu_index_)};
