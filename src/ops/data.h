/* Batch assembly ops for the data loader: rows of a dataset's storage gathered
 * into a fresh batch, transformed on the way (ToTensor/Normalize as scale and
 * shift of the bytes, OneHot), on the dataset's device. No autograd: data has no
 * history.
 *
 * indices: int64 [B] of 0-based rows. On the CPU they are checked against the
 * row count and copied to src's device when src lives elsewhere; indices already
 * on src's device are trusted (the loader made them). src must be contiguous. */
#ifndef ML_OPS_DATA_H
#define ML_OPS_DATA_H

#include <stdbool.h>

#include "../tensor.h"

/* uint8 src [N, ...] -> dt (float32/float64) [B, ...] = src[idx] * scale + shift;
 * add_channel inserts a dim of 1 after B ([N, H, W] -> [B, 1, H, W], as ToTensor).
 * next: NULL, or the next batch's indices, whose rows are then fetched into the
 * cache (checked as indices). */
ml_tensor *ml_gather_scaled(const ml_tensor *src, const ml_tensor *indices, double scale,
                            double shift, ml_dtype dt, bool add_channel, const ml_tensor *next);
/* labels (uint8/int64) [N] -> dt [B, n_classes] one-hot of labels[idx] */
ml_tensor *ml_gather_one_hot(const ml_tensor *labels, const ml_tensor *indices,
                             int64_t n_classes, ml_dtype dt);
/* labels (uint8/int64) [N] -> int64 [B] */
ml_tensor *ml_gather_labels(const ml_tensor *labels, const ml_tensor *indices);
/* any src [N, ...] -> [B, ...] of src's dtype */
ml_tensor *ml_gather_rows(const ml_tensor *src, const ml_tensor *indices);

/* Augmentation of images [B, C, H, W] (any device; the params, one row per image,
 * drawn by the caller and made on the host or on the images' device; the
 * backend contract in src/backend/data.h, the formulas in src/backend/augment.h).
 * Each returns a new contiguous tensor of the images' dtype, or NULL. */
/* params int64 [B, 3] = (top, left, flip) -> [B, C, out_h, out_w]; pad_mode
 * ML_AUG_PAD_* (constant: fill) */
ml_tensor *ml_augment_crop(const ml_tensor *src, const ml_tensor *params, int64_t out_h,
                           int64_t out_w, int pad_mode, double fill);
/* params float64 [B, 6]: each image's inverse affine matrix (torchvision's
 * centred coordinates); nearest or bilinear sampling, fill outside. float32,
 * float64, uint8. */
ml_tensor *ml_augment_affine(const ml_tensor *src, const ml_tensor *params, bool bilinear,
                             double fill);
/* params float64 [B, 3] = (brightness, contrast, contrast first); C == 1 */
ml_tensor *ml_augment_jitter(const ml_tensor *src, const ml_tensor *params);

#endif
