/* CUDA kernels of the data family (contract: src/backend/data.h): a batch
 * gathered from a dataset resident on the device, rows picked by int64 indices
 * (checked by ops/data.c). A thread per output element.
 *
 * gather_scaled: the 256 possible values of a byte are computed once per block in
 * double and rounded once to the output dtype (the contract's "v * scale + shift
 * in double, rounded once"), into shared memory; each element is then a lookup,
 * so the values are bit-equal to the CPU's. gather_one_hot reports a label out of
 * range as the CPU does, which costs one wait on the stream per call. */
#include "common.cuh"

static int64_t row_len(const ml_tensor *t) {
    int64_t n = 1;
    for (int i = 1; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

template <class T>
__global__ void k_gather_scaled(const uint8_t *__restrict__ src, const int64_t *__restrict__ idx,
                                T *__restrict__ out, int64_t total, int64_t row, double scale,
                                double shift) {
    __shared__ T lut[256];
    for (int v = threadIdx.x; v < 256; v += blockDim.x) lut[v] = (T)((double)v * scale + shift);
    __syncthreads();
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = e / row, j = e - b * row;
        out[e] = lut[src[idx[b] * row + j]];
    }
}

/* next (the next batch's rows, a prefetch hint for the CPU's caches) has no use
 * here: the dataset is in device memory. */
static int cu_data_gather_scaled(const ml_tensor *src, const ml_tensor *indices, double scale,
                            double shift, ml_tensor *out, const ml_tensor *next) {
    (void)next;
    if (out->dtype != ML_F32 && out->dtype != ML_F64)
        return ml_error_set("gather_scaled: output must be float32 or float64, got %s",
                            ml_dtype_name(out->dtype));
    int64_t row = row_len(src), total = ml_numel(indices) * row;
    if (total == 0) return 0;
    const uint8_t *sp = (const uint8_t *)ml_data(src);
    const int64_t *ip = (const int64_t *)ml_data(indices);
    cudaStream_t s = ml_cu_stream();
    unsigned b = ml_cu_blocks(total);
    if (out->dtype == ML_F32)
        k_gather_scaled<float><<<b, ML_CU_THREADS, 0, s>>>(sp, ip, (float *)ml_data(out), total, row, scale, shift);
    else
        k_gather_scaled<double><<<b, ML_CU_THREADS, 0, s>>>(sp, ip, (double *)ml_data(out), total, row, scale, shift);
    ML_CU_LAUNCHED("gather_scaled");
    return 0;
}

template <class L, class T>
__global__ void k_gather_one_hot(const L *__restrict__ labels, const int64_t *__restrict__ idx,
                                 T *__restrict__ out, int64_t total, int64_t n_classes,
                                 ml_cu_status *st) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = e / n_classes, k = e - b * n_classes;
        int64_t c = (int64_t)labels[idx[b]];
        if (c < 0 || c >= n_classes) {
            if (k == 0) ml_cu_flag(st, (long long)c);
            out[e] = 0;
        } else {
            out[e] = c == k ? (T)1 : (T)0;
        }
    }
}

template <class L>
static void one_hot_launch(const ml_tensor *labels, const int64_t *ip, ml_tensor *out,
                           int64_t total, int64_t n_classes, ml_cu_status *st) {
    const L *lp = (const L *)ml_data(labels);
    cudaStream_t s = ml_cu_stream();
    unsigned b = ml_cu_blocks(total);
    switch (out->dtype) {
    case ML_F32: k_gather_one_hot<L, float><<<b, ML_CU_THREADS, 0, s>>>(lp, ip, (float *)ml_data(out), total, n_classes, st); break;
    case ML_F64: k_gather_one_hot<L, double><<<b, ML_CU_THREADS, 0, s>>>(lp, ip, (double *)ml_data(out), total, n_classes, st); break;
    default: k_gather_one_hot<L, int64_t><<<b, ML_CU_THREADS, 0, s>>>(lp, ip, (int64_t *)ml_data(out), total, n_classes, st); break;
    }
}

