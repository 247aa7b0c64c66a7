/* Finding and loading plugins (plugin.h). */
#define _GNU_SOURCE
#include "plugin.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef const void *(*plugin_entry)(const void *host);

/* Appends one attempt's failure to tried. */
static void note(char *tried, size_t n, const char *what) {
    size_t used = strlen(tried);
    if (used + 1 < n) snprintf(tried + used, n - used, "%s%s", used ? "; " : "", what);
}

/* Tries one path; the entry's table when it loads and its ABI matches. */
static const void *try_load(const char *path, const char *entry, int abi, const void *arg,
                            char *tried, size_t n) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        note(tried, n, dlerror());
        return NULL;
    }
    plugin_entry fn = (plugin_entry)dlsym(h, entry);
    const void *table = fn ? fn(arg) : NULL;
    if (!table || *(const int *)table != abi) {
        char what[600];
        snprintf(what, sizeof what, "%s: not a moonlight plugin of ABI %d", path, abi);
        note(tried, n, what);
        dlclose(h);
        return NULL;
    }
    return table;
}

const void *ml_plugin_load(const char *file, const char *env_var, const char *entry, int abi,
                           const void *arg, char *tried, size_t n) {
    const void *t;
    if (n) tried[0] = '\0';
    const char *env = env_var ? getenv(env_var) : NULL;
    if (env && *env && (t = try_load(env, entry, abi, arg, tried, n))) return t;
    Dl_info info;
    if (dladdr((void *)&ml_plugin_load, &info) && info.dli_fname) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", info.dli_fname);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, file);
            if ((t = try_load(path, entry, abi, arg, tried, n))) return t;
            snprintf(path, sizeof path, "%s/../lib/%s", dir, file);
            if (access(path, F_OK) == 0 && (t = try_load(path, entry, abi, arg, tried, n)))
                return t;
        }
    }
#ifdef ML_INSTALL_LIBDIR
    {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", ML_INSTALL_LIBDIR, file);
        if (access(path, F_OK) == 0 && (t = try_load(path, entry, abi, arg, tried, n))) return t;
    }
#endif
    return try_load(file, entry, abi, arg, tried, n);
}
