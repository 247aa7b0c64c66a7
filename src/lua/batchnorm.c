/* Lua face of the batchnorm family:
 *   F.batch_norm(x, running_mean_or_nil, running_var_or_nil, {weight, bias,
 *                training = false, momentum = 0.1, eps = 1e-5})
 * as torch.nn.functional.batch_norm: the running statistics are updated in place
 * when training. */
#include "../ops.h"
#include "binding.h"

static const char *const bn_options[] = {"weight", "bias", "training", "momentum", "eps", NULL};

/* F.batch_norm's arguments at 1 .. 4 */
typedef struct {
    ml_tensor *x, *rm, *rv, *w, *b;
    bool training;
    double momentum, eps;
} bn_call;

static bn_call check_call(lua_State *L) {
    bn_call c;
    c.x = ml_lua_check_tensor(L, 1);
    c.rm = lua_isnoneornil(L, 2) ? NULL : ml_lua_check_tensor(L, 2);
    c.rv = lua_isnoneornil(L, 3) ? NULL : ml_lua_check_tensor(L, 3);
    ml_lua_check_options(L, 4, "batch_norm", bn_options);
    c.w = ml_lua_opt_tensor(L, 4, "weight", "batch_norm");
    c.b = ml_lua_opt_tensor(L, 4, "bias", "batch_norm");
    c.training = ml_lua_opt_bool(L, 4, "training", "batch_norm", 0);
    c.momentum = ml_lua_opt_number(L, 4, "momentum", "batch_norm", 0.1);
    c.eps = ml_lua_opt_number(L, 4, "eps", "batch_norm", 1e-5);
    return c;
}

static int l_batch_norm(lua_State *L) {
    const bn_call c = check_call(L);
    return ml_lua_push_tensor(L, ml_batch_norm(c.x, c.rm, c.rv, c.w, c.b, c.training, c.momentum, c.eps));
}

/* ml._batch_norm_max_pool2d(x, running_mean, running_var, {F.batch_norm's options},
 * kh, kw): max_pool2d(batch_norm(x, ...), {kh, kw}) by tiling windows without the
 * normalised x stored (src/ops/batchnorm.h); nn.Sequential's, not a public name */
static int l_batch_norm_max_pool2d(lua_State *L) {
    const bn_call c = check_call(L);
    const lua_Integer kh = luaL_checkinteger(L, 5), kw = luaL_checkinteger(L, 6);
    return ml_lua_push_tensor(L, ml_batch_norm_max_pool2d(c.x, c.rm, c.rv, c.w, c.b, c.training,
                                                          c.momentum, c.eps, kh, kw));
}

void ml_lua_open_batchnorm(lua_State *L, int module, int methods) {
    (void)methods;
    lua_pushcfunction(L, l_batch_norm);
    lua_setfield(L, module, "batch_norm");
    lua_pushcfunction(L, l_batch_norm_max_pool2d);
    lua_setfield(L, module, "_batch_norm_max_pool2d");
}
