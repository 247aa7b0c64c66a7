/* The C side of ml.save / ml.load (lua/moonlight/serialization.lua): safetensors
 * checkpoints of a table name -> tensor. */
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../safetensors.h"
#include "../sandbox.h"
#include "binding.h"

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* _safetensors_save(tensors, path, metadata) */
static int l_save(lua_State *L) {
    luaL_argexpected(L, lua_istable(L, 1) && !ml_lua_test_tensor(L, 1), 1, "a table name -> tensor");
    luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_argexpected(L, lua_istable(L, 3), 3, "a table of strings");
    lua_settop(L, 3);
    const char *path = ml_lua_check_path(L, 2, ML_ACCESS_WRITE, "save");
    lua_replace(L, 2); /* keeps the resolved path alive at index 2 */
    /* names, sorted, kept alive in a Lua array at index 4 */
    lua_newtable(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return ml_lua_errorf(L, "save: tensor names must be strings, got a %s key", luaL_typename(L, -2));
        if (!ml_lua_test_tensor(L, -1))
            return ml_lua_errorf(L, "save: '%s' is a %s, expected a tensor", lua_tostring(L, -2),
                              luaL_typename(L, -1));
        size_t len;
        const char *name = lua_tolstring(L, -2, &len);
        if (strlen(name) != len) /* C strings would cut it, and JSON names cannot hold it here */
            return ml_lua_errorf(L, "save: tensor name '%s...' holds a NUL character", name);
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 4, ++n);
    }
    int m = 0;
    lua_newtable(L); /* metadata keys then values, at index 5 */
    if (!lua_isnil(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
                return ml_lua_errorf(L, "save: metadata must map strings to strings (safetensors' "
                                  "__metadata__), got %s -> %s", luaL_typename(L, -2), luaL_typename(L, -1));
            lua_tostring(L, -1); /* a number value becomes its string, in place */
            size_t kl, vl;
            const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
            if (strlen(k) != kl || strlen(v) != vl)
                return ml_lua_errorf(L, "save: metadata '%s' holds a NUL character", k);
            lua_pushvalue(L, -2);
            lua_rawseti(L, 5, 2 * m + 1);
            lua_rawseti(L, 5, 2 * m + 2);
            m++;
        }
    }
    size_t bytes = sizeof(void *) * (size_t)(2 * n + 2 * m + 2);
    void **mem = lua_newuserdatauv(L, bytes, 0);
    const char **names = (const char **)mem;
    ml_tensor **tensors = (ml_tensor **)(mem + n + 1);
    const char **keys = (const char **)(mem + 2 * n + 2), **values = keys + m;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 4, i + 1);
        names[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        lua_getfield(L, 1, names[i]);
        tensors[i] = ml_lua_test_tensor(L, -1);
        lua_pop(L, 1);
    }
    for (int i = 0; i < m; i++) {
        lua_rawgeti(L, 5, 2 * i + 1);
        keys[i] = lua_tostring(L, -1);
        lua_rawgeti(L, 5, 2 * i + 2);
        values[i] = lua_tostring(L, -1);
        lua_pop(L, 2);
    }
    if (ml_safetensors_save(path, n, names, tensors, m, keys, values)) return ml_lua_error(L);
    return 0;
}

#define BOX_MT "moonlight.safetensors"

static int box_gc(lua_State *L) {
    ml_safetensors **box = luaL_checkudata(L, 1, BOX_MT);
    ml_safetensors_free(*box);
    *box = NULL;
    return 0;
}

/* _safetensors_load(path) -> tensors, metadata */
static int l_load(lua_State *L) {
    const char *path = ml_lua_check_path(L, 1, ML_ACCESS_READ, "load");
    ml_safetensors **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, BOX_MT);
    *box = ml_safetensors_load(path);
    if (!*box) return ml_lua_error(L);
    ml_safetensors *st = *box;
    lua_createtable(L, 0, st->n);
    for (int i = 0; i < st->n; i++) {
        ml_tensor **ud = lua_newuserdatauv(L, sizeof *ud, 0);
        *ud = NULL;
        luaL_setmetatable(L, ML_TENSOR_MT);
        *ud = st->tensors[i];
        st->tensors[i] = NULL;
        lua_setfield(L, -2, st->names[i]);
    }
    lua_createtable(L, 0, st->n_meta);
    for (int i = 0; i < st->n_meta; i++) {
        lua_pushstring(L, st->meta_values[i]);
        lua_setfield(L, -2, st->meta_keys[i]);
    }
    return 2;
}

void ml_lua_open_serialization(lua_State *L, int module, int methods) {
    (void)methods;
    luaL_newmetatable(L, BOX_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {{"_safetensors_save", l_save}, {"_safetensors_load", l_load},
                                     {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
