/* Lua face of the loss family: torch.nn.functional's losses, options as a trailing
 * table with PyTorch's names and defaults. Registered in core._loss; functional.lua
 * puts them into ml.F under the same names. */
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

/* f(input, target[, var], opts): the shared body of every loss. */
static int loss_call(lua_State *L, ml_loss_kind kind, const char *const *allowed) {
    const char *fname = ml_loss_name(kind);
    bool has_var = kind == ML_LOSS_GAUSSIAN_NLL;
    int opts = has_var ? 4 : 3;
    ml_tensor *input = ml_lua_check_tensor(L, 1);
    ml_tensor *target = ml_lua_check_tensor(L, 2);
    ml_lua_check_options(L, opts, fname, allowed);
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
}
