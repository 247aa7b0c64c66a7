/* ml.Generator: a random generator object with its own state (torch.Generator),
 * for the random ops' `generator` option, random_split and DataLoader. The ops
 * without one draw from the thread's default generator (ml.manual_seed). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../ops.h"
#include "binding.h"

#define ML_GENERATOR_MT "moonlight.Generator"

/* torch.Generator().initial_seed() */
#define ML_GENERATOR_DEFAULT_SEED 67280421310721ULL

static ml_generator *check_generator(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, ML_GENERATOR_MT);
}

ml_generator *ml_lua_test_generator(lua_State *L, int idx) {
    return luaL_testudata(L, idx, ML_GENERATOR_MT);
}

ml_generator *ml_lua_opt_generator(lua_State *L, int idx, const char *fname) {
    if (lua_type(L, idx) != LUA_TTABLE) return NULL;
    lua_getfield(L, idx, "generator");
    ml_generator *g = NULL;
    if (!lua_isnil(L, -1)) {
        g = ml_lua_test_generator(L, -1);
        if (!g)
            ml_lua_errorf(L, "%s: option 'generator' must be an ml.Generator, got %s", fname,
                          luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return g;
}

/* Generator(): seeded with torch's default seed, so a fresh one is repeatable. */
static int l_generator(lua_State *L) {
    ml_generator *g = lua_newuserdatauv(L, sizeof *g, 0);
    ml_generator_seed(g, ML_GENERATOR_DEFAULT_SEED);
    luaL_setmetatable(L, ML_GENERATOR_MT);
    return 1;
}

/* g:manual_seed(seed) -> g (as torch, so Generator():manual_seed(42) chains) */
static int l_manual_seed(lua_State *L) {
    ml_generator *g = check_generator(L, 1);
    lua_Integer s = luaL_checkinteger(L, 2);
    ml_generator_seed(g, (uint64_t)s);
    lua_settop(L, 1);
    return 1;
}

/* g:seed() -> a fresh non-deterministic seed, now the generator's */
static int l_seed(lua_State *L) {
    ml_generator *g = check_generator(L, 1);
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&s, sizeof s, 1, f) != 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)g;
    }
    if (f) fclose(f);
    s >>= 1; /* a non-negative Lua integer */
    ml_generator_seed(g, s);
    lua_pushinteger(L, (lua_Integer)s);
    return 1;
}

static int l_initial_seed(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)check_generator(L, 1)->seed);
    return 1;
}

/* g:get_state() -> bytes (a string, as ml.get_rng_state) */
static int l_get_state(lua_State *L) {
    ml_generator *g = check_generator(L, 1);
    lua_pushlstring(L, (const char *)g, sizeof *g);
    return 1;
}

/* g:set_state(bytes) -> g */
static int l_set_state(lua_State *L) {
    ml_generator *g = check_generator(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (n != sizeof *g)
        return ml_lua_errorf(L, "Generator:set_state: expected a state of %d bytes from get_state "
                             "(or ml.get_rng_state), got %d", (int)sizeof *g, (int)n);
    memcpy(g, s, n);
    lua_settop(L, 1);
    return 1;
}

static int l_is_generator(lua_State *L) {
    lua_pushboolean(L, ml_lua_test_generator(L, 1) != NULL);
    return 1;
}

static int l_tostring(lua_State *L) {
    ml_generator *g = check_generator(L, 1);
    lua_pushfstring(L, "Generator(device=cpu, initial_seed=%I)", (lua_Integer)g->seed);
    return 1;
}

void ml_lua_open_generator(lua_State *L, int module) {
    static const luaL_Reg methods[] = {
        {"manual_seed", l_manual_seed}, {"seed", l_seed}, {"initial_seed", l_initial_seed},
        {"get_state", l_get_state},     {"set_state", l_set_state}, {NULL, NULL}};
    luaL_newmetatable(L, ML_GENERATOR_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushliteral(L, "cpu");
    lua_setfield(L, -2, "device");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "Generator");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {{"Generator", l_generator},
                                       {"_is_generator", l_is_generator}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
