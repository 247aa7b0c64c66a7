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
#include "backend/augment.h"

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

/* --- augmentation (contract: src/backend/data.h; formulas: src/backend/augment.h):
 * a thread per output pixel for crops and warps; a block per image for the
 * colour jitter, whose contrast needs the image's mean (a block reduction in a
 * fixed order). --- */

template <class T>
__global__ void k_augment_crop(const T *__restrict__ src, const int64_t *__restrict__ prm,
                               T *__restrict__ out, int64_t total, int64_t c, int64_t h, int64_t w,
                               int64_t oh, int64_t ow, int mode, T fill) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t x = e % ow, y = (e / ow) % oh, p = e / (ow * oh), b = p / c;
        const int64_t top = prm[b * 3], left = prm[b * 3 + 1], flip = prm[b * 3 + 2];
        const int64_t sy = ml_aug_pad_index(top + y, h, mode);
        const int64_t sx = sy < 0 ? -1 : ml_aug_pad_index(left + (flip ? ow - 1 - x : x), w, mode);
        out[e] = sx < 0 ? fill : src[(p * h + sy) * w + sx];
    }
}

template <class T>
static void crop_launch(const ml_tensor *src, const ml_tensor *params, int mode, T fill, ml_tensor *out) {
    const int64_t total = ml_numel(out);
    k_augment_crop<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, ml_cu_stream()>>>(
        (const T *)ml_data(src), (const int64_t *)ml_data(params), (T *)ml_data(out), total,
        src->shape[1], src->shape[2], src->shape[3], out->shape[2], out->shape[3], mode, fill);
}

static int cu_data_augment_crop(const ml_tensor *src, const ml_tensor *params, int pad_mode,
                                double fill, ml_tensor *out) {
    if (ml_numel(out) == 0) return 0;
    switch (src->dtype) {
    case ML_F32: crop_launch<float>(src, params, pad_mode, (float)fill, out); break;
    case ML_F64: crop_launch<double>(src, params, pad_mode, fill, out); break;
    case ML_I64: crop_launch<int64_t>(src, params, pad_mode, (int64_t)fill, out); break;
    default: crop_launch<uint8_t>(src, params, pad_mode, ml_aug_round_u8(fill), out); break;
    }
    ML_CU_LAUNCHED("augment_crop");
    return 0;
}

__device__ inline void store_aug(float *o, double v) { *o = (float)v; }
__device__ inline void store_aug(double *o, double v) { *o = v; }
__device__ inline void store_aug(uint8_t *o, double v) { *o = ml_aug_round_u8(v); }

template <class T>
__global__ void k_augment_affine(const T *__restrict__ src, const double *__restrict__ prm,
                                 T *__restrict__ out, int64_t total, int64_t c, int64_t h,
                                 int64_t w, int bilinear, double fill) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t x = e % w, y = (e / w) % h, p = e / (w * h);
        const T *plane = src + p * h * w;
        double px, py, v;
        ml_aug_affine_source(prm + (p / c) * 6, x, y, w, h, &px, &py);
        if (bilinear) {
            ml_aug_taps t;
            ml_aug_bilinear_taps(px, py, w, h, &t);
            double acc = 0.0;
            for (int k = 0; k < t.n; k++) acc = fma(t.wt[k], (double)plane[t.idx[k]], acc);
            v = ml_aug_bilinear_value(acc, t.mask, fill);
        } else {
            const int64_t ix = ml_aug_nearest(px, w), iy = ml_aug_nearest(py, h);
            v = ix < 0 || iy < 0 ? fill : (double)plane[iy * w + ix];
        }
        store_aug(out + e, v);
    }
}

template <class T>
static void affine_launch(const ml_tensor *src, const ml_tensor *params, int bilinear, double fill,
                          ml_tensor *out) {
    const int64_t total = ml_numel(out);
    k_augment_affine<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, ml_cu_stream()>>>(
        (const T *)ml_data(src), (const double *)ml_data(params), (T *)ml_data(out), total,
        src->shape[1], src->shape[2], src->shape[3], bilinear, fill);
}

