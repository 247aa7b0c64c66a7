/* The C side of ml.optim: one fused update per parameter (src/ops/optim.c). The
 * Lua optimizers (lua/moonlight/optim.lua) keep the state and the hyperparameters
 * and call these once per parameter and step. */
#include "../ops.h"
#include "binding.h"

static ml_tensor *opt_tensor(lua_State *L, int idx) {
    return lua_isnoneornil(L, idx) ? NULL : ml_lua_check_tensor(L, idx);
}

/* _adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq|nil, lr, beta1, beta2,
 *            eps, weight_decay, amsgrad, decoupled, step [, maximize]) */
static int l_adam_step(lua_State *L) {
    ml_tensor *p = ml_lua_check_tensor(L, 1), *g = ml_lua_check_tensor(L, 2);
    ml_tensor *m = ml_lua_check_tensor(L, 3), *v = ml_lua_check_tensor(L, 4);
    ml_tensor *vmax = opt_tensor(L, 5);
    ml_adam_args a = {
        .lr = luaL_checknumber(L, 6), .beta1 = luaL_checknumber(L, 7),
        .beta2 = luaL_checknumber(L, 8), .eps = luaL_checknumber(L, 9),
        .weight_decay = luaL_checknumber(L, 10), .amsgrad = lua_toboolean(L, 11),
        .decoupled = lua_toboolean(L, 12), .step = luaL_checkinteger(L, 13),
        .maximize = lua_toboolean(L, 14)};
    if (ml_adam_step(p, g, m, v, vmax, &a)) return ml_lua_error(L);
    return 0;
}

/* _sgd_step(param, grad, momentum_buf|nil, lr, momentum, dampening, weight_decay,
 *           nesterov, first_step [, maximize]) */
static int l_sgd_step(lua_State *L) {
    ml_tensor *p = ml_lua_check_tensor(L, 1), *g = ml_lua_check_tensor(L, 2);
    ml_tensor *buf = opt_tensor(L, 3);
    ml_sgd_args a = {
        .lr = luaL_checknumber(L, 4), .momentum = luaL_checknumber(L, 5),
        .dampening = luaL_checknumber(L, 6), .weight_decay = luaL_checknumber(L, 7),
        .nesterov = lua_toboolean(L, 8), .first_step = lua_toboolean(L, 9),
        .maximize = lua_toboolean(L, 10)};
    if (ml_sgd_step(p, g, buf, &a)) return ml_lua_error(L);
    return 0;
}

void ml_lua_open_optim(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {{"_adam_step", l_adam_step}, {"_sgd_step", l_sgd_step},
                                     {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
