/* Lua face of the reduce family: t:sum(), t:sum(dim, keepdim), t:max(dim) -> values, indices. */
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

/* The reductions' Lua signatures differ (dims, keepdim, several results), so their
 * functions are written here by hand, one per op of ML_REDUCE_OPS: a reduction added
 * to the list stops the build here until it has its Lua face. */
_Static_assert(ML_RED_COUNT == 7, "src/lua/reduce.c registers 7 reductions");

void ml_lua_open_reduce(lua_State *L, int module, int methods) {
    static const luaL_Reg funcs[] = {{"sum", l_sum}, {"mean", l_mean}, {"max", l_max},
                                     {"min", l_min}, {"argmax", l_argmax}, {"argmin", l_argmin},
                                     {"logsumexp", l_logsumexp}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
    ml_lua_setfuncs(L, methods, funcs);
}
