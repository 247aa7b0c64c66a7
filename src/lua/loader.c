/* luaopen_moonlight: preloads the C core and every embedded Lua module of the Lua
 * half (generated from lua/moonlight/ at build time), then runs moonlight's init. */
#include <string.h>

#include "binding.h"

struct ml_lua_source {
    const char *module, *chunkname, *code;
    size_t len;
};
extern const struct ml_lua_source ml_lua_sources[];

int luaopen_moonlight_core(lua_State *L);
int luaopen_moonlight(lua_State *L);

/* package.preload loader: upvalue 1 is the index into ml_lua_sources */
static int load_embedded(lua_State *L) {
    const struct ml_lua_source *s = &ml_lua_sources[lua_tointeger(L, lua_upvalueindex(1))];
    if (luaL_loadbuffer(L, s->code, s->len, s->chunkname) != LUA_OK) return lua_error(L);
    lua_pushstring(L, s->module);
    lua_call(L, 1, 1);
    return 1;
}

/* Registers the core and the Lua modules in package.preload (idempotent). */
static void preload_all(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_moonlight_core);
    lua_setfield(L, -2, "moonlight.core");
    for (int i = 0; ml_lua_sources[i].module; i++) {
        if (strcmp(ml_lua_sources[i].module, "moonlight") == 0) continue;
        lua_pushinteger(L, i);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, ml_lua_sources[i].module);
    }
    lua_pop(L, 1);
}

int luaopen_moonlight(lua_State *L) {
    preload_all(L);
    for (int i = 0; ml_lua_sources[i].module; i++) {
        if (strcmp(ml_lua_sources[i].module, "moonlight") != 0) continue;
        const struct ml_lua_source *s = &ml_lua_sources[i];
        if (luaL_loadbuffer(L, s->code, s->len, s->chunkname) != LUA_OK) return lua_error(L);
        lua_pushstring(L, "moonlight");
        lua_call(L, 1, 1);
        return 1;
    }
    return ml_lua_errorf(L, "moonlight: the Lua half (moonlight/init.lua) was not embedded in this build");
}
