/* Lua face of the conv family: F.conv1d, F.conv2d, F.conv_transpose2d with
 * PyTorch's keyword arguments as a trailing options table:
 *   F.conv2d(x, weight, bias_or_nil, {stride = 1 | {sh, sw}, padding = 0 | {ph, pw} |
 *            "same" | "valid", dilation = 1 | {dh, dw}, groups = 1})
 *   F.conv_transpose2d(x, weight, bias_or_nil, {stride, padding, output_padding,
 *                      groups, dilation})
 * conv1d takes numbers or one-element tables. */
#include <string.h>

#include "../ops.h"
#include "binding.h"

static const char *const conv_options[] = {"stride", "padding", "dilation", "groups", NULL};
static const char *const transpose_options[] = {"stride", "padding", "output_padding", "groups",
                                                "dilation", NULL};

/* the options at idx (count: 2 for 2-D, 1 for conv1d) */
static ml_conv_opts read_opts(lua_State *L, int idx, const char *fname, int count, bool transposed) {
    ml_lua_check_options(L, idx, fname, transposed ? transpose_options : conv_options);
    ml_conv_opts o = ml_conv_opts_default();
    ml_lua_opt_pair(L, idx, "stride", fname, count, 1, o.stride);
    ml_lua_opt_pair(L, idx, "dilation", fname, count, 1, o.dilation);
    if (transposed) ml_lua_opt_pair(L, idx, "output_padding", fname, count, 0, o.output_padding);
    if (ml_lua_opt_pair(L, idx, "padding", fname, count, 0, o.padding) == 1) {
        const char *s = lua_tostring(L, -1);
        if (!transposed && strcmp(s, "same") == 0) o.pad_same = true;
        else if (!transposed && strcmp(s, "valid") == 0) o.padding[0] = o.padding[1] = 0;
        else
            ml_lua_errorf(L, "%s: option 'padding' must be %s, got \"%s\"", fname,
                          transposed ? "an integer or a table of integers"
                                     : "an integer, a table of integers, \"same\" or \"valid\"", s);
        lua_pop(L, 1);
    }
    const double g = ml_lua_opt_number(L, idx, "groups", fname, 1);
    if (g != (double)(int64_t)g) ml_lua_errorf(L, "%s: option 'groups' must be an integer, got %g", fname, g);
    o.groups = (int64_t)g;
    return o;
}

static int conv(lua_State *L, const char *fname, int count, bool transposed) {
    ml_tensor *x = ml_lua_check_tensor(L, 1), *w = ml_lua_check_tensor(L, 2);
    ml_tensor *b = lua_isnoneornil(L, 3) ? NULL : ml_lua_check_tensor(L, 3);
    ml_conv_opts o = read_opts(L, 4, fname, count, transposed);
    if (transposed) return ml_lua_push_tensor(L, ml_conv_transpose2d(x, w, b, &o));
    return ml_lua_push_tensor(L, count == 1 ? ml_conv1d(x, w, b, &o) : ml_conv2d(x, w, b, &o));
}

static int l_conv1d(lua_State *L) { return conv(L, "conv1d", 1, false); }
static int l_conv2d(lua_State *L) { return conv(L, "conv2d", 2, false); }
static int l_conv_transpose2d(lua_State *L) { return conv(L, "conv_transpose2d", 2, true); }

void ml_lua_open_conv(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {{"conv1d", l_conv1d}, {"conv2d", l_conv2d},
                                     {"conv_transpose2d", l_conv_transpose2d}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
