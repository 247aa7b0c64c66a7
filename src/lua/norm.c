/* Lua face of the norm family: F.layer_norm(x, normalized_shape, {weight, bias,
 * eps}) and F.group_norm(x, num_groups, {weight, bias, eps}). */
#include "../ops.h"
#include "binding.h"

static const char *const norm_opts[] = {"weight", "bias", "eps", NULL};

/* layer_norm(x, normalized_shape, opts): normalized_shape a Lua array of sizes
 * (or one number, as PyTorch's int) */
static int l_layer_norm(lua_State *L) {
    const char *fname = "layer_norm";
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    int64_t shape[ML_MAX_DIMS];
    int n;
    if (lua_isinteger(L, 2)) {
        shape[0] = lua_tointeger(L, 2);
        n = 1;
    } else if (lua_istable(L, 2) && !ml_lua_test_tensor(L, 2)) {
        n = (int)luaL_len(L, 2);
        if (n > ML_MAX_DIMS) return ml_lua_errorf(L, "%s: normalized_shape has %d dims (at most %d)", fname, n, ML_MAX_DIMS);
        for (int i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
                return ml_lua_errorf(L, "%s: normalized_shape must be an array of non-negative integers, "
                                     "element %d is %s", fname, i + 1, luaL_tolstring(L, -1, NULL));
            shape[i] = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
    } else {
        return ml_lua_errorf(L, "%s: normalized_shape must be an array of sizes (the input's last "
                             "dims, e.g. {512}), got %s", fname, luaL_typename(L, 2));
    }
    ml_lua_check_options(L, 3, fname, norm_opts);
    ml_tensor *w = ml_lua_opt_tensor(L, 3, "weight", fname), *b = ml_lua_opt_tensor(L, 3, "bias", fname);
    double eps = ml_lua_opt_number(L, 3, "eps", fname, 1e-5);
    return ml_lua_push_tensor(L, ml_layer_norm(x, n, shape, w, b, eps));
}

static int l_group_norm(lua_State *L) {
    const char *fname = "group_norm";
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    if (!lua_isinteger(L, 2))
        return ml_lua_errorf(L, "%s: num_groups must be an integer, got %s", fname, luaL_typename(L, 2));
    lua_Integer g = lua_tointeger(L, 2);
    ml_lua_check_options(L, 3, fname, norm_opts);
    ml_tensor *w = ml_lua_opt_tensor(L, 3, "weight", fname), *b = ml_lua_opt_tensor(L, 3, "bias", fname);
    double eps = ml_lua_opt_number(L, 3, "eps", fname, 1e-5);
    return ml_lua_push_tensor(L, ml_group_norm(x, (int64_t)g, w, b, eps));
}

void ml_lua_open_norm(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {{"layer_norm", l_layer_norm}, {"group_norm", l_group_norm}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
