/* Lua face of the index family: t:gather(dim, index), t:index_select(dim, index),
 * t:scatter_add(dim, index, src), t:index_add(dim, index, src) (also as ml.*),
 * ml.one_hot(labels [, n]); dims 1-based, index values 0-based (data, as torch).
 * Also the private element access ml.testing uses: core._flat_get(t, k) and
 * core._flat_set(t, k, v), k a 1-based position in the row-major order of t. */
#include <string.h>

#include "../backend.h"
#include "../ops.h"
#include "binding.h"

static int l_gather(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    int d = ml_lua_check_dim(L, 2, x->ndim, "gather");
    return ml_lua_push_tensor(L, ml_gather(x, d, ml_lua_check_tensor(L, 3)));
}

static int l_index_select(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    int d = ml_lua_check_dim(L, 2, x->ndim, "index_select");
    return ml_lua_push_tensor(L, ml_index_select(x, d, ml_lua_check_tensor(L, 3)));
}

static int l_scatter_add(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    int d = ml_lua_check_dim(L, 2, x->ndim, "scatter_add");
    ml_tensor *index = ml_lua_check_tensor(L, 3), *src = ml_lua_check_tensor(L, 4);
    return ml_lua_push_tensor(L, ml_scatter_add(x, d, index, src));
}

static int l_index_add(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    int d = ml_lua_check_dim(L, 2, x->ndim, "index_add");
    ml_tensor *index = ml_lua_check_tensor(L, 3), *src = ml_lua_check_tensor(L, 4);
    return ml_lua_push_tensor(L, ml_index_add(x, d, index, src));
}

/* one_hot(labels [, n]); n defaults to -1 (max + 1), as torch's num_classes */
static int l_one_hot(lua_State *L) {
    ml_tensor *labels = ml_lua_check_tensor(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, -1);
    return ml_lua_push_tensor(L, ml_one_hot(labels, (int64_t)n));
}

/* Byte offset of the k-th (0-based) element in row-major order of t's view. */
static size_t flat_offset(const ml_tensor *t, int64_t k) {
    int64_t off = t->offset;
    for (int i = t->ndim - 1; i >= 0; i--) {
        off += (k % t->shape[i]) * t->strides[i];
        k /= t->shape[i];
    }
    return (size_t)off * ml_dtype_size(t->dtype);
}

static int64_t check_flat(lua_State *L, const ml_tensor *t, const char *fname) {
    lua_Integer k = luaL_checkinteger(L, 2);
    int64_t n = ml_numel(t);
    if (k < 1 || k > n)
        return ml_lua_errorf(L, "%s: position %d out of range for a tensor of %d elements", fname,
                          (int)k, (int)n);
    return (int64_t)k - 1;
}

/* One element through the device's copy functions: works on every backend. */
static int l_flat_get(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int64_t k = check_flat(L, t, "_flat_get");
    union { float f; double d; int64_t i; uint8_t u; } v;
    const ml_backend *be = ml_backend_of(t);
    if (be->memory->to_host(&v, (char *)t->storage->data + flat_offset(t, k), ml_dtype_size(t->dtype)))
        return ml_lua_error(L);
    switch (t->dtype) {
    case ML_F32: lua_pushnumber(L, v.f); break;
    case ML_F64: lua_pushnumber(L, v.d); break;
    case ML_I64: lua_pushinteger(L, v.i); break;
    case ML_U8: lua_pushinteger(L, v.u); break;
    default: lua_pushnil(L);
    }
    return 1;
}

static int l_flat_set(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int64_t k = check_flat(L, t, "_flat_set");
    lua_Number x = luaL_checknumber(L, 3);
    union { float f; double d; int64_t i; uint8_t u; } v;
    switch (t->dtype) {
    case ML_F32: v.f = (float)x; break;
    case ML_F64: v.d = x; break;
    case ML_I64: v.i = (int64_t)x; break;
    case ML_U8: v.u = (uint8_t)x; break;
    default: return 0;
    }
    const ml_backend *be = ml_backend_of(t);
    if (be->memory->from_host((char *)t->storage->data + flat_offset(t, k), &v, ml_dtype_size(t->dtype)))
        return ml_lua_error(L);
    return 0;
}

void ml_lua_open_index(lua_State *L, int module, int methods) {
    static const luaL_Reg funcs[] = {{"gather", l_gather}, {"index_select", l_index_select},
                                     {"scatter_add", l_scatter_add}, {"index_add", l_index_add},
                                     {NULL, NULL}};
    static const luaL_Reg module_funcs[] = {{"one_hot", l_one_hot}, {"_flat_get", l_flat_get},
                                            {"_flat_set", l_flat_set}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
    ml_lua_setfuncs(L, methods, funcs);
    ml_lua_setfuncs(L, module, module_funcs);
}
