/* Lua face of the loss family: torch.nn.functional's losses, options as a trailing
 * table with PyTorch's names and defaults. Registered in core._loss; functional.lua
 * puts them into ml.F under the same names.
 *
 * mse_loss, l1_loss and smooth_l1_loss broadcast an input against a target of
 * another shape, as torch does, and like torch they warn: an input [N, 1] against a
 * target [N] silently gives an [N, N] loss, the classic regression bug. The warning
 * goes to stderr once per call site (the user's source:line, past moonlight's own
 * Lua); in strict mode (ml.set_strict_shapes(true), or ML_STRICT_SHAPES=1 in the
 * environment when moonlight is loaded) it is an error instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops.h"
#include "binding.h"

static ml_reduction check_reduction(lua_State *L, int opts, const char *fname, bool *batchmean) {
    const char *r = ml_lua_opt_string(L, opts, "reduction", fname, "mean");
    if (batchmean) *batchmean = false;
    if (strcmp(r, "mean") == 0) return ML_REDUCTION_MEAN;
    if (strcmp(r, "sum") == 0) return ML_REDUCTION_SUM;
    if (strcmp(r, "none") == 0) return ML_REDUCTION_NONE;
    if (batchmean && strcmp(r, "batchmean") == 0) {
        *batchmean = true;
        return ML_REDUCTION_MEAN;
    }
    return (ml_reduction)ml_lua_errorf(L, "%s: unknown reduction '%s' (expected \"mean\", \"sum\"%s or "
                                    "\"none\")", fname, r, batchmean ? ", \"batchmean\"" : "");
}

/* Registry keys (their addresses): the strict-shapes flag, and the set of call
 * sites already warned about. */
static const char strict_key, warned_key;

/* Whether this Lua state treats a size mismatch as an error. */
static bool strict_shapes(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &strict_key);
    const bool on = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return on;
}

/* ml.set_strict_shapes(on): returns the previous setting. */
static int l_set_strict_shapes(lua_State *L) {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    lua_pushboolean(L, strict_shapes(L));
    lua_pushboolean(L, lua_toboolean(L, 1));
    lua_rawsetp(L, LUA_REGISTRYINDEX, &strict_key);
    return 1;
}

static int l_get_strict_shapes(lua_State *L) {
    lua_pushboolean(L, strict_shapes(L));
    return 1;
}

/* Pushes "source:line" of the innermost Lua function on the stack that is not part
 * of moonlight's own Lua half (chunks named "@lua/moonlight/..."): the user's call
 * of F.mse_loss, or of the nn.MSELoss whose forward called it. "?" if none. */
static void push_user_site(lua_State *L) {
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue; /* C frames */
        if (strncmp(ar.source, "@lua/moonlight/", 15) == 0) continue;
        lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
        return;
    }
    lua_pushliteral(L, "?");
}

/* torch's check for mse_loss, l1_loss and smooth_l1_loss: a target whose size
 * differs from the input's is broadcast, which is almost always a mistake. Warns
 * once per call site, or raises the error in strict mode. */
