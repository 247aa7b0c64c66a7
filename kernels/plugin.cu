/* The plugin's side of src/cuda_plugin.h: the one exported entry point, and the few
 * core functions the kernels use, forwarded to the core through the host table.
 * Everything else in libmoonlight_cuda.so is hidden (-fvisibility=hidden), so these
 * definitions never clash with the core's own when both are in one process. */
#include <stdarg.h>
#include <stdio.h>

#include "common.cuh"
#include "cuda_plugin.h"

static const ml_cuda_host_api *host;

extern "C" int ml_error_set(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return host->error_set(buf);
}

extern "C" bool ml_dtype_is_float(ml_dtype dt) { return host->dtype_is_float(dt); }
extern "C" const char *ml_dtype_name(ml_dtype dt) { return host->dtype_name(dt); }
extern "C" size_t ml_dtype_size(ml_dtype dt) { return host->dtype_size(dt); }
extern "C" bool ml_is_contiguous(const ml_tensor *t) { return host->is_contiguous(t); }
extern "C" int64_t ml_numel(const ml_tensor *t) { return host->numel(t); }
extern "C" ml_matmul_precision ml_get_float32_matmul_precision(void) {
    return host->get_float32_matmul_precision();
}
extern "C" const char *ml_loss_name(ml_loss_kind kind) { return host->loss_name(kind); }

static const ml_cuda_plugin plugin = {
    /* abi */ ML_CUDA_PLUGIN_ABI,
    /* backend */ ml_cuda_backend,
    /* device_name */ ml_cuda_device_name,
    /* memory_stats */ ml_cuda_memory_stats,
    /* empty_cache */ ml_cuda_empty_cache,
    /* synchronize */ ml_cuda_synchronize,
    /* set_device */ ml_cuda_set_device,
    /* device_count */ ml_cuda_device_count,
    /* stream */ ml_cuda_stream,
};

extern "C" __attribute__((visibility("default"))) const ml_cuda_plugin *
ml_cuda_plugin_entry(const ml_cuda_host_api *h) {
    if (!h || h->abi != ML_CUDA_PLUGIN_ABI) return NULL;
    host = h;
    return &plugin;
}
