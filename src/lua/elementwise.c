/* Lua face of the elementwise family: every op of the lists (elementwise_ops.h) as
 * a module function and a method under its name, the metamethods (+ - * / // ^ and
 * unary -), and what is not one op of a list (add's alpha, clamp, where, masked_fill). */
#include <math.h>

#include "../ops.h"
#include "binding.h"

/* Raises the argument error before any operand is retained: a reference taken
 * for one operand would leak when the other one raises. */
static void check_operands(lua_State *L, int from, int to) {
    for (int i = from; i <= to; i++) {
        int t = lua_type(L, i);
        if (t != LUA_TNUMBER && t != LUA_TBOOLEAN && !ml_lua_test_tensor(L, i))
            ml_lua_tensor_or_number(L, i, NULL); /* raises its usual message */
    }
}

/* The tensor among the first two arguments sets the dtype/device of a number. */
static int binary(lua_State *L, ml_binary_op op) {
    check_operands(L, 1, 2);
    ml_tensor *like = ml_lua_test_tensor(L, 1);
    if (!like) like = ml_lua_test_tensor(L, 2);
    ml_tensor *a = ml_lua_tensor_or_number(L, 1, like);
    ml_tensor *b = ml_lua_tensor_or_number(L, 2, like);
    ml_tensor *r;
    if (op == ML_BIN_POW && lua_type(L, 2) == LUA_TNUMBER) r = ml_pow_scalar(a, lua_tonumber(L, 2));
    else r = ml_binary(op, a, b);
    ml_tensor_release(a);
    ml_tensor_release(b);
    return ml_lua_push_tensor(L, r);
}

/* Every binary op of ML_BINARY_OPS, as module function, method and metamethod: a
 * closure whose upvalue is the op. */
static int l_binary(lua_State *L) {
    return binary(L, (ml_binary_op)lua_tointeger(L, lua_upvalueindex(1)));
}

/* a:add(b, alpha) as torch: a + alpha * b */
static int l_add_alpha(lua_State *L) {
    if (lua_isnoneornil(L, 3)) return binary(L, ML_BIN_ADD);
    ml_tensor *a = ml_lua_check_tensor(L, 1);
    double alpha = luaL_checknumber(L, 3);
    ml_tensor *b = ml_lua_tensor_or_number(L, 2, a);
    ml_tensor *sb = ml_mul_scalar(b, alpha);
    ml_tensor_release(b);
    if (!sb) return ml_lua_error(L);
    ml_tensor *r = ml_add(a, sb);
    ml_tensor_release(sb);
    return ml_lua_push_tensor(L, r);
}

/* op(t, ...) with the op's parameters (the list's params column) after the tensor:
 * numbers in the list's order (t:softplus(2, 10)) or a table by name
 * (t:softplus({beta = 2})); each one left out takes its default. An op without
 * parameters ignores what follows the tensor, as before. */
static int unary(lua_State *L, ml_unary_op op) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    const int np = ml_unary_n_params(op);
    if (np == 0) return ml_lua_push_tensor(L, ml_unary(op, t));
    const char *fname = ml_unary_name(op);
    double p[ML_UN_MAX_PARAMS];
    ml_unary_params(op, NULL, p);
    if (lua_istable(L, 2) && !ml_lua_test_tensor(L, 2)) {
        const char *allowed[ML_UN_MAX_PARAMS + 1] = {NULL};
        for (int i = 0; i < np; i++) allowed[i] = ml_unary_param_name(op, i);
        ml_lua_check_options(L, 2, fname, allowed);
        for (int i = 0; i < np; i++) p[i] = ml_lua_opt_number(L, 2, allowed[i], fname, p[i]);
    } else {
        for (int i = 0; i < np; i++) {
            if (lua_isnoneornil(L, 2 + i)) continue;
            if (lua_type(L, 2 + i) != LUA_TNUMBER)
                return ml_lua_errorf(L, "%s: %s must be a number, got %s", fname,
                                     ml_unary_param_name(op, i), luaL_typename(L, 2 + i));
            p[i] = lua_tonumber(L, 2 + i);
        }
    }
    return ml_lua_push_tensor(L, ml_unary_with(op, t, p));
}

/* Every unary op of ML_UNARY_OPS: a closure whose upvalue is the op. */
static int l_unary(lua_State *L) {
    return unary(L, (ml_unary_op)lua_tointeger(L, lua_upvalueindex(1)));
}

/* clamp(lo, hi): either may be nil; also clamp({min =, max =}) */
static int l_clamp(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    double lo = NAN, hi = NAN;
    if (lua_istable(L, 2)) {
        static const char *const allowed[] = {"min", "max", NULL};
        ml_lua_check_options(L, 2, "clamp", allowed);
        lo = ml_lua_opt_number(L, 2, "min", "clamp", NAN);
        hi = ml_lua_opt_number(L, 2, "max", "clamp", NAN);
    } else {
        if (!lua_isnoneornil(L, 2)) lo = luaL_checknumber(L, 2);
        if (!lua_isnoneornil(L, 3)) hi = luaL_checknumber(L, 3);
    }
    if (isnan(lo) && isnan(hi)) return ml_lua_errorf(L, "clamp: at least one of min and max must be given");
    return ml_lua_push_tensor(L, ml_clamp(t, lo, hi));
}