static void check_target_size(lua_State *L, const char *fname, const ml_tensor *input,
                              const ml_tensor *target) {
    if (ml_same_shape(input, target)) return;
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    ml_shape_str(target->ndim, target->shape, a, sizeof a);
    ml_shape_str(input->ndim, input->shape, b, sizeof b);
    if (strict_shapes(L)) { /* at the user's line, as the warning */
        push_user_site(L);
        lua_pushfstring(L, ": %s: target size %s is different to the input size %s, which "
                        "would broadcast (strict shapes are on: ml.set_strict_shapes(false) "
                        "allows it, with a warning)", fname, a, b);
        lua_concat(L, 2);
        lua_error(L);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &warned_key);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &warned_key);
    }
    push_user_site(L);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TNIL) {
        lua_pop(L, 1);
        const char *site = lua_tostring(L, -1);
        fprintf(stderr, "%s: warning: %s: Using a target size (%s) that is different to the "
                "input size (%s). This will likely lead to incorrect results due to "
                "broadcasting. Please ensure they have the same size.\n", site, fname, a, b);
        fflush(stderr);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    } else {
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

/* f(input, target[, var], opts): the shared body of every loss. */
static int loss_call(lua_State *L, ml_loss_kind kind, const char *const *allowed) {
    const char *fname = ml_loss_name(kind);
    bool has_var = kind == ML_LOSS_GAUSSIAN_NLL;
    int opts = has_var ? 4 : 3;
    ml_tensor *input = ml_lua_check_tensor(L, 1);
    ml_tensor *target = ml_lua_check_tensor(L, 2);
    ml_lua_check_options(L, opts, fname, allowed);
    if (kind == ML_LOSS_MSE || kind == ML_LOSS_L1 || kind == ML_LOSS_SMOOTH_L1)
        check_target_size(L, fname, input, target);
    ml_loss_options o;
    ml_loss_options_init(&o, kind);
    if (!lua_isnoneornil(L, opts)) { /* no table: the defaults, without ten lookups */
        o.reduction = check_reduction(L, opts, fname, kind == ML_LOSS_KL_DIV ? &o.batchmean : NULL);
        o.weight = ml_lua_opt_tensor(L, opts, "weight", fname);
        o.pos_weight = ml_lua_opt_tensor(L, opts, "pos_weight", fname);
        o.beta = ml_lua_opt_number(L, opts, "beta", fname, o.beta);
        o.eps = ml_lua_opt_number(L, opts, "eps", fname, o.eps);
        o.label_smoothing = ml_lua_opt_number(L, opts, "label_smoothing", fname, o.label_smoothing);
        o.ignore_index = ml_lua_opt_integer(L, opts, "ignore_index", fname, (int)o.ignore_index);
        o.log_input = ml_lua_opt_bool(L, opts, "log_input", fname, o.log_input);
        o.full = ml_lua_opt_bool(L, opts, "full", fname, o.full);
        o.log_target = ml_lua_opt_bool(L, opts, "log_target", fname, o.log_target);
    }
    ml_tensor *var = NULL;
    if (has_var) {
        if (lua_isnoneornil(L, 3))
            return ml_lua_errorf(L, "%s: argument 3 (var) must be a tensor or a number, got %s",
                              fname, luaL_typename(L, 3));
        var = ml_lua_tensor_or_number(L, 3, input);
    }
    ml_tensor *out = ml_loss(kind, input, target, var, &o);
    ml_tensor_release(var);
    return ml_lua_push_tensor(L, out);
}

#define LOSS_FN(name, kind, ...)                                                      \
    static int l_##name(lua_State *L) {                                                \
        static const char *const allowed[] = {"reduction", __VA_ARGS__, NULL};        \
        return loss_call(L, kind, allowed);                                            \
    }

LOSS_FN(mse_loss, ML_LOSS_MSE, NULL)
LOSS_FN(l1_loss, ML_LOSS_L1, NULL)
LOSS_FN(smooth_l1_loss, ML_LOSS_SMOOTH_L1, "beta")
LOSS_FN(cross_entropy, ML_LOSS_CROSS_ENTROPY, "weight", "ignore_index", "label_smoothing")
LOSS_FN(nll_loss, ML_LOSS_NLL, "weight", "ignore_index")
LOSS_FN(binary_cross_entropy, ML_LOSS_BCE, "weight")
LOSS_FN(binary_cross_entropy_with_logits, ML_LOSS_BCE_LOGITS, "weight", "pos_weight")
LOSS_FN(kl_div, ML_LOSS_KL_DIV, "log_target")
LOSS_FN(poisson_nll_loss, ML_LOSS_POISSON_NLL, "log_input", "full", "eps")
LOSS_FN(gaussian_nll_loss, ML_LOSS_GAUSSIAN_NLL, "full", "eps")

void ml_lua_open_loss(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {
        {"mse_loss", l_mse_loss},
        {"l1_loss", l_l1_loss},
        {"smooth_l1_loss", l_smooth_l1_loss},
        {"cross_entropy", l_cross_entropy},
        {"nll_loss", l_nll_loss},
        {"binary_cross_entropy", l_binary_cross_entropy},
        {"binary_cross_entropy_with_logits", l_binary_cross_entropy_with_logits},
        {"kl_div", l_kl_div},
        {"poisson_nll_loss", l_poisson_nll_loss},
        {"gaussian_nll_loss", l_gaussian_nll_loss},
        {NULL, NULL}};
    lua_newtable(L);
    ml_lua_setfuncs(L, -1, funcs);
    lua_setfield(L, module, "_loss");
    static const luaL_Reg public_funcs[] = {{"set_strict_shapes", l_set_strict_shapes},
                                            {"get_strict_shapes", l_get_strict_shapes},
                                            {NULL, NULL}};
    ml_lua_setfuncs(L, module, public_funcs);
    /* the environment's default, read when moonlight is loaded into a Lua state */
    const char *env = getenv("ML_STRICT_SHAPES");
    lua_pushboolean(L, env && env[0] && strcmp(env, "0") != 0);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &strict_key);
}
