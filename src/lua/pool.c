/* Lua face of the pool family:
 *   F.max_pool2d(x, kernel_size, {stride, padding, dilation, ceil_mode, return_indices})
 *   F.avg_pool2d(x, kernel_size, {stride, padding, ceil_mode, count_include_pad})
 *   F.adaptive_avg_pool2d(x, output_size)
 * kernel_size, stride, padding, dilation: an integer or {h, w}; stride defaults to
 * kernel_size. With return_indices, max_pool2d also returns the int64 positions
 * of the maxima (h * W + w in each plane, PyTorch's). */
#include "../ops.h"
#include "binding.h"

static const char *const max_options[] = {"stride", "padding", "dilation", "ceil_mode",
                                          "return_indices", NULL};
static const char *const avg_options[] = {"stride", "padding", "ceil_mode", "count_include_pad", NULL};

/* kernel_size at idx: an integer or {kh, kw} */
static void check_kernel(lua_State *L, int idx, const char *fname, int64_t out[2]) {
    if (lua_isinteger(L, idx)) {
        out[0] = out[1] = lua_tointeger(L, idx);
        return;
    }
    lua_newtable(L); /* through the option reader, for one message shape */
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "kernel_size");
    if (lua_isnoneornil(L, idx) || ml_lua_opt_pair(L, lua_gettop(L), "kernel_size", fname, 2, 0, out) != 0)
        ml_lua_errorf(L, "%s: kernel_size must be an integer or {kh, kw}, got %s", fname, luaL_typename(L, idx));
    lua_pop(L, 1);
}

static ml_pool_opts read_opts(lua_State *L, int idx, const char *fname, bool is_max) {
    ml_lua_check_options(L, idx, fname, is_max ? max_options : avg_options);
    ml_pool_opts o = {.ceil_mode = false, .count_include_pad = true};
    if (ml_lua_opt_pair(L, idx, "stride", fname, 2, 0, o.stride) ||
        ml_lua_opt_pair(L, idx, "padding", fname, 2, 0, o.padding) ||
        (is_max && ml_lua_opt_pair(L, idx, "dilation", fname, 2, 1, o.dilation)))
        ml_lua_errorf(L, "%s: stride, padding and dilation must be integers or {h, w}", fname);
    if (!is_max) o.dilation[0] = o.dilation[1] = 1;
    o.ceil_mode = ml_lua_opt_bool(L, idx, "ceil_mode", fname, 0);
    if (!is_max) o.count_include_pad = ml_lua_opt_bool(L, idx, "count_include_pad", fname, 1);
    return o;
}

static int l_max_pool2d(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    ml_pool_opts o = read_opts(L, 3, "max_pool2d", true);
    check_kernel(L, 2, "max_pool2d", o.kernel);
    const bool want = ml_lua_opt_bool(L, 3, "return_indices", "max_pool2d", 0);
    ml_tensor *idx = NULL;
    ml_lua_push_tensor(L, ml_max_pool2d(x, &o, want ? &idx : NULL));
    if (!want) return 1;
    ml_lua_push_tensor(L, idx);
    return 2;
}

static int l_avg_pool2d(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    ml_pool_opts o = read_opts(L, 3, "avg_pool2d", false);
    check_kernel(L, 2, "avg_pool2d", o.kernel);
    return ml_lua_push_tensor(L, ml_avg_pool2d(x, &o));
}

static int l_adaptive_avg_pool2d(lua_State *L) {
    ml_tensor *x = ml_lua_check_tensor(L, 1);
    int64_t size[2];
    if (lua_isinteger(L, 2)) size[0] = size[1] = lua_tointeger(L, 2);
    else {
        if (!lua_istable(L, 2))
            return ml_lua_errorf(L, "adaptive_avg_pool2d: output_size must be an integer or {oh, ow}, got %s",
                                 luaL_typename(L, 2));
        lua_newtable(L);
        lua_pushvalue(L, 2);
        lua_setfield(L, -2, "output_size");
        ml_lua_opt_pair(L, lua_gettop(L), "output_size", "adaptive_avg_pool2d", 2, 0, size);
        lua_pop(L, 1);
    }
    return ml_lua_push_tensor(L, ml_adaptive_avg_pool2d(x, size[0], size[1]));
}

void ml_lua_open_pool(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {{"max_pool2d", l_max_pool2d}, {"avg_pool2d", l_avg_pool2d},
                                     {"adaptive_avg_pool2d", l_adaptive_avg_pool2d}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
