/* safetensors checkpoints (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3],
 *    "data_offsets": [begin, end]}, ...}
 * (padded with spaces to a multiple of 8 bytes, as the reference writer does), then
 * the raw little-endian element bytes; offsets count from the end of the header.
 * Dtypes: F32, F64, I64, U8 (BOOL reads as uint8). */
#ifndef ML_SAFETENSORS_H
#define ML_SAFETENSORS_H

#include "tensor.h"

typedef struct ml_safetensors {
    int n;
    char **names;
    ml_tensor **tensors;    /* owned; a slot may be NULLed by a caller taking it over */
    int n_meta;
    char **meta_keys, **meta_values;
} ml_safetensors;

/* Writes the n tensors (any device, any strides) under names, and n_meta metadata
 * pairs, to path: into a temporary file next to it, renamed over path once
 * complete, so a crash never leaves a half-written checkpoint. Tensors are
 * written in the order given. 0, or -1 with ml_error set ("save: ..."). */
int ml_safetensors_save(const char *path, int n, const char *const *names,
                        ml_tensor *const *tensors, int n_meta, const char *const *meta_keys,
                        const char *const *meta_values);

/* Reads a checkpoint (tensors on the CPU, in header order). NULL with ml_error set
 * ("load: ...") when the file cannot be read or is not valid safetensors. */
ml_safetensors *ml_safetensors_load(const char *path);
void ml_safetensors_free(ml_safetensors *st);

#endif
