/* Helpers of the fuzz targets (fuzz.h). */
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz.h"
#include "tensor.h"

int luaopen_moonlight(lua_State *L);

const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix) {
    static char path[256];
    static char last_suffix[32];
    if (strcmp(last_suffix, suffix) != 0) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        snprintf(path, sizeof path, "%s/ml_fuzz_%d%s", dir, (int)getpid(), suffix);
        snprintf(last_suffix, sizeof last_suffix, "%s", suffix);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            perror(path);
            abort();
        }
        done += (size_t)w;
    }
    close(fd);
    return path;
}

void fuzz_limit_tensor_memory(void) {
    static ml_budget *budget;
    if (budget) return;
    budget = ml_budget_new((size_t)32 << 20, NULL, NULL);
    if (!budget) abort();
    ml_budget_swap(budget);
}

#ifdef ML_FUZZ_LIBFUZZER
/* Coverage of Lua code for libFuzzer. The Lua half (the metrics.csv reader is all
 * Lua) runs in an interpreter that is not instrumented, so without this libFuzzer
 * would see no new coverage from it and keep no input. A line hook counts each
 * pair (previous line, line) of Lua code, AFL-style, in counters that libFuzzer
 * reads as extra features (its __libfuzzer_extra_counters section). */
#define LUA_COUNTERS (1u << 16)
__attribute__((section("__libfuzzer_extra_counters"), used)) static uint8_t lua_counters[LUA_COUNTERS];
static uintptr_t previous_line;

static void count_line(lua_State *L, lua_Debug *ar) {
    if (!lua_getinfo(L, "S", ar)) return;
    /* the source string lives as long as its chunk: its address names the chunk */
    uintptr_t here = ((uintptr_t)ar->source * 0x9E3779B1u) ^ ((uintptr_t)ar->currentline * 0x85EBCA6Bu);
    lua_counters[(here ^ previous_line) & (LUA_COUNTERS - 1)]++;
    previous_line = here >> 1;
}
#endif

lua_State *fuzz_lua_state(void) {
    static lua_State *L;
    if (L) return L;
    L = luaL_newstate();
    if (!L) abort();
#ifdef ML_FUZZ_LIBFUZZER
    lua_sethook(L, count_line, LUA_MASKLINE, 0);
#endif
    luaL_openlibs(L);
    luaL_requiref(L, "moonlight", luaopen_moonlight, 0);
    lua_setglobal(L, "ml");
    return L;
}

int fuzz_lua_call(const char *code, int nargs, const char *const *args, const char **error) {
    static unsigned calls;
    lua_State *L = fuzz_lua_state();
    int top = lua_gettop(L);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, code) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        if (luaL_loadstring(L, code) != LUA_OK) {
            fprintf(stderr, "fuzz: the target's chunk does not load: %s\n", lua_tostring(L, -1));
            abort();
        }
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, code);
    }
    for (int i = 0; i < nargs; i++) lua_pushstring(L, args[i]);
    int st = lua_pcall(L, nargs, 0, 0);
    if (error) *error = st == LUA_OK ? NULL : lua_tostring(L, -1);
    lua_settop(L, top);
    /* tensors die with their userdata: a full collection now and then keeps the
     * budget from filling with garbage */
    if (++calls % 64 == 0) lua_gc(L, LUA_GCCOLLECT);
    return st != LUA_OK;
}
