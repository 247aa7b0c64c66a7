/* The CUDA backend's own entry points (beyond the op table): device queries,
 * allocator counters, and the float32 matmul precision. Implemented by
 * the kernels/ sources when the backend is compiled in; src/cuda_api.c holds the answers
 * of a build without it (each fails with ml_error set) and the precision setting,
 * which exists in every build (the CPU ignores it, as PyTorch's CPU does). */
#ifndef ML_CUDA_API_H
#define ML_CUDA_API_H

#include <stdbool.h>
#include <stddef.h>

/* The name of device 0 ("NVIDIA H200"), or NULL with ml_error set. */
const char *ml_cuda_device_name(void);
/* Bytes held by live tensors (rounded as the allocator hands them out) and bytes
 * reserved from the driver (live + cached); 0 or -1 with ml_error set. */
int ml_cuda_memory_stats(size_t *allocated, size_t *reserved);
/* Gives every cached (free) block back to the driver; 0 or -1. */
int ml_cuda_empty_cache(void);
/* Waits for all queued work; 0 or -1. */
int ml_cuda_synchronize(void);
/* Chooses the device the backend will run on (index modulo the number of
 * devices; 0 by default); only before the backend's first use (a distributed
 * run picks its local rank's GPU). 0, or -1 with ml_error set. */
int ml_cuda_set_device(int index);
/* The number of CUDA devices (0 without a driver, a device or the plugin; no
 * error is set). */
int ml_cuda_device_count(void);
/* The backend's stream (a cudaStream_t), NULL with ml_error set without CUDA. */
void *ml_cuda_stream(void);

/* torch.set_float32_matmul_precision: "highest" (full float32, the default) or
 * "high" / "medium" (float32 products may use TF32 tensor cores). */
typedef enum { ML_MATMUL_HIGHEST, ML_MATMUL_HIGH, ML_MATMUL_MEDIUM } ml_matmul_precision;
void ml_set_float32_matmul_precision(ml_matmul_precision p);
ml_matmul_precision ml_get_float32_matmul_precision(void);

#endif