/* where(cond, a, b) as a function; cond:where? torch's method form is a:where(cond, b) */
static int l_where(lua_State *L) {
    ml_tensor *cond = ml_lua_check_tensor(L, 1);
    check_operands(L, 2, 3);
    ml_tensor *like = ml_lua_test_tensor(L, 2);
    if (!like) like = ml_lua_test_tensor(L, 3);
    ml_tensor *a = ml_lua_tensor_or_number(L, 2, like);
    ml_tensor *b = ml_lua_tensor_or_number(L, 3, like);
    ml_tensor *r = ml_where(cond, a, b);
    ml_tensor_release(a);
    ml_tensor_release(b);
    return ml_lua_push_tensor(L, r);
}

static int l_where_method(lua_State *L) { /* a:where(cond, b) */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_replace(L, 3);
    lua_replace(L, 2);
    lua_replace(L, 1);
    return l_where(L);
}

/* t:masked_fill(mask, value): value a number or a 0-dim tensor */
static int l_masked_fill(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1), *mask = ml_lua_check_tensor(L, 2);
    if (lua_isnoneornil(L, 3))
        return ml_lua_errorf(L, "masked_fill: value (a number or a 0-dim tensor) is required");
    check_operands(L, 3, 3);
    ml_tensor *v = ml_lua_tensor_or_number(L, 3, t);
    ml_tensor *r = ml_masked_fill(t, mask, v);
    ml_tensor_release(v);
    return ml_lua_push_tensor(L, r);
}

/* t[name] = closure(op) for each of module and methods. */
static void set_op(lua_State *L, int module, int methods, const char *name, lua_CFunction fn,
                   int op) {
    lua_pushinteger(L, op);
    lua_pushcclosure(L, fn, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, module, name);
    lua_setfield(L, methods, name);
}

/* core._elementwise_ops: {unary = {{name =, node =, float_only =, mask =, params =
 * {{name =, default =}, ...}}, ...}, binary = {{name =, node =, float_only =, mask =},
 * ...}} in list order, so that tests cover every op of the lists. */
static void push_op_lists(lua_State *L) {
    lua_createtable(L, 0, 2);
    lua_createtable(L, ML_UN_COUNT, 0);
    for (int op = 0; op < ML_UN_COUNT; op++) {
        const ml_unary_op u = (ml_unary_op)op;
        lua_createtable(L, 0, 5);
        lua_pushstring(L, ml_unary_name(u));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, ml_unary_node_name(u));
        lua_setfield(L, -2, "node");
        lua_pushboolean(L, ml_unary_float_only(u));
        lua_setfield(L, -2, "float_only");
        lua_pushboolean(L, ml_unary_is_mask(u));
        lua_setfield(L, -2, "mask");
        lua_createtable(L, ml_unary_n_params(u), 0);
        for (int i = 0; i < ml_unary_n_params(u); i++) {
            lua_createtable(L, 0, 2);
            lua_pushstring(L, ml_unary_param_name(u, i));
            lua_setfield(L, -2, "name");
            lua_pushnumber(L, ml_unary_param_default(u, i));
            lua_setfield(L, -2, "default");
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "params");
        lua_rawseti(L, -2, op + 1);
    }
    lua_setfield(L, -2, "unary");
    lua_createtable(L, ML_BIN_COUNT, 0);
    for (int op = 0; op < ML_BIN_COUNT; op++) {
        lua_createtable(L, 0, 4);
        lua_pushstring(L, ml_binary_name((ml_binary_op)op));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, ml_binary_node_name((ml_binary_op)op));
        lua_setfield(L, -2, "node");
        lua_pushboolean(L, ml_binary_float_only((ml_binary_op)op));
        lua_setfield(L, -2, "float_only");
        lua_pushboolean(L, ml_binary_is_mask((ml_binary_op)op));
        lua_setfield(L, -2, "mask");
        lua_rawseti(L, -2, op + 1);
    }
    lua_setfield(L, -2, "binary");
}

void ml_lua_open_elementwise(lua_State *L, int module, int methods) {
    module = lua_absindex(L, module);
    methods = lua_absindex(L, methods);
    /* every op of the lists: ml.name(...) and t:name(...) */
    for (int op = 0; op < ML_UN_COUNT; op++)
        set_op(L, module, methods, ml_unary_name((ml_unary_op)op), l_unary, op);
    for (int op = 0; op < ML_BIN_COUNT; op++)
        set_op(L, module, methods, ml_binary_name((ml_binary_op)op), l_binary, op);
    push_op_lists(L);
    lua_setfield(L, module, "_elementwise_ops");
    /* what is not one op of a list: add's alpha (replaces the plain add), clamp, where */
    static const luaL_Reg funcs[] = {{"add", l_add_alpha}, {"clamp", l_clamp},
                                     {"masked_fill", l_masked_fill}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
    ml_lua_setfuncs(L, methods, funcs);
    lua_pushcfunction(L, l_where);
    lua_setfield(L, module, "where");
    lua_pushcfunction(L, l_where_method);
    lua_setfield(L, methods, "where");
    lua_getfield(L, module, "clamp");
    lua_setfield(L, methods, "clip");
    /* metamethods: Lua's operators, a fixed set (ORDER: none) */
    static const struct {
        const char *name;
        int op;
        bool unary;
    } meta[] = {{"__add", ML_BIN_ADD, false}, {"__sub", ML_BIN_SUB, false},
                {"__mul", ML_BIN_MUL, false}, {"__div", ML_BIN_DIV, false},
                {"__pow", ML_BIN_POW, false}, {"__idiv", ML_BIN_FLOOR_DIVIDE, false},
                {"__unm", ML_UN_NEG, true}};
    luaL_getmetatable(L, ML_TENSOR_MT);
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
        lua_pushinteger(L, meta[i].op);
        lua_pushcclosure(L, meta[i].unary ? l_unary : l_binary, 1);
        lua_setfield(L, -2, meta[i].name);
    }
    lua_pop(L, 1);
}
