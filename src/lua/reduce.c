/* Lua face of the reduce family: t:sum(), t:sum(dim, keepdim), t:max(dim) -> values,
 * indices; t:all(), t:any(); t:var(dim, {correction, keepdim}), std, norm(p, dim). */
#include <math.h>
#include <string.h>

#include "../backend/reduce.h"
#include "../ops.h"
#include "binding.h"

static int reduce(lua_State *L, const char *fname,
                  ml_tensor *(*fn)(ml_tensor *, int, bool)) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int d = lua_isnoneornil(L, 2) ? ML_ALL_DIMS : ml_lua_check_dim(L, 2, t->ndim, fname);
    bool keepdim = lua_toboolean(L, 3);
    return ml_lua_push_tensor(L, fn(t, d, keepdim));
}

static int l_sum(lua_State *L) { return reduce(L, "sum", ml_sum); }
static int l_mean(lua_State *L) { return reduce(L, "mean", ml_mean); }
static int l_argmax(lua_State *L) { return reduce(L, "argmax", ml_argmax); }
static int l_argmin(lua_State *L) { return reduce(L, "argmin", ml_argmin); }

static int l_logsumexp(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) return ml_lua_errorf(L, "logsumexp: dim is required");
    int d = ml_lua_check_dim(L, 2, t->ndim, "logsumexp");
    return ml_lua_push_tensor(L, ml_logsumexp(t, d, lua_toboolean(L, 3)));
}

/* max() -> 0-dim; max(dim, keepdim) -> values, indices (0-based ids, as torch);
 * max(other_tensor) -> elementwise maximum, as torch.max(a, b). */
static int extreme(lua_State *L, bool is_max) {
    const char *fname = is_max ? "max" : "min";
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    ml_tensor *other = ml_lua_test_tensor(L, 2);
    if (other) return ml_lua_push_tensor(L, ml_binary(is_max ? ML_BIN_MAXIMUM : ML_BIN_MINIMUM, t, other));
    if (lua_isnoneornil(L, 2)) {
        ml_tensor *v = is_max ? ml_max(t, ML_ALL_DIMS, false, NULL) : ml_min(t, ML_ALL_DIMS, false, NULL);
        return ml_lua_push_tensor(L, v);
    }
    int d = ml_lua_check_dim(L, 2, t->ndim, fname);
    ml_tensor *idx = NULL;
    ml_tensor *v = is_max ? ml_max(t, d, lua_toboolean(L, 3), &idx) : ml_min(t, d, lua_toboolean(L, 3), &idx);
    ml_lua_push_tensor(L, v);
    if (!idx) {
        lua_pushnil(L);
        return 2;
    }
    ml_lua_push_tensor(L, idx);
    return 2;
}

static int l_max(lua_State *L) { return extreme(L, true); }
static int l_min(lua_State *L) { return extreme(L, false); }

/* all() / any() -> 0-dim uint8; all(dim, keepdim) over one dim */
static int l_all(lua_State *L) { return reduce(L, "all", ml_all); }
static int l_any(lua_State *L) { return reduce(L, "any", ml_any); }

/* The optional dim at idx (nil or absent: all elements, ML_ALL_DIMS), or an options
 * table there instead (t:var({correction = 0})): *opts is then idx. */
static int dim_or_all(lua_State *L, int idx, const ml_tensor *t, const char *fname, int *opts) {
    *opts = idx + 1;
    if (lua_isnoneornil(L, idx)) return ML_ALL_DIMS;
    if (lua_istable(L, idx) && !ml_lua_test_tensor(L, idx)) {
        *opts = idx;
        return ML_ALL_DIMS;
    }
    return ml_lua_check_dim(L, idx, t->ndim, fname);
}

/* var(dim?, {correction = 1, unbiased, keepdim = false}) and std, as torch's
 * (unbiased = false is correction 0) */
static int var_std(lua_State *L, bool is_std) {
    const char *fname = is_std ? "std" : "var";
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int o;
    int d = dim_or_all(L, 2, t, fname, &o);
    static const char *const allowed[] = {"correction", "unbiased", "keepdim", NULL};
    ml_lua_check_options(L, o, fname, allowed);
    double correction = ml_lua_opt_number(L, o, "correction", fname, NAN);
    int unbiased = ml_lua_opt_bool(L, o, "unbiased", fname, -1);
    if (!isnan(correction) && unbiased >= 0)
        return ml_lua_errorf(L, "%s: give correction or unbiased, not both", fname);
    if (isnan(correction)) correction = unbiased == 0 ? 0 : 1;
    bool keepdim = ml_lua_opt_bool(L, o, "keepdim", fname, 0);
    return ml_lua_push_tensor(L, is_std ? ml_std(t, d, correction, keepdim)
                                        : ml_var(t, d, correction, keepdim));
}
static int l_var(lua_State *L) { return var_std(L, false); }
static int l_std(lua_State *L) { return var_std(L, true); }

/* norm(p = 2, dim?, {keepdim = false}): p a number (math.huge for inf) or "fro" */
static int l_norm(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    double p = 2;
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *s = lua_tostring(L, 2);
        if (strcmp(s, "fro") != 0)
            return ml_lua_errorf(L, "norm: p must be a number or \"fro\", got \"%s\"", s);
    } else if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER)
            return ml_lua_errorf(L, "norm: p must be a number or \"fro\", got %s", luaL_typename(L, 2));
        p = lua_tonumber(L, 2);
    }
    int o;
    int d = dim_or_all(L, 3, t, "norm", &o);
    static const char *const allowed[] = {"keepdim", NULL};
    ml_lua_check_options(L, o, "norm", allowed);
    return ml_lua_push_tensor(L, ml_norm(t, p, d, ml_lua_opt_bool(L, o, "keepdim", "norm", 0)));
}

/* The reductions' Lua signatures differ (dims, keepdim, several results), so their
 * functions are written here by hand, one per op of ML_REDUCE_OPS: a reduction added
 * to the list stops the build here until it has its Lua face. */
_Static_assert(ML_RED_COUNT == 9, "src/lua/reduce.c registers 9 reductions");

void ml_lua_open_reduce(lua_State *L, int module, int methods) {
    static const luaL_Reg funcs[] = {{"sum", l_sum}, {"mean", l_mean}, {"max", l_max},
                                     {"min", l_min}, {"argmax", l_argmax}, {"argmin", l_argmin},
                                     {"logsumexp", l_logsumexp}, {"all", l_all}, {"any", l_any},
                                     /* composed of the list's reductions (ops/reduce.c) */
                                     {"var", l_var}, {"std", l_std}, {"norm", l_norm},
                                     {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
    ml_lua_setfuncs(L, methods, funcs);
}
