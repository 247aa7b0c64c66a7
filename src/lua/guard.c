/* Limits an embedding host places on a Lua state: the allocator that counts the
 * Lua heap into a memory budget, and the file sandbox checks (see binding.h). */
#define _POSIX_C_SOURCE 200809L /* PATH_MAX */
#include <limits.h>
#include <stdlib.h>

#include "../error.h"
#include "../sandbox.h"
#include "../tensor.h"
#include "binding.h"

void *ml_lua_guard_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    ml_lua_guard *g = ud;
    size_t old = ptr ? osize : 0;
    size_t *used = g->budget ? ml_budget_lua_bytes(g->budget) : NULL;
    if (nsize == 0) {
        free(ptr);
        if (used) *used -= old;
        return NULL;
    }
    if (used && nsize > old) {
        size_t limit = ml_budget_limit(g->budget);
        uint64_t total = (uint64_t)*used - old + nsize + (uint64_t)ml_budget_tensor_bytes(g->budget);
        if (limit && total > limit) return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    if (used) *used = *used - old + nsize;
    return p;
}

ml_lua_guard *ml_lua_guard_of(lua_State *L) {
    void *ud = NULL;
    return lua_getallocf(L, &ud) == ml_lua_guard_alloc ? ud : NULL;
}

const char *ml_lua_check_path(lua_State *L, int idx, int access, const char *fname) {
    luaL_checkstring(L, idx);
    const ml_lua_guard *g = ml_lua_guard_of(L);
    if (!g || !g->sandbox) {
        lua_pushvalue(L, idx);
        return lua_tostring(L, -1);
    }
    const char *path = lua_tostring(L, idx);
    char resolved[PATH_MAX];
    if (ml_sandbox_check(g->sandbox, fname, path, access, resolved, sizeof resolved))
        ml_lua_error(L);
    return lua_pushstring(L, resolved);
}

int ml_lua_interrupted(lua_State *L) {
    const ml_lua_guard *g = ml_lua_guard_of(L);
    return g && g->interrupted && *g->interrupted;
}
