/* Batch assembly: checks, output allocation and dispatch to the data family. */
#include "data.h"

#include "../backend.h"
#include "../backend/augment.h"
#include "../error.h"
#include "elementwise.h"

/* Checks src and indices; returns contiguous indices (a new reference). */
static ml_tensor *prepare(const char *fname, const ml_tensor *src, const ml_tensor *indices,
                          int min_ndim) {
    char a[ML_SHAPE_STR_MAX];
    if (src->ndim < min_ndim)
        return ml_error_set("%s: source needs at least %d dims [N, ...], got shape %s", fname,
                            min_ndim, ml_shape_str(src->ndim, src->shape, a, sizeof a)), NULL;
    if (!ml_is_contiguous(src))
        return ml_error_set("%s: source must be contiguous (call :contiguous() once)", fname), NULL;
    if (indices->dtype != ML_I64 || indices->ndim != 1)
        return ml_error_set("%s: indices must be int64 [B], got %s %s", fname,
                            ml_dtype_name(indices->dtype),
                            ml_shape_str(indices->ndim, indices->shape, a, sizeof a)), NULL;
    ml_device dev = src->storage->device, idev = indices->storage->device;
    if (idev == ML_CPU) {
        const int64_t *p = (const int64_t *)ml_data(indices);
        int64_t n = ml_numel(indices), rows = src->shape[0], st = indices->strides[0];
        for (int64_t i = 0; i < n; i++) {
            int64_t v = p[i * st];
            if (v < 0 || v >= rows)
                return ml_error_set("%s: index %lld is out of range for %lld rows (indices are "
                                    "0-based)", fname, (long long)v, (long long)rows), NULL;
        }
    } else if (idev != dev) {
        return ml_error_set("%s: indices are on %s, the source on %s", fname, ml_device_name(idev),
                            ml_device_name(dev)), NULL;
    }
    ml_tensor *idx = (ml_tensor *)indices;
    if (!ml_is_contiguous(idx)) return ml_contiguous_copy(idx);
    return ml_tensor_retain(idx);
}

static const ml_data_ops *data_ops(const char *fname, const ml_tensor *src) {
    return ml_need_data(src, fname);
}

/* idx may have been made contiguous on the host before moving: do both steps. */
static ml_tensor *ready_indices(const char *fname, const ml_tensor *src, const ml_tensor *indices,
                                int min_ndim) {
    ml_tensor *idx = prepare(fname, src, indices, min_ndim);
    if (idx && idx->storage->device != src->storage->device) {
        ml_tensor *d = ml_to_device(idx, src->storage->device);
        ml_tensor_release(idx);
        idx = d;
    }
    return idx;
}

