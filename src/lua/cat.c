/* Lua face of cat / stack: ml.cat({a, b}, dim), ml.stack({a, b}, dim); dim is
 * 1-based and defaults to 1, as torch's 0. */
#include <stdlib.h>

#include "../ops.h"
#include "binding.h"

static int join(lua_State *L, bool stack) {
    const char *fname = stack ? "stack" : "cat";
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    if (n < 1) return ml_lua_errorf(L, "%s: expected a non-empty list of tensors", fname);
    lua_settop(L, 2); /* the scratch array goes at 3, whatever was passed */
    /* the list's tensors are borrowed: the table keeps them alive meanwhile */
    ml_tensor **ts = lua_newuserdatauv(L, sizeof(ml_tensor *) * (size_t)n, 0);
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        ts[i] = ml_lua_test_tensor(L, -1);
        if (!ts[i])
            return ml_lua_errorf(L, "%s: entry %d of the list is %s, expected a tensor", fname, i + 1,
                              luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    int ndim = ts[0]->ndim + (stack ? 1 : 0);
    int d = ml_lua_opt_dim(L, 2, ndim, fname, 0);
    return ml_lua_push_tensor(L, stack ? ml_stack(n, ts, d) : ml_cat(n, ts, d));
}

static int l_cat(lua_State *L) { return join(L, false); }
static int l_stack(lua_State *L) { return join(L, true); }

void ml_lua_open_cat(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {{"cat", l_cat}, {"stack", l_stack}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