static int cu_data_augment_affine(const ml_tensor *src, const ml_tensor *params, int bilinear,
                                  double fill, ml_tensor *out) {
    if (src->dtype == ML_I64)
        return ml_error_set("affine: images must be float32, float64 or uint8, got int64");
    if (ml_numel(out) == 0) return 0;
    switch (src->dtype) {
    case ML_F32: affine_launch<float>(src, params, bilinear, fill, out); break;
    case ML_F64: affine_launch<double>(src, params, bilinear, fill, out); break;
    default: affine_launch<uint8_t>(src, params, bilinear, fill, out); break;
    }
    ML_CU_LAUNCHED("augment_affine");
    return 0;
}

/* one jitter step on a pixel of each type (torchvision's _blend; uint8 in float
 * and truncated, as .to(uint8)) */
__device__ inline float jitter_px(float v, double m, double f) {
    return ml_aug_blend_f(v, (float)m, (float)f, (float)(1.0 - f), 1.0f);
}
__device__ inline double jitter_px(double v, double m, double f) {
    return ml_aug_blend_d(v, m, f, 1.0 - f);
}
__device__ inline uint8_t jitter_px(uint8_t v, double m, double f) {
    return (uint8_t)ml_aug_blend_f((float)v, (float)m, (float)f, (float)(1.0 - f), 255.0f);
}

/* block b: image b (n pixels), already copied into out; its steps in order. The
 * mean is summed in double by the block in a fixed order (the CPU sums in
 * pixel order: equal for uint8, within rounding for floats), then rounded to
 * the image's float type as the CPU does. */
template <class T>
__global__ void k_augment_jitter(const double *__restrict__ prm, T *__restrict__ out, int64_t n) {
    __shared__ double partial[ML_CU_THREADS];
    const int64_t b = blockIdx.x;
    T *img = out + b * n;
    const bool contrast_first = prm[b * 3 + 2] != 0;
    for (int step = 0; step < 2; step++) {
        const bool contrast = (step == 0) == contrast_first;
        const double f = contrast ? prm[b * 3 + 1] : prm[b * 3];
        if (f < 0) continue;
        double mean = 0.0;
        if (contrast) {
            double s = 0.0;
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += (double)img[i];
            partial[threadIdx.x] = s;
            __syncthreads();
            for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
                if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
                __syncthreads();
            }
            mean = partial[0] / (double)n;
            __syncthreads();
        }
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) img[i] = jitter_px(img[i], mean, f);
        __syncthreads();
    }
}

static int cu_data_augment_jitter(const ml_tensor *src, const ml_tensor *params, ml_tensor *out) {
    if (src->dtype == ML_I64)
        return ml_error_set("color_jitter: images must be float32, float64 or uint8, got int64");
    const int64_t b = src->shape[0], n = src->shape[2] * src->shape[3];
    if (b == 0 || n == 0) return 0;
    cudaStream_t s = ml_cu_stream();
    cudaError_t e = cudaMemcpyAsync(ml_data(out), ml_data(src), (size_t)ml_numel(src) * ml_dtype_size(src->dtype),
                                    cudaMemcpyDeviceToDevice, s);
    if (e != cudaSuccess) return ml_cu_fail("color_jitter", e);
    const double *p = (const double *)ml_data(params);
    switch (src->dtype) {
    case ML_F32: k_augment_jitter<float><<<(unsigned)b, ML_CU_THREADS, 0, s>>>(p, (float *)ml_data(out), n); break;
    case ML_F64: k_augment_jitter<double><<<(unsigned)b, ML_CU_THREADS, 0, s>>>(p, (double *)ml_data(out), n); break;
    default: k_augment_jitter<uint8_t><<<(unsigned)b, ML_CU_THREADS, 0, s>>>(p, (uint8_t *)ml_data(out), n); break;
    }
    ML_CU_LAUNCHED("augment_jitter");
    return 0;
}

const ml_data_ops ml_cuda_data = {ML_DATA_ENTRIES(ML_BACKEND_ENTRY, cu_data_)};
