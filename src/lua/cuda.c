/* The C side of ml.cuda (device queries, allocator counters) and of
 * ml.set_float32_matmul_precision. Without a usable CUDA device each ml.cuda
 * function raises "cuda.<name>: CUDA is not available (<why>)"; is_available()
 * answers false instead. */
#include <string.h>

#include "../backend.h"
#include "../cuda_api.h"
#include "../error.h"
#include "binding.h"

static int unavailable(lua_State *L, const char *fname) {
    return luaL_error(L, "cuda.%s: CUDA is not available (%s)", fname, ml_error());
}

static int l_is_available(lua_State *L) {
    lua_pushboolean(L, ml_cuda_backend() != NULL);
    return 1;
}

static int l_device_name(lua_State *L) {
    const char *name = ml_cuda_device_name();
    if (!name) return unavailable(L, "device_name");
    lua_pushstring(L, name);
    return 1;
}

static int memory_stat(lua_State *L, const char *fname, bool reserved) {
    size_t allocated, held;
    if (ml_cuda_memory_stats(&allocated, &held)) return unavailable(L, fname);
    lua_pushinteger(L, (lua_Integer)(reserved ? held : allocated));
    return 1;
}

static int l_memory_allocated(lua_State *L) { return memory_stat(L, "memory_allocated", false); }
static int l_memory_reserved(lua_State *L) { return memory_stat(L, "memory_reserved", true); }

static int l_synchronize(lua_State *L) {
    if (!ml_cuda_backend()) return unavailable(L, "synchronize");
    if (ml_cuda_synchronize()) return luaL_error(L, "cuda.synchronize: %s", ml_error());
    return 0;
}

static int l_empty_cache(lua_State *L) {
    if (ml_cuda_empty_cache()) return unavailable(L, "empty_cache");
    return 0;
}

/* _set_device(index): the device the backend will start on (a distributed run's
 * local rank, modulo the devices); before CUDA's first use only */
static int l_set_device(lua_State *L) {
    lua_Integer i = luaL_checkinteger(L, 1);
    if (i < 0 || i > 1 << 20) return luaL_error(L, "cuda.set_device: bad index %d", (int)i);
    if (ml_cuda_set_device((int)i)) return luaL_error(L, "%s", ml_error());
    return 0;
}

static const char *const precision_names[] = {"highest", "high", "medium", NULL};

static int l_set_float32_matmul_precision(lua_State *L) {
    const char *p = luaL_checkstring(L, 1);
    for (int i = 0; precision_names[i]; i++) {
        if (strcmp(p, precision_names[i]) == 0) {
            ml_set_float32_matmul_precision((ml_matmul_precision)i);
            return 0;
        }
    }
    return luaL_error(L, "set_float32_matmul_precision: unknown precision '%s' (expected "
                         "\"highest\", \"high\" or \"medium\")", p);
}

static int l_get_float32_matmul_precision(lua_State *L) {
    lua_pushstring(L, precision_names[ml_get_float32_matmul_precision()]);
    return 1;
}

void ml_lua_open_cuda(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg cuda_funcs[] = {
        {"is_available", l_is_available},
        {"device_name", l_device_name},
        {"memory_allocated", l_memory_allocated},
        {"memory_reserved", l_memory_reserved},
        {"synchronize", l_synchronize},
        {"empty_cache", l_empty_cache},
        {"_set_device", l_set_device},
        {NULL, NULL},
    };
    lua_newtable(L);
    ml_lua_setfuncs(L, lua_gettop(L), cuda_funcs);
    lua_setfield(L, module, "_cuda");
    static const luaL_Reg module_funcs[] = {
        {"set_float32_matmul_precision", l_set_float32_matmul_precision},
        {"get_float32_matmul_precision", l_get_float32_matmul_precision},
        {NULL, NULL},
    };
    ml_lua_setfuncs(L, module, module_funcs);
}