static ml_tensor *finish(ml_tensor *out, ml_tensor *idx, int rc) {
    ml_tensor_release(idx);
    if (rc) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

ml_tensor *ml_gather_scaled(const ml_tensor *src, const ml_tensor *indices, double scale,
                            double shift, ml_dtype dt, bool add_channel, const ml_tensor *next) {
    const char *fname = "gather_scaled";
    const ml_data_ops *ops = data_ops(fname, src);
    if (!ops) return NULL;
    if (src->dtype != ML_U8)
        return ml_error_set("%s: source must be uint8, got %s", fname, ml_dtype_name(src->dtype)), NULL;
    if (dt != ML_F32 && dt != ML_F64)
        return ml_error_set("%s: output must be float32 or float64, got %s", fname,
                            ml_dtype_name(dt)), NULL;
    if (add_channel && src->ndim >= ML_MAX_DIMS)
        return ml_error_set("%s: no room for a channel dim in %d dims", fname, src->ndim), NULL;
    ml_tensor *idx = ready_indices(fname, src, indices, 1);
    if (!idx) return NULL;
    int64_t shape[ML_MAX_DIMS];
    int nd = 0;
    shape[nd++] = idx->shape[0];
    if (add_channel) shape[nd++] = 1;
    for (int i = 1; i < src->ndim; i++) shape[nd++] = src->shape[i];
    ml_tensor *nidx = NULL;
    if (next && !(nidx = ready_indices(fname, src, next, 1))) return finish(NULL, idx, -1);
    ml_tensor *out = ml_tensor_empty(dt, src->storage->device, nd, shape);
    int rc = out ? ops->gather_scaled(src, idx, scale, shift, out, nidx) : -1;
    ml_tensor_release(nidx);
    return finish(out, idx, rc);
}

static int check_labels(const char *fname, const ml_tensor *labels) {
    char a[ML_SHAPE_STR_MAX];
    if (labels->ndim != 1 || (labels->dtype != ML_U8 && labels->dtype != ML_I64))
        return ml_error_set("%s: labels must be uint8 or int64 [N], got %s %s", fname,
                            ml_dtype_name(labels->dtype),
                            ml_shape_str(labels->ndim, labels->shape, a, sizeof a));
    return 0;
}

ml_tensor *ml_gather_one_hot(const ml_tensor *labels, const ml_tensor *indices,
                             int64_t n_classes, ml_dtype dt) {
    const char *fname = "one_hot";
    const ml_data_ops *ops = data_ops(fname, labels);
    if (!ops || check_labels(fname, labels)) return NULL;
    if (n_classes < 1)
        return ml_error_set("%s: number of classes must be positive, got %lld", fname,
                            (long long)n_classes), NULL;
    if (dt == ML_U8)
        return ml_error_set("%s: output must be float32, float64 or int64, got uint8", fname), NULL;
    ml_tensor *idx = ready_indices(fname, labels, indices, 1);
    if (!idx) return NULL;
    int64_t shape[2] = {idx->shape[0], n_classes};
    ml_tensor *out = ml_tensor_empty(dt, labels->storage->device, 2, shape);
    if (!out) return finish(NULL, idx, -1);
    return finish(out, idx, ops->gather_one_hot(labels, idx, n_classes, out));
}

ml_tensor *ml_gather_labels(const ml_tensor *labels, const ml_tensor *indices) {
    const char *fname = "gather_labels";
    const ml_data_ops *ops = data_ops(fname, labels);
    if (!ops || check_labels(fname, labels)) return NULL;
    ml_tensor *idx = ready_indices(fname, labels, indices, 1);
    if (!idx) return NULL;
    ml_tensor *out = ml_tensor_empty(ML_I64, labels->storage->device, 1, idx->shape);
    if (!out) return finish(NULL, idx, -1);
    return finish(out, idx, ops->gather_labels(labels, idx, out));
}

ml_tensor *ml_gather_rows(const ml_tensor *src, const ml_tensor *indices) {
    const char *fname = "gather_rows";
    const ml_data_ops *ops = data_ops(fname, src);
    if (!ops) return NULL;
    ml_tensor *idx = ready_indices(fname, src, indices, 1);
    if (!idx) return NULL;
    int64_t shape[ML_MAX_DIMS];
    shape[0] = idx->shape[0];
    for (int i = 1; i < src->ndim; i++) shape[i] = src->shape[i];
    ml_tensor *out = ml_tensor_empty(src->dtype, src->storage->device, src->ndim, shape);
    if (!out) return finish(NULL, idx, -1);
    return finish(out, idx, ops->gather_rows(src, idx, out));
}

/* --- augmentation --- */

/* Checks images [B, C, H, W] and their params [B, k] of dtype pdt; returns
 * contiguous params on the images' device (a new reference) and *img, the
 * images made contiguous (a new reference). */
static ml_tensor *augment_inputs(const char *fname, const ml_tensor *src, const ml_tensor *params,
                                 ml_dtype pdt, int64_t k, ml_tensor **img) {
    char a[ML_SHAPE_STR_MAX];
    *img = NULL;
    if (src->ndim != 4)
        return ml_error_set("%s: images must be [B, C, H, W], got shape %s", fname,
                            ml_shape_str(src->ndim, src->shape, a, sizeof a)), NULL;
    if (params->dtype != pdt || params->ndim != 2 || params->shape[0] != src->shape[0] ||
        params->shape[1] != k)
        return ml_error_set("%s: params must be %s [%lld, %lld], got %s %s", fname, ml_dtype_name(pdt),
                            (long long)src->shape[0], (long long)k, ml_dtype_name(params->dtype),
                            ml_shape_str(params->ndim, params->shape, a, sizeof a)), NULL;
    ml_device dev = src->storage->device;
    ml_tensor *p = ml_is_contiguous(params) ? ml_tensor_retain((ml_tensor *)params)
                                            : ml_contiguous_copy((ml_tensor *)params);
    if (p && p->storage->device != dev) {
        ml_tensor *d = ml_to_device(p, dev);
        ml_tensor_release(p);
        p = d;
    }
    if (!p) return NULL;
    *img = ml_is_contiguous(src) ? ml_tensor_retain((ml_tensor *)src) : ml_contiguous_copy((ml_tensor *)src);
    if (!*img) {
        ml_tensor_release(p);
        return NULL;
    }
    return p;
}

static ml_tensor *augment_finish(ml_tensor *out, ml_tensor *img, ml_tensor *p, int rc) {
    ml_tensor_release(img);
    ml_tensor_release(p);
    if (rc) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

ml_tensor *ml_augment_crop(const ml_tensor *src, const ml_tensor *params, int64_t out_h,
                           int64_t out_w, int pad_mode, double fill) {
    const char *fname = "crop";
    const ml_data_ops *ops = data_ops(fname, src);
    if (!ops) return NULL;
    if (out_h < 0 || out_w < 0)
        return ml_error_set("%s: output size %lld x %lld is negative", fname, (long long)out_h,
                            (long long)out_w), NULL;
    if (pad_mode < ML_AUG_PAD_CONSTANT || pad_mode > ML_AUG_PAD_SYMMETRIC)
        return ml_error_set("%s: unknown padding mode %d", fname, pad_mode), NULL;
    ml_tensor *img;
    ml_tensor *p = augment_inputs(fname, src, params, ML_I64, 3, &img);
    if (!p) return NULL;
    if (pad_mode != ML_AUG_PAD_CONSTANT && (img->shape[2] == 0 || img->shape[3] == 0) &&
        out_h * out_w > 0)
        return augment_finish(NULL, img, p, ml_error_set("%s: cannot pad an empty image", fname));
    int64_t shape[4] = {img->shape[0], img->shape[1], out_h, out_w};
    ml_tensor *out = ml_tensor_empty(img->dtype, img->storage->device, 4, shape);
    int rc = out ? ops->augment_crop(img, p, pad_mode, fill, out) : -1;
    return augment_finish(out, img, p, rc);
}

ml_tensor *ml_augment_affine(const ml_tensor *src, const ml_tensor *params, bool bilinear,
                             double fill) {
    const char *fname = "affine";
    const ml_data_ops *ops = data_ops(fname, src);
    if (!ops) return NULL;
    if (src->dtype == ML_I64)
        return ml_error_set("%s: images must be float32, float64 or uint8, got int64", fname), NULL;
    ml_tensor *img;
    ml_tensor *p = augment_inputs(fname, src, params, ML_F64, 6, &img);
    if (!p) return NULL;
    ml_tensor *out = ml_tensor_empty_like(img);
    int rc = out ? ops->augment_affine(img, p, bilinear, fill, out) : -1;
    return augment_finish(out, img, p, rc);
}

ml_tensor *ml_augment_jitter(const ml_tensor *src, const ml_tensor *params) {
    const char *fname = "color_jitter";
    const ml_data_ops *ops = data_ops(fname, src);
    if (!ops) return NULL;
    if (src->dtype == ML_I64)
        return ml_error_set("%s: images must be float32, float64 or uint8, got int64", fname), NULL;
    if (src->ndim == 4 && src->shape[1] != 1)
        return ml_error_set("%s: brightness and contrast of greyscale images (1 channel), got %lld "
                            "channels", fname, (long long)src->shape[1]), NULL;
    ml_tensor *img;
    ml_tensor *p = augment_inputs(fname, src, params, ML_F64, 3, &img);
    if (!p) return NULL;
    ml_tensor *out = ml_tensor_empty_like(img);
    int rc = out ? ops->augment_jitter(img, p, out) : -1;
    return augment_finish(out, img, p, rc);
}
