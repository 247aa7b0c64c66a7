/* Lua face of the sort family: t:sort(dim, {descending}), t:argsort, t:topk(k, dim,
 * {largest, sorted}), t:cumsum(dim). Dims are 1-based (negative from the end) and
 * default to the last as torch's (cumsum's is required); positions in the results
 * are 0-based int64 data, as torch's and as t:max(dim) gives them. */
#include "../ops.h"
#include "binding.h"

/* The dim at idx (the last when absent or when idx holds the options table) and
 * where the options are: *opts. */
static int dim_last(lua_State *L, int idx, const ml_tensor *t, const char *fname, int *opts) {
    *opts = idx + 1;
    if (lua_isnoneornil(L, idx)) return -1;
    if (lua_istable(L, idx) && !ml_lua_test_tensor(L, idx)) {
        *opts = idx;
        return -1;
    }
    return ml_lua_check_dim(L, idx, t->ndim, fname);
}

/* descending from {descending = b} or a plain boolean at idx; stable is accepted
 * (the sort is always stable) */
static bool descending_opt(lua_State *L, int idx, const char *fname) {
    if (lua_isboolean(L, idx)) return lua_toboolean(L, idx);
    static const char *const allowed[] = {"descending", "stable", NULL};
    ml_lua_check_options(L, idx, fname, allowed);
    (void)ml_lua_opt_bool(L, idx, "stable", fname, 1);
    return ml_lua_opt_bool(L, idx, "descending", fname, 0);
}

/* t:sort(dim = -1, {descending = false}) -> values, indices */
static int l_sort(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int o;
    int d = dim_last(L, 2, t, "sort", &o);
    bool desc = descending_opt(L, o, "sort");
    ml_tensor *idx = NULL;
    ml_lua_push_tensor(L, ml_sort(t, d, desc, &idx));
    ml_lua_push_tensor(L, idx);
    return 2;
}

/* t:argsort(dim = -1, {descending = false}) -> indices */
static int l_argsort(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int o;
    int d = dim_last(L, 2, t, "argsort", &o);
    return ml_lua_push_tensor(L, ml_argsort(t, d, descending_opt(L, o, "argsort")));
}

/* t:topk(k, dim = -1, {largest = true, sorted = true}) -> values, indices */
static int l_topk(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int isint;
    lua_Integer k = lua_tointegerx(L, 2, &isint);
    if (!isint)
        return ml_lua_errorf(L, "topk: k must be an integer, got %s", luaL_typename(L, 2));
    int o;
    int d = dim_last(L, 3, t, "topk", &o);
    static const char *const allowed[] = {"largest", "sorted", NULL};
    ml_lua_check_options(L, o, "topk", allowed);
    bool largest = ml_lua_opt_bool(L, o, "largest", "topk", 1);
    (void)ml_lua_opt_bool(L, o, "sorted", "topk", 1); /* the k come sorted either way */
    ml_tensor *idx = NULL;
    ml_lua_push_tensor(L, ml_topk(t, (int64_t)k, d, largest, &idx));
    ml_lua_push_tensor(L, idx);
    return 2;
}

/* t:cumsum(dim, {dtype}): the input cast to dtype first, as torch's */
static int l_cumsum(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) return ml_lua_errorf(L, "cumsum: dim is required");
    int d = ml_lua_check_dim(L, 2, t->ndim, "cumsum");
    static const char *const allowed[] = {"dtype", NULL};
    ml_lua_check_options(L, 3, "cumsum", allowed);
    ml_dtype dt = ml_lua_opt_dtype(L, 3, "cumsum", t->dtype);
    if (dt == t->dtype) return ml_lua_push_tensor(L, ml_cumsum(t, d));
    ml_tensor *c = ml_cast(t, dt);
    if (!c) return ml_lua_error(L);
    ml_tensor *r = ml_cumsum(c, d);
    ml_tensor_release(c);
    return ml_lua_push_tensor(L, r);
}

void ml_lua_open_sort(lua_State *L, int module, int methods) {
    static const luaL_Reg funcs[] = {{"sort", l_sort}, {"argsort", l_argsort}, {"topk", l_topk},
                                     {"cumsum", l_cumsum}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
    ml_lua_setfuncs(L, methods, funcs);
}
