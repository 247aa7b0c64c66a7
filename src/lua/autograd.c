/* Lua face of autograd: backward, detach, no_grad, grad mode. */
#include "../autograd.h"
#include "../ops.h"
#include "binding.h"

static int l_backward(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    ml_tensor *g = lua_isnoneornil(L, 2) ? NULL : ml_lua_check_tensor(L, 2);
    /* nodes of ml.autograd.Function call back into this state */
    lua_State *prev = ml_lua_function_enter(L);
    int rc = ml_backward(t, g);
    ml_lua_function_leave(L, prev);
    if (rc) return ml_lua_error(L);
    return 0;
}

static int l_detach(lua_State *L) { return ml_lua_push_tensor(L, ml_detach(ml_lua_check_tensor(L, 1))); }

/* no_grad(fn, ...) runs fn with grad mode off and returns its results; the mode is
 * restored when fn raises too. */
static int l_no_grad(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    bool was = ml_grad_enabled();
    ml_set_grad_enabled(false);
    int nargs = lua_gettop(L) - 1;
    int rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
    ml_set_grad_enabled(was);
    if (rc != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int l_enable_grad(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    bool was = ml_grad_enabled();
    ml_set_grad_enabled(true);
    int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    ml_set_grad_enabled(was);
    if (rc != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int l_is_grad_enabled(lua_State *L) {
    lua_pushboolean(L, ml_grad_enabled());
    return 1;
}

static int l_set_grad_enabled(lua_State *L) {
    ml_set_grad_enabled(lua_toboolean(L, 1));
    return 0;
}

void ml_lua_open_autograd(lua_State *L, int module, int methods) {
    static const luaL_Reg methods_funcs[] = {{"backward", l_backward}, {"detach", l_detach}, {NULL, NULL}};
    static const luaL_Reg module_funcs[] = {
        {"no_grad", l_no_grad}, {"enable_grad", l_enable_grad},
        {"is_grad_enabled", l_is_grad_enabled}, {"set_grad_enabled", l_set_grad_enabled},
        {"detach", l_detach}, {NULL, NULL}};
    ml_lua_setfuncs(L, methods, methods_funcs);
    ml_lua_setfuncs(L, module, module_funcs);
    ml_lua_open_autograd_function(L, module);
}
