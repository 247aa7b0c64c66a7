/* The float32 matmul precision (every build), and the CUDA entry points of a build
 * without the CUDA backend: each fails with the reason ml_cuda_backend() gives. */
#include "cuda_api.h"

#include <stdatomic.h>

#include "backend.h"
#include "error.h"

static atomic_int matmul_precision = ML_MATMUL_HIGHEST;

void ml_set_float32_matmul_precision(ml_matmul_precision p) { atomic_store(&matmul_precision, (int)p); }
ml_matmul_precision ml_get_float32_matmul_precision(void) {
    return (ml_matmul_precision)atomic_load(&matmul_precision);
}

#ifndef ML_HAVE_CUDA
const char *ml_cuda_device_name(void) {
    ml_cuda_backend(); /* sets the reason */
    return NULL;
}

int ml_cuda_memory_stats(size_t *allocated, size_t *reserved) {
    *allocated = *reserved = 0;
    ml_cuda_backend();
    return -1;
}

int ml_cuda_empty_cache(void) {
    ml_cuda_backend();
    return -1;
}

int ml_cuda_synchronize(void) {
    ml_cuda_backend();
    return -1;
}
#endif
