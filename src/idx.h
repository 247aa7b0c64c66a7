/* The IDX file format (MNIST, Fashion-MNIST), plain or gzip-compressed.
 *
 * An IDX file is: two zero bytes, an element type byte (0x08 uint8, 0x09 int8,
 * 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), a dim count byte, one
 * big-endian int32 per dim, then the elements in row-major order, big-endian.
 * Compression is detected from the content (gzip's magic), not the name.
 *
 * uint8 files give a uint8 tensor (the data stays bytes in memory); int8/16/32
 * give int64, float32 float32, float64 float64. Everything is validated: a file
 * that is missing, truncated, has trailing bytes, a wrong magic or a bad type is
 * an error that names the file ("read_idx: PATH: 47040016 bytes expected for
 * 60000x28x28, found 1000"). */
#ifndef ML_IDX_H
#define ML_IDX_H

#include "tensor.h"

/* A new CPU tensor with the file's dims, or NULL with ml_error set. */
ml_tensor *ml_idx_load(const char *path);

/* Loads an image file ([N, H, W] uint8) and its label file ([N], uint8 or an
 * integer type, returned as it reads) and checks that they agree. 0, or -1 with
 * ml_error set (and nothing returned). */
int ml_idx_load_pair(const char *images_path, const char *labels_path, ml_tensor **images,
                     ml_tensor **labels);

#endif
