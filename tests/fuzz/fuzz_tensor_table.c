/* Fuzz target: tensors from nested Lua tables (ml.tensor, src/lua/tensor.c) and
 * the creation functions' shapes and values. The input drives a small generator
 * that builds a Lua value through the C API: integers (2^53 + 1, the extremes),
 * floats (NaN, infinities, 1e308, -0.0), booleans, strings, nested and ragged
 * tables, tables with __len and __index metamethods that lie, tensors; then a
 * dtype. A tensor made must be usable (sum, tostring, totable, its shape). */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static unsigned next(input *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static uint64_t next64(input *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | next(in);
    return v;
}

/* __len returns upvalue 1, __index returns upvalue 2 for any key */
static int lying_len(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}
static int lying_index(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}

static void push_value(lua_State *L, input *in, int depth) {
    luaL_checkstack(L, 8, "fuzz");
    unsigned op = next(in) % 13;
    if (depth >= 10 && op >= 6) op = 1;
    switch (op) {
    case 0: lua_pushinteger(L, (lua_Integer)next64(in)); break;
    case 1: lua_pushinteger(L, (int8_t)next(in)); break;
    case 2: {
        uint64_t bits = next64(in);
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, d);
        break;
    }
    case 3: {
        static const double specials[] = {0.0, -0.0, 9007199254740992.0, 9223372036854775808.0,
                                          -9223372036854775808.0, 1e308, 255.5, 256.0, -1.0, 0.5};
        unsigned k = next(in) % 14;
        if (k < 10) lua_pushnumber(L, specials[k]);
        else if (k == 10) lua_pushnumber(L, NAN);
        else if (k == 11) lua_pushnumber(L, INFINITY);
        else if (k == 12) lua_pushinteger(L, 9007199254740993);
        else lua_pushinteger(L, LUA_MININTEGER);
        break;
    }
    case 4: lua_pushboolean(L, next(in) & 1); break;
    case 5: {
        char s[8];
        unsigned len = next(in) % 8;
        for (unsigned i = 0; i < len; i++) s[i] = (char)next(in);
        lua_pushlstring(L, s, len);
        break;
    }
    case 6: case 7: case 8: case 9: { /* an array of 0..6 values */
        unsigned count = next(in) % 7;
        lua_createtable(L, (int)count, 0);
        for (unsigned i = 1; i <= count; i++) {
            push_value(L, in, depth + 1);
            lua_rawseti(L, -2, i);
        }
        break;
    }
    case 10: { /* a table whose length and elements are whatever the metamethods say */
        lua_newtable(L);
        lua_createtable(L, 0, 2);
        unsigned k = next(in) % 4;
        if (k == 0) lua_pushinteger(L, (lua_Integer)(next64(in) >> (next(in) % 64)));
        else if (k == 1) lua_pushinteger(L, -(lua_Integer)next(in));
        else lua_pushinteger(L, next(in) % 5);
        lua_pushcclosure(L, lying_len, 1);
        lua_setfield(L, -2, "__len");
        push_value(L, in, depth + 1);
        lua_pushcclosure(L, lying_index, 1);
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
        break;
    }
    case 11: { /* a tensor */
        lua_getglobal(L, "ml");
        lua_getfield(L, -1, "ones");
        lua_remove(L, -2);
        lua_pushinteger(L, next(in) % 4);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) abort();
        break;
    }
    default: lua_pushnil(L);
    }
}

static const char *const dtypes[] = {NULL, "float32", "float64", "int64", "uint8", "long", "bool"};

/* use(t): what a user does with a tensor */
static const char use_code[] =
    FUZZ_LUA_TOTABLE_VALUES
    "local t = ...\n"
    "local s = tostring(t)\n"
    "local shape = t:shape()\n"
    "local n = 1\n"
    "for _, d in ipairs(shape) do n = n * d end\n"
    "assert(n == t:numel(), 'numel differs from the shape')\n"
    "local sum = t:sum():item()\n"
    "local values = totable_values(shape)\n"
    "if values <= 65536 then\n"
    "  local tt = t:totable()\n"
    "  if #shape > 0 then assert(#tt == shape[1], 'totable differs from the shape') end\n"
    "elseif values >= 2^31 then\n"
    "  local ok, e = pcall(t.totable, t)\n"
    "  assert(not ok and e:find('totable: ', 1, true), 'totable of an absurd size: ' .. tostring(e))\n"
    "end\n";

static int call_use(lua_State *L) {
    if (luaL_loadstring(L, use_code) != LUA_OK) return lua_error(L);
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_limit_tensor_memory();
    lua_State *L = fuzz_lua_state();
    static unsigned calls;
    int top = lua_gettop(L);
    input in = {data, size};
    unsigned mode = next(&in) % 3;
    const char *dtype = dtypes[next(&in) % (sizeof dtypes / sizeof dtypes[0])];
    lua_getglobal(L, "ml");
    /* ml.tensor(value, opts), ml.full(shape, value, opts), ml.zeros(shape, opts) */
    lua_getfield(L, -1, mode == 0 ? "tensor" : mode == 1 ? "full" : "zeros");
    push_value(L, &in, 0);
    if (mode == 1) push_value(L, &in, 9);
    lua_createtable(L, 0, 1);
    if (dtype) {
        lua_pushstring(L, dtype);
        lua_setfield(L, -2, "dtype");
    }
    int nargs = mode == 1 ? 3 : 2;
    if (lua_pcall(L, nargs, 1, 0) == LUA_OK) {
        lua_pushcfunction(L, call_use);
        lua_insert(L, -2);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            fprintf(stderr, "fuzz_tensor_table: a tensor made does not work: %s\n", lua_tostring(L, -1));
            abort();
        }
    } else if (lua_type(L, -1) != LUA_TSTRING) {
        abort(); /* an error must be a message */
    }
    lua_settop(L, top);
    if (++calls % 64 == 0) lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
