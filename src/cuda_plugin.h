/* The seam between the core and the CUDA backend, which is a plugin
 * (libmoonlight_cuda.so) loaded on first use by src/cuda_loader.c.
 *
 * Why a plugin: cudart and cuBLAS are hundreds of megabytes of shared code. Linked
 * into the core they cost every process ~80 ms at start-up and ~200 MiB of RSS, GPU
 * or not. Loaded lazily, and only when an NVIDIA driver is present, a CPU run pays
 * nothing.
 *
 * The plugin calls back into the core through ml_cuda_host_api (the core's symbols
 * are not visible to a library that a Lua module dlopens), and the core reaches the
 * plugin through ml_cuda_plugin. Both carry an ABI number. */
#ifndef ML_CUDA_PLUGIN_H
#define ML_CUDA_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "cuda_api.h"

/* 3: the batchnorm family's table grew (max_pool_forward / max_pool_backward), so a
 * plugin built before reads past its table */
#define ML_CUDA_PLUGIN_ABI 3
#define ML_CUDA_PLUGIN_FILE "libmoonlight_cuda.so"
#define ML_CUDA_PLUGIN_ENTRY "ml_cuda_plugin_entry"

typedef struct ml_cuda_host_api {
    int abi;
    int (*error_set)(const char *message);
    bool (*dtype_is_float)(ml_dtype dt);
    const char *(*dtype_name)(ml_dtype dt);
    size_t (*dtype_size)(ml_dtype dt);
    bool (*is_contiguous)(const ml_tensor *t);
    int64_t (*numel)(const ml_tensor *t);
    ml_matmul_precision (*get_float32_matmul_precision)(void);
    const char *(*loss_name)(ml_loss_kind kind);
} ml_cuda_host_api;

typedef struct ml_cuda_plugin {
    int abi;
    const ml_backend *(*backend)(void); /* NULL with the error set when no device */
    const char *(*device_name)(void);
    int (*memory_stats)(size_t *allocated, size_t *reserved);
    int (*empty_cache)(void);
    int (*synchronize)(void);
    /* ABI 2 (distributed training, src/dist.c): */
    int (*set_device)(int index);
    int (*device_count)(void);
    void *(*stream)(void);
} ml_cuda_plugin;

typedef const ml_cuda_plugin *(*ml_cuda_plugin_entry_fn)(const ml_cuda_host_api *host);

#endif
