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

/* The i-th (1-based) tensor of the list at idx, or NULL for a missing entry when
 * optional. */
static ml_tensor *list_tensor(lua_State *L, int idx, int i, bool optional) {
    lua_rawgeti(L, idx, i);
    ml_tensor *t = optional && lua_isnil(L, -1) ? NULL : ml_lua_check_tensor(L, -1);
    lua_pop(L, 1); /* the list holds the reference */
    return t;
}

/* _adam_step_multi(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs|nil, lr, beta1,
 *                  beta2, eps, weight_decay, amsgrad, decoupled, steps [, maximize]):
 * one parameter group's update, lists of equal length (steps: each parameter's). */
static int l_adam_step_multi(lua_State *L) {
    for (int k = 1; k <= 4; k++) luaL_checktype(L, k, LUA_TTABLE);
    luaL_checktype(L, 13, LUA_TTABLE);
    bool ams = lua_toboolean(L, 11);
    if (ams) luaL_checktype(L, 5, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    for (int k = 2; k <= 4; k++)
        if (luaL_len(L, k) != n)
            return luaL_error(L, "adam_step: %d parameters but %d entries in list %d",
                              (int)n, (int)luaL_len(L, k), k);
    if (n > 1 << 20) return luaL_error(L, "adam_step: too many parameters (%d)", (int)n);
    ml_tensor **t = lua_newuserdatauv(L, sizeof *t * (size_t)(n ? 5 * n : 1), 0);
    ml_adam_args *args = lua_newuserdatauv(L, sizeof *args * (size_t)(n ? n : 1), 0);
    ml_tensor **p = t, **g = t + n, **m = t + 2 * n, **v = t + 3 * n, **vmax = t + 4 * n;
    const ml_adam_args group = {
        .lr = luaL_checknumber(L, 6), .beta1 = luaL_checknumber(L, 7),
        .beta2 = luaL_checknumber(L, 8), .eps = luaL_checknumber(L, 9),
        .weight_decay = luaL_checknumber(L, 10), .amsgrad = ams,
        .decoupled = lua_toboolean(L, 12), .maximize = lua_toboolean(L, 14)};
    for (lua_Integer i = 0; i < n; i++) {
        p[i] = list_tensor(L, 1, (int)i + 1, false);
        g[i] = list_tensor(L, 2, (int)i + 1, false);
        m[i] = list_tensor(L, 3, (int)i + 1, false);
        v[i] = list_tensor(L, 4, (int)i + 1, false);
        vmax[i] = ams ? list_tensor(L, 5, (int)i + 1, true) : NULL;
        lua_rawgeti(L, 13, (int)i + 1);
        int ok;
        lua_Integer step = lua_tointegerx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok) return luaL_error(L, "adam_step: step %d is not an integer", (int)i + 1);
        args[i] = group; /* the group's settings, this parameter's step */
        args[i].step = step;
    }
    if (ml_adam_step_multi((int)n, p, g, m, v, vmax, args)) return ml_lua_error(L);
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
    static const luaL_Reg funcs[] = {{"_adam_step", l_adam_step},
                                     {"_adam_step_multi", l_adam_step_multi},
                                     {"_sgd_step", l_sgd_step},
                                     {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