static int cu_data_gather_one_hot(const ml_tensor *labels, const ml_tensor *indices, int64_t n_classes,
                             ml_tensor *out) {
    if (labels->dtype != ML_U8 && labels->dtype != ML_I64)
        return ml_error_set("one_hot: labels must be uint8 or int64, got %s",
                            ml_dtype_name(labels->dtype));
    if (out->dtype != ML_F32 && out->dtype != ML_F64 && out->dtype != ML_I64)
        return ml_error_set("one_hot: output must be float32, float64 or int64, got %s",
                            ml_dtype_name(out->dtype));
    int64_t total = ml_numel(indices) * n_classes;
    if (total == 0) return 0;
    ml_cu_status *st = ml_cu_status_new("one_hot");
    if (!st) return -1;
    const int64_t *ip = (const int64_t *)ml_data(indices);
    if (labels->dtype == ML_U8) one_hot_launch<uint8_t>(labels, ip, out, total, n_classes, st);
    else one_hot_launch<int64_t>(labels, ip, out, total, n_classes, st);
    cudaError_t e = cudaGetLastError();
    ml_cu_status h;
    if (ml_cu_status_read("one_hot", st, &h)) return -1;
    if (e != cudaSuccess) return ml_cu_fail("one_hot", e);
    if (h.bad)
        return ml_error_set("one_hot: class id %lld is out of range for %lld classes (ids are "
                            "0-based, 0 to %lld)", (long long)h.value, (long long)n_classes,
                            (long long)n_classes - 1);
    return 0;
}

template <class L>
__global__ void k_gather_labels(const L *__restrict__ labels, const int64_t *__restrict__ idx,
                                int64_t *__restrict__ out, int64_t n) {
    for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < n;
         b += (int64_t)gridDim.x * blockDim.x)
        out[b] = (int64_t)labels[idx[b]];
}

static int cu_data_gather_labels(const ml_tensor *labels, const ml_tensor *indices, ml_tensor *out) {
    int64_t n = ml_numel(indices);
    const int64_t *ip = (const int64_t *)ml_data(indices);
    int64_t *op = (int64_t *)ml_data(out);
    if (labels->dtype != ML_U8 && labels->dtype != ML_I64)
        return ml_error_set("gather_labels: labels must be uint8 or int64, got %s",
                            ml_dtype_name(labels->dtype));
    if (n == 0) return 0;
    cudaStream_t s = ml_cu_stream();
    unsigned b = ml_cu_blocks(n);
    if (labels->dtype == ML_U8)
        k_gather_labels<uint8_t><<<b, ML_CU_THREADS, 0, s>>>((const uint8_t *)ml_data(labels), ip, op, n);
    else
        k_gather_labels<int64_t><<<b, ML_CU_THREADS, 0, s>>>((const int64_t *)ml_data(labels), ip, op, n);
    ML_CU_LAUNCHED("gather_labels");
    return 0;
}

/* rows copied in words of W bytes (the widest that divides the row's bytes) */
template <class W>
__global__ void k_gather_rows(const W *__restrict__ src, const int64_t *__restrict__ idx,
                              W *__restrict__ out, int64_t total, int64_t row) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = e / row, j = e - b * row;
        out[e] = src[idx[b] * row + j];
    }
}

static int cu_data_gather_rows(const ml_tensor *src, const ml_tensor *indices, ml_tensor *out) {
    int64_t rb = row_len(src) * (int64_t)ml_dtype_size(src->dtype), n = ml_numel(indices);
    if (rb == 0 || n == 0) return 0;
    const int64_t *ip = (const int64_t *)ml_data(indices);
    cudaStream_t s = ml_cu_stream();
    /* ml_data of a contiguous tensor is aligned to its element size at least;
     * the storage itself to 256 bytes: wider words only when both allow them */
    uintptr_t align = (uintptr_t)ml_data(src) | (uintptr_t)ml_data(out);
    if (rb % 16 == 0 && align % 16 == 0) {
        int64_t row = rb / 16, total = n * row;
        k_gather_rows<uint4><<<ml_cu_blocks(total), ML_CU_THREADS, 0, s>>>(
            (const uint4 *)ml_data(src), ip, (uint4 *)ml_data(out), total, row);
    } else if (rb % 8 == 0 && align % 8 == 0) {
        int64_t row = rb / 8, total = n * row;
        k_gather_rows<uint64_t><<<ml_cu_blocks(total), ML_CU_THREADS, 0, s>>>(
            (const uint64_t *)ml_data(src), ip, (uint64_t *)ml_data(out), total, row);
    } else if (rb % 4 == 0 && align % 4 == 0) {
        int64_t row = rb / 4, total = n * row;
        k_gather_rows<uint32_t><<<ml_cu_blocks(total), ML_CU_THREADS, 0, s>>>(
            (const uint32_t *)ml_data(src), ip, (uint32_t *)ml_data(out), total, row);
    } else {
        int64_t total = n * rb;
        k_gather_rows<uint8_t><<<ml_cu_blocks(total), ML_CU_THREADS, 0, s>>>(
            (const uint8_t *)ml_data(src), ip, (uint8_t *)ml_data(out), total, rb);
    }
    ML_CU_LAUNCHED("gather_rows");
    return 0;
}

const ml_data_ops ml_cuda_data = {ML_DATA_ENTRIES(ML_BACKEND_ENTRY, cu_data_)};
