/* Lua face of the embedding op: F.embedding(ids, weight, {padding_idx,
 * scale_grad_by_freq}). ids hold 0-based int64 ids, as class ids do. */
#include <math.h>

#include "../ops.h"
#include "binding.h"

static int l_embedding(lua_State *L) {
    const char *fname = "embedding";
    static const char *const allowed[] = {"padding_idx", "scale_grad_by_freq", NULL};
    ml_tensor *ids = ml_lua_check_tensor(L, 1), *w = ml_lua_check_tensor(L, 2);
    ml_lua_check_options(L, 3, fname, allowed);
    bool has_pad = false;
    int64_t pad = 0;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "padding_idx");
        if (!lua_isnil(L, -1)) {
            if (!lua_isinteger(L, -1))
                return ml_lua_errorf(L, "%s: option 'padding_idx' must be an integer, got %s", fname,
                                     luaL_typename(L, -1));
            has_pad = true;
            pad = lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
    }
    bool scale = ml_lua_opt_bool(L, 3, "scale_grad_by_freq", fname, 0);
    return ml_lua_push_tensor(L, ml_embedding(ids, w, has_pad, pad, scale));
}

void ml_lua_open_embedding(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {{"embedding", l_embedding}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
