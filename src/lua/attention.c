/* Lua face of attention: F.scaled_dot_product_attention(q, k, v, {attn_mask,
 * is_causal, dropout_p, scale}), and core._attention, the same returning the
 * attention weights too (nn.MultiheadAttention's need_weights). */
#include <math.h>

#include "../ops.h"
#include "binding.h"

static int attention(lua_State *L, bool with_weights) {
    const char *fname = "scaled_dot_product_attention";
    static const char *const allowed[] = {"attn_mask", "is_causal", "dropout_p", "scale", NULL};
    ml_tensor *q = ml_lua_check_tensor(L, 1), *k = ml_lua_check_tensor(L, 2), *v = ml_lua_check_tensor(L, 3);
    ml_lua_check_options(L, 4, fname, allowed);
    ml_tensor *mask = ml_lua_opt_tensor(L, 4, "attn_mask", fname);
    bool causal = ml_lua_opt_bool(L, 4, "is_causal", fname, 0);
    double p = ml_lua_opt_number(L, 4, "dropout_p", fname, 0);
    double scale = ml_lua_opt_number(L, 4, "scale", fname, NAN);
    ml_tensor *w = NULL;
    ml_tensor *out = ml_scaled_dot_product_attention(q, k, v, mask, causal, p, scale,
                                                     with_weights ? &w : NULL);
    ml_lua_push_tensor(L, out);
    if (!with_weights) return 1;
    ml_lua_push_tensor(L, w);
    return 2;
}

static int l_sdpa(lua_State *L) { return attention(L, false); }
static int l_attention(lua_State *L) { return attention(L, true); }

void ml_lua_open_attention(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {{"scaled_dot_product_attention", l_sdpa},
                                     {"_attention", l_attention}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
