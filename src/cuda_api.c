/* The float32 matmul precision, in every build (the CPU ignores it, as PyTorch's
 * CPU does; the CUDA plugin reads it). The CUDA entry points are in cuda_loader.c. */
#include "cuda_api.h"

#include <stdatomic.h>

#include "backend.h"
#include "error.h"

static atomic_int matmul_precision = ML_MATMUL_HIGHEST;

void ml_set_float32_matmul_precision(ml_matmul_precision p) { atomic_store(&matmul_precision, (int)p); }
ml_matmul_precision ml_get_float32_matmul_precision(void) {
    return (ml_matmul_precision)atomic_load(&matmul_precision);
}
