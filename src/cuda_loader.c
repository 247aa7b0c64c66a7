/* The core's side of src/cuda_plugin.h: loads libmoonlight_cuda.so the first time
 * the CUDA backend is asked for, and only when an NVIDIA driver is present (or
 * MOONLIGHT_CUDA_FORCE_LOAD is set), so that a CPU run never maps cudart or cuBLAS.
 * It is looked for as every plugin is (src/plugin.h), $MOONLIGHT_CUDA_PLUGIN
 * first. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_plugin.h"
#include "error.h"
#include "plugin.h"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const ml_cuda_plugin *plugin;
static char reason[1024];

#ifdef ML_CUDA_PLUGIN_BUILT
static int host_error_set(const char *message) { return ml_error_set("%s", message); }

static const ml_cuda_host_api host_api = {
    .abi = ML_CUDA_PLUGIN_ABI,
    .error_set = host_error_set,
    .dtype_is_float = ml_dtype_is_float,
    .dtype_name = ml_dtype_name,
    .dtype_size = ml_dtype_size,
    .is_contiguous = ml_is_contiguous,
    .numel = ml_numel,
    .get_float32_matmul_precision = ml_get_float32_matmul_precision,
    .loss_name = ml_loss_name,
};

static bool nvidia_driver_present(void) {
    return access("/proc/driver/nvidia/version", F_OK) == 0 || access("/dev/nvidiactl", F_OK) == 0;
}

static void load(void) {
    if (!nvidia_driver_present() && !getenv("MOONLIGHT_CUDA_FORCE_LOAD")) {
        snprintf(reason, sizeof reason,
                 "cuda: no CUDA device is available (no NVIDIA driver on this machine)");
        return;
    }
    char tried[800];
    plugin = ml_plugin_load(ML_CUDA_PLUGIN_FILE, "MOONLIGHT_CUDA_PLUGIN", ML_CUDA_PLUGIN_ENTRY,
                            ML_CUDA_PLUGIN_ABI, &host_api, tried, sizeof tried);
    if (!plugin)
        snprintf(reason, sizeof reason, "cuda: the CUDA backend (%s) could not be loaded: %s",
                 ML_CUDA_PLUGIN_FILE, tried);
}
#else
static void load(void) {
    snprintf(reason, sizeof reason, "cuda: this build of moonlight has no CUDA backend (the CUDA "
                                    "toolkit was not found when it was built)");
}
#endif

static const ml_cuda_plugin *get_plugin(void) {
    pthread_once(&load_once, load);
    if (!plugin) ml_error_set("%s", reason);
    return plugin;
}

const ml_backend *ml_cuda_backend(void) {
    const ml_cuda_plugin *p = get_plugin();
    return p ? p->backend() : NULL;
}

const char *ml_cuda_device_name(void) {
    const ml_cuda_plugin *p = get_plugin();
    return p ? p->device_name() : NULL;
}

int ml_cuda_memory_stats(size_t *allocated, size_t *reserved) {
    *allocated = *reserved = 0;
    const ml_cuda_plugin *p = get_plugin();
    return p ? p->memory_stats(allocated, reserved) : -1;
}

int ml_cuda_empty_cache(void) {
    const ml_cuda_plugin *p = get_plugin();
    return p ? p->empty_cache() : -1;
}

int ml_cuda_synchronize(void) {
    const ml_cuda_plugin *p = get_plugin();
    return p ? p->synchronize() : -1;
}

int ml_cuda_set_device(int index) {
    const ml_cuda_plugin *p = get_plugin();
    return p ? p->set_device(index) : -1;
}

int ml_cuda_device_count(void) {
    pthread_once(&load_once, load);
    return plugin ? plugin->device_count() : 0;
}

void *ml_cuda_stream(void) {
    const ml_cuda_plugin *p = get_plugin();
    return p ? p->stream() : NULL;
}
