/* Backend family: batch assembly for the data loader, straight from a dataset's
 * uint8 storage (resident on the device when training on a GPU). */
#ifndef ML_BACKEND_DATA_H
#define ML_BACKEND_DATA_H

#include "../tensor.h"

typedef struct ml_data_ops {
    /* out[b, ...] = src[indices[b], ...] * scale + shift; src uint8 [N, ...],
     * indices int64 [B] (0-based), out float [B, ...] */
    int (*gather_scaled)(const ml_tensor *src, const ml_tensor *indices, double scale,
                         double shift, ml_tensor *out);
    /* out[b, c] = (labels[indices[b]] == c); labels uint8 or int64 [N] */
    int (*gather_one_hot)(const ml_tensor *labels, const ml_tensor *indices, int64_t n_classes,
                          ml_tensor *out);
    /* out[b] = labels[indices[b]] as int64 */
    int (*gather_labels)(const ml_tensor *labels, const ml_tensor *indices, ml_tensor *out);
} ml_data_ops;

#endif
