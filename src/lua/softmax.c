/* Lua face of the softmax family; dim is required (no rank-guessed default). */
#include "../ops.h"
#include "binding.h"

static int softmax(lua_State *L, bool log) {
    const char *fname = log ? "log_softmax" : "softmax";
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2))
        return ml_lua_errorf(L, "%s: dim is required (e.g. %s(x, -1) over the last dim)", fname, fname);
    int d = ml_lua_check_dim(L, 2, t->ndim, fname);
    return ml_lua_push_tensor(L, log ? ml_log_softmax(t, d) : ml_softmax(t, d));
}

static int l_softmax(lua_State *L) { return softmax(L, false); }
static int l_log_softmax(lua_State *L) { return softmax(L, true); }

void ml_lua_open_softmax(lua_State *L, int module, int methods) {
    static const luaL_Reg funcs[] = {{"softmax", l_softmax}, {"log_softmax", l_log_softmax}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
    ml_lua_setfuncs(L, methods, funcs);
}
