/* Lua face of the matmul family. */
#include "../ops.h"
#include "binding.h"

static int l_matmul(lua_State *L) {
    return ml_lua_push_tensor(L, ml_matmul(ml_lua_check_tensor(L, 1), ml_lua_check_tensor(L, 2)));
}

/* F.linear(x, weight [, bias]) */
static int l_linear(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1), *w = ml_lua_check_tensor(L, 2);
    ml_tensor *b = lua_isnoneornil(L, 3) ? NULL : ml_lua_check_tensor(L, 3);
    return ml_lua_push_tensor(L, ml_linear(x, w, b));
}

void ml_lua_open_matmul(lua_State *L, int module, int methods) {
    static const luaL_Reg funcs[] = {{"matmul", l_matmul}, {"mm", l_matmul}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
    ml_lua_setfuncs(L, methods, funcs);
    lua_pushcfunction(L, l_linear);
    lua_setfield(L, module, "linear");
}
