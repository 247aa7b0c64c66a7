/* The core's side of src/cuda_plugin.h: finds and loads libmoonlight_cuda.so the
 * first time the CUDA backend is asked for, and only when an NVIDIA driver is
 * present, so that a CPU run never maps cudart or cuBLAS. The plugin is looked for
 * in $MOONLIGHT_CUDA_PLUGIN, beside the object holding this code (the CLI, the Lua
 * module or libmoonlight.so), in ../lib from there, in the install's libdir, and on
 * the loader's path. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_plugin.h"
#include "error.h"

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

/* Tries one path; true when the plugin is loaded. */
static bool try_load(const char *path, char *tried, size_t n) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        size_t used = strlen(tried);
        snprintf(tried + used, n - used, "%s%s", used ? "; " : "", dlerror());
        return false;
    }
    ml_cuda_plugin_entry_fn entry = (ml_cuda_plugin_entry_fn)dlsym(h, ML_CUDA_PLUGIN_ENTRY);
    const ml_cuda_plugin *p = entry ? entry(&host_api) : NULL;
    if (!p || p->abi != ML_CUDA_PLUGIN_ABI) {
        size_t used = strlen(tried);
        snprintf(tried + used, n - used, "%s%s: not a moonlight %d CUDA plugin", used ? "; " : "",
                 path, ML_CUDA_PLUGIN_ABI);
        dlclose(h);
        return false;
    }
    plugin = p; /* never unloaded: the CUDA runtime does not like it */
    return true;
}

static void load(void) {
    if (!nvidia_driver_present() && !getenv("MOONLIGHT_CUDA_FORCE_LOAD")) {
        snprintf(reason, sizeof reason,
                 "cuda: no CUDA device is available (no NVIDIA driver on this machine)");
        return;
    }
    char tried[800] = "";
    const char *env = getenv("MOONLIGHT_CUDA_PLUGIN");
    if (env && try_load(env, tried, sizeof tried)) return;
    Dl_info info;
    if (dladdr((void *)&load_once, &info) && info.dli_fname) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", info.dli_fname);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dir, ML_CUDA_PLUGIN_FILE);
            if (try_load(path, tried, sizeof tried)) return;
            snprintf(path, sizeof path, "%s/../lib/%s", dir, ML_CUDA_PLUGIN_FILE);
            if (access(path, F_OK) == 0 && try_load(path, tried, sizeof tried)) return;
        }
    }
#ifdef ML_INSTALL_LIBDIR
    if (try_load(ML_INSTALL_LIBDIR "/" ML_CUDA_PLUGIN_FILE, tried, sizeof tried)) return;
#endif
    if (try_load(ML_CUDA_PLUGIN_FILE, tried, sizeof tried)) return;
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
