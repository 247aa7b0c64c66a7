/* Backend family: batch assembly for the data loader, straight from a dataset's
 * uint8 storage (resident on the device when training on a GPU).
 *
 * Contract (checked by src/ops/data.c): src/labels contiguous with N rows, indices
 * int64 [B] contiguous on the same device holding 0-based rows in [0, N), out
 * contiguous with B rows of the right dtype. */
#ifndef ML_BACKEND_DATA_H
#define ML_BACKEND_DATA_H

#include "../tensor.h"
#include "table.h"

/* The family's entries (see table.h):
 *  - gather_scaled: out[b, ...] = src[indices[b], ...] * scale + shift; src uint8
 *    [N, ...], indices int64 [B] (0-based), out float [B, ...]. The value of byte v
 *    is computed in double and rounded once to out's dtype (ToTensor: scale 1/255;
 *    Normalize(m, s) folded in: scale 1/(255 s), shift -m/s). next: NULL or the next
 *    batch's indices (checked as indices are), a hint: the CPU fetches their rows
 *    into the cache after this gather, each by the thread that will gather it, so
 *    the next batch does not wait on their misses; a backend may ignore it.
 *  - gather_one_hot: out[b, c] = (labels[indices[b]] == c); labels uint8 or int64
 *    [N], out float [B, n_classes]; a label outside [0, n_classes) is an error.
 *  - gather_labels: out[b] = labels[indices[b]] as int64.
 *  - gather_rows: out[b, ...] = src[indices[b], ...], any dtype (out has src's):
 *    TensorDataset batches and raw (untransformed) samples.
 *
 * The augmentation entries (RandomCrop, RandomHorizontalFlip, RandomRotation,
 * RandomAffine, ColorJitter; per-pixel formulas in augment.h): src contiguous
 * images [B, C, H, W], out contiguous [B, C, Ho, Wo] of src's dtype, params
 * contiguous on src's device with one row of numbers per image b (drawn by the
 * caller, so that a seeded run is the same on every device):
 *  - augment_crop: params int64 [B, 3] = (top, left, flip); out[b, c, y, x] =
 *    src[b, c, pad(top + y), pad(left + x')] with x' = flip ? Wo - 1 - x : x and
 *    pad the padding rule of pad_mode (ML_AUG_PAD_*: fill for constant). Any
 *    dtype (fill converted to it). Crops, pads and flips.
 *  - augment_affine: params float64 [B, 6], each image's inverse affine matrix in
 *    torchvision's centred coordinates; Ho = H, Wo = W; bilinear (1) or nearest
 *    (0) sampling, fill outside. float32, float64 or uint8.
 *  - augment_jitter: params float64 [B, 3] = (brightness factor, contrast factor,
 *    contrast first: 0/1); a factor < 0 skips its step; C == 1 (the contrast's
 *    mean is the image's). float32, float64 (values in [0, 1]) or uint8. */
#define ML_DATA_ENTRIES(X, P)                                                            \
    X(P, int, gather_scaled,                                                             \
      (const ml_tensor *src, const ml_tensor *indices, double scale, double shift,       \
       ml_tensor *out, const ml_tensor *next))                                           \
    X(P, int, gather_one_hot,                                                            \
      (const ml_tensor *labels, const ml_tensor *indices, int64_t n_classes, ml_tensor *out)) \
    X(P, int, gather_labels, (const ml_tensor *labels, const ml_tensor *indices, ml_tensor *out)) \
    X(P, int, gather_rows, (const ml_tensor *src, const ml_tensor *indices, ml_tensor *out)) \
    X(P, int, augment_crop,                                                              \
      (const ml_tensor *src, const ml_tensor *params, int pad_mode, double fill, ml_tensor *out)) \
    X(P, int, augment_affine,                                                            \
      (const ml_tensor *src, const ml_tensor *params, int bilinear, double fill, ml_tensor *out)) \
    X(P, int, augment_jitter, (const ml_tensor *src, const ml_tensor *params, ml_tensor *out))

typedef struct ml_data_ops {
    ML_DATA_ENTRIES(ML_BACKEND_FIELD, _)
} ml_data_ops;

#endif
