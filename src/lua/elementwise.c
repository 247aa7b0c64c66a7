/* Lua face of the elementwise family: metamethods (+ - * / ^ unary -), methods
 * and module functions. */
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

#define BINARY_FN(name, op) \
    static int l_##name(lua_State *L) { return binary(L, op); }
BINARY_FN(add, ML_BIN_ADD)
BINARY_FN(sub, ML_BIN_SUB)
BINARY_FN(mul, ML_BIN_MUL)
BINARY_FN(div, ML_BIN_DIV)
BINARY_FN(pow, ML_BIN_POW)
BINARY_FN(maximum, ML_BIN_MAXIMUM)
BINARY_FN(minimum, ML_BIN_MINIMUM)
BINARY_FN(eq, ML_BIN_EQ)
BINARY_FN(ne, ML_BIN_NE)
BINARY_FN(lt, ML_BIN_LT)
BINARY_FN(le, ML_BIN_LE)
BINARY_FN(gt, ML_BIN_GT)
BINARY_FN(ge, ML_BIN_GE)

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

static int unary(lua_State *L, ml_unary_op op) {
    return ml_lua_push_tensor(L, ml_unary(op, ml_lua_check_tensor(L, 1)));
}

#define UNARY_FN(name, op) \
    static int l_##name(lua_State *L) { return unary(L, op); }
UNARY_FN(neg, ML_UN_NEG)
UNARY_FN(exp, ML_UN_EXP)
UNARY_FN(log, ML_UN_LOG)
UNARY_FN(log1p, ML_UN_LOG1P)
UNARY_FN(abs, ML_UN_ABS)
UNARY_FN(sqrt, ML_UN_SQRT)
UNARY_FN(square, ML_UN_SQUARE)
UNARY_FN(sign, ML_UN_SIGN)
UNARY_FN(relu, ML_UN_RELU)
UNARY_FN(sigmoid, ML_UN_SIGMOID)
UNARY_FN(tanh, ML_UN_TANH)
UNARY_FN(reciprocal, ML_UN_RECIPROCAL)

static int l_unm(lua_State *L) { return unary(L, ML_UN_NEG); }

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

void ml_lua_open_elementwise(lua_State *L, int module, int methods) {
    static const luaL_Reg funcs[] = {
        {"add", l_add_alpha}, {"sub", l_sub}, {"mul", l_mul}, {"div", l_div}, {"pow", l_pow},
        {"maximum", l_maximum}, {"minimum", l_minimum}, {"eq", l_eq}, {"ne", l_ne},
        {"lt", l_lt}, {"le", l_le}, {"gt", l_gt}, {"ge", l_ge}, {"neg", l_neg},
        {"exp", l_exp}, {"log", l_log}, {"log1p", l_log1p}, {"abs", l_abs}, {"sqrt", l_sqrt},
        {"square", l_square}, {"sign", l_sign}, {"relu", l_relu}, {"sigmoid", l_sigmoid},
        {"tanh", l_tanh}, {"reciprocal", l_reciprocal}, {"clamp", l_clamp}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
    ml_lua_setfuncs(L, methods, funcs);
    lua_pushcfunction(L, l_where);
    lua_setfield(L, module, "where");
    lua_pushcfunction(L, l_where_method);
    lua_setfield(L, methods, "where");
    lua_getfield(L, module, "clamp");
    lua_setfield(L, methods, "clip");
    /* metamethods live on the metatable */
    luaL_getmetatable(L, ML_TENSOR_MT);
    static const luaL_Reg meta[] = {{"__add", l_add}, {"__sub", l_sub}, {"__mul", l_mul},
                                    {"__div", l_div}, {"__pow", l_pow}, {"__unm", l_unm},
                                    {NULL, NULL}};
    ml_lua_setfuncs(L, -1, meta);
    lua_pop(L, 1);
}
