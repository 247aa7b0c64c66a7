/* The C side of ml.nn: what modules need beyond the ops. */
#include "../autograd.h"
#include "../ops.h"
#include "binding.h"

#include <string.h>

/* _set_data(t, src): t takes over src's data, shape and dtype, keeping its identity
 * (its userdata, requires_grad and place in optimizers), as torch's
 * `param.data = src`. Module:to(device) moves parameters with it. */
static int l_set_data(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1), *src = ml_lua_check_tensor(L, 2);
    if (t->grad_fn) return ml_lua_errorf(L, "_set_data: only a leaf tensor's data can be replaced");
    if (t->requires_grad && !ml_dtype_is_float(src->dtype))
        return ml_lua_errorf(L, "_set_data: a tensor that requires grad needs floating data, got %s",
                          ml_dtype_name(src->dtype));
    if (t == src) return 0;
    /* the alias keeps the old storage alive until the swap is done, then drops it
     * through the one release path */
    ml_tensor *old = ml_tensor_alias(t);
    if (!old) return ml_lua_error(L);
    src->storage->refcount++;
    t->storage->refcount--; /* t's own count; old still holds one */
    t->storage = src->storage;
    t->dtype = src->dtype;
    t->ndim = src->ndim;
    for (int i = 0; i < ML_MAX_DIMS; i++) {
        t->shape[i] = src->shape[i];
        t->strides[i] = src->strides[i];
    }
    t->offset = src->offset;
    ml_tensor_release(old);
    return 0;
}

/* _pad(x, pads, mode, value): ml.F.pad's C half (lua/moonlight/functional.lua
 * checks the options); pads a Lua array of integers, mode "constant", "reflect" or
 * "replicate". */
static int l_pad(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const int npads = (int)luaL_len(L, 2);
    if (npads > 2 * ML_MAX_DIMS)
        return ml_lua_errorf(L, "pad: %d padding numbers, at most %d (2 per dim)", npads,
                             2 * ML_MAX_DIMS);
    int64_t pads[2 * ML_MAX_DIMS];
    for (int i = 0; i < npads; i++) {
        int isint;
        lua_geti(L, 2, i + 1);
        pads[i] = (int64_t)lua_tointegerx(L, -1, &isint);
        if (!isint)
            return ml_lua_errorf(L, "pad: padding number %d must be an integer, got %s", i + 1,
                                 luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    static const char *const modes[] = {"constant", "reflect", "replicate", NULL};
    static const ml_pad_mode mode_of[] = {ML_PAD_CONSTANT, ML_PAD_REFLECT, ML_PAD_REPLICATE};
    const char *mode = luaL_optstring(L, 3, "constant");
    int m = 0;
    while (modes[m] && strcmp(modes[m], mode) != 0) m++;
    if (!modes[m])
        return ml_lua_errorf(L, "pad: mode must be 'constant', 'reflect' or 'replicate', got '%s'",
                             mode);
    return ml_lua_push_tensor(L, ml_pad(x, npads, pads, mode_of[m], luaL_optnumber(L, 4, 0)));
}

void ml_lua_open_nn(lua_State *L, int module, int methods) {
    (void)methods;
    lua_pushcfunction(L, l_set_data);
    lua_setfield(L, module, "_set_data");
    lua_pushcfunction(L, l_pad);
    lua_setfield(L, module, "_pad");
}
