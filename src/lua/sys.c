/* Operating-system helpers the Lua half needs and stock Lua lacks: a monotonic
 * clock (progress bars, benchmarks), isatty (progress bars redraw only on a
 * terminal), directories (the CSV logger's version_N folders) and atomic renames
 * (files are written under a temporary name and renamed into place), file times
 * (the newest checkpoint) and fit's stop requests (stop.c). Exposed as
 * ml._sys; not part of the public API.
 *
 * Every path goes through the state's sandbox (ml_lua_check_path): in a
 * sandboxed runtime (src/api) only the granted directories are reachable. The
 * Lua half opens and removes files through open/remove here, not io/os, so that
 * its loggers and readers work in a sandbox, confined like the rest. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../cpu/capability.h"
#include "../sandbox.h"
#include "../threads.h"
#include "binding.h"
#include "stop.h"
#include <lualib.h>

static int l_clock(lua_State *L) {
    lua_pushnumber(L, ml_clock_seconds());
    return 1;
}

/* isatty(fd = 1) */
static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
    return 1;
}

static int l_terminal_width(lua_State *L) {
    struct winsize w;
    if (ioctl(1, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) lua_pushinteger(L, w.ws_col);
    else lua_pushinteger(L, 100);
    return 1;
}

/* mkdir -p; returns true or nil, message */
static int l_mkdir_p(lua_State *L) {
    const char *path = ml_lua_check_path(L, 1, ML_ACCESS_WRITE, "mkdir");
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return ml_lua_errorf(L, "mkdir: invalid path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot create directory '%s': %s", buf, strerror(errno));
            return 2;
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        lua_pushnil(L);
        lua_pushfstring(L, "'%s' exists and is not a directory", path);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* listdir(path) -> array of names (without . and ..), or nil, message */
static int l_listdir(lua_State *L) {
    const char *path = ml_lua_check_path(L, 1, ML_ACCESS_READ, "listdir");
    DIR *d = opendir(path);
    if (!d) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot list '%s': %s", path, strerror(errno));
        return 2;
    }
    lua_newtable(L);
    int i = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++i);
    }
    closedir(d);
    return 1;
}

/* kind(path) -> "file", "directory", "other" or nil */
static int l_kind(lua_State *L) {
    struct stat st;
    if (stat(ml_lua_check_path(L, 1, ML_ACCESS_READ, "kind"), &st) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ? "file" : "other");
    return 1;
}

/* mtime(path) -> seconds since the epoch (with fractions), or nil */
static int l_mtime(lua_State *L) {
    struct stat st;
    if (stat(luaL_checkstring(L, 1), &st) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec * 1e-9);
    return 1;
}

static int l_rename(lua_State *L) {
    const char *from = ml_lua_check_path(L, 1, ML_ACCESS_WRITE, "rename");
    const char *to = ml_lua_check_path(L, 2, ML_ACCESS_WRITE, "rename");
    if (rename(from, to) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot rename '%s' to '%s': %s", from, to, strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* fsync a file by path, so a renamed file is on disk before the rename */
static int l_fsync(lua_State *L) {
    FILE *f = fopen(ml_lua_check_path(L, 1, ML_ACCESS_READ, "fsync"), "rb");
    if (f) {
        fsync(fileno(f));
        fclose(f);
    }
    return 0;
}

static int l_getpid(lua_State *L) {
    lua_pushinteger(L, getpid());
    return 1;
}

/* peak resident set size in bytes */
static int l_peak_rss(lua_State *L) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    lua_pushinteger(L, (lua_Integer)ru.ru_maxrss * 1024);
    return 1;
}

static int l_set_num_threads(lua_State *L) {
    if (ml_set_num_threads((int)luaL_checkinteger(L, 1))) return ml_lua_error(L);
    return 0;
}

static int l_get_num_threads(lua_State *L) {
    lua_pushinteger(L, ml_get_num_threads());
    return 1;
}

/* torch.backends.cpu.get_cpu_capability(): "DEFAULT", "AVX2" or "AVX512", the set
 * of CPU kernels that runs (src/cpu/capability.h) */
static int l_cpu_capability(lua_State *L) {
    static const char *const names[ML_CPU_CAPABILITY_COUNT] = {"DEFAULT", "AVX2", "AVX512"};
    lua_pushstring(L, names[ml_cpu_capability()]);
    return 1;
}

/* open(path, mode = "r") -> a Lua file (io.open's), or nil, message: io.open
 * through the sandbox (a mode with w, a or + writes). Upvalue 1: io.open, from an
 * io library of our own that scripts of a sandbox never see. */
static int l_open(lua_State *L) {
    const char *mode = luaL_optstring(L, 2, "r");
    int access = strpbrk(mode, "wa+") ? ML_ACCESS_WRITE : ML_ACCESS_READ;
    const char *path = ml_lua_check_path(L, 1, access, "open");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushstring(L, path);
    lua_pushstring(L, mode);
    lua_call(L, 2, 3);
    return 3;
}

/* remove(path) -> true, or nil, message (os.remove through the sandbox) */
static int l_remove(lua_State *L) {
    const char *path = ml_lua_check_path(L, 1, ML_ACCESS_WRITE, "remove");
    if (remove(path) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", lua_tostring(L, 1), strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* raise(msg): error(msg) at the user's line (ml_lua_where): util.raise's way in a
 * state without the debug library (ML_LIB_SAFE). */
static int l_raise(lua_State *L) {
    size_t n;
    const char *msg = luaL_checklstring(L, 1, &n);
    ml_lua_where(L);
    lua_pushlstring(L, msg, n);
    lua_concat(L, 2);
    return lua_error(L);
}

/* sleep(seconds): in slices of at most 50 ms, so that an interrupt from the host
 * (ml_interrupt) ends it; a day at most (NaN or 1e300 seconds do not convert to
 * time_t). */
static int l_sleep(lua_State *L) {
    double s = luaL_checknumber(L, 1);
    if (!(s > 0)) return 0;
    if (s > 86400) s = 86400;
    double end = ml_clock_seconds() + s;
    for (double left = s; left > 0 && !ml_lua_interrupted(L); left = end - ml_clock_seconds()) {
        double slice = left < 0.05 ? left : 0.05;
        struct timespec ts = {0, (long)(slice * 1e9)};
        nanosleep(&ts, NULL);
    }
    return 0;
}

void ml_lua_open_sys(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {
        {"clock", l_clock}, {"isatty", l_isatty}, {"terminal_width", l_terminal_width},
        {"mkdir_p", l_mkdir_p}, {"listdir", l_listdir}, {"kind", l_kind}, {"mtime", l_mtime},
        {"rename", l_rename}, {"fsync", l_fsync}, {"getpid", l_getpid},
        {"peak_rss", l_peak_rss}, {"sleep", l_sleep}, {"raise", l_raise}, {"cpu_capability", l_cpu_capability},
        {NULL, NULL}};
    lua_newtable(L);
    ml_lua_setfuncs(L, -1, funcs);
    ml_lua_open_stop(L, -1); /* Trainer:fit's stop requests (stop.c) */
    /* io.open from an io table of our own (not the global, not package.loaded) */
    lua_pushcfunction(L, luaopen_io);
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "open");
    lua_pushcclosure(L, l_open, 1);
    lua_setfield(L, -3, "open");
    lua_getfield(L, -1, "stdout"); /* the progress bars' stream, io or not */
    lua_setfield(L, -3, "stdout");
    lua_getfield(L, -1, "stderr"); /* warnings and stop messages, io or not */
    lua_setfield(L, -3, "stderr");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_remove);
    lua_setfield(L, -2, "remove");
    lua_setfield(L, module, "_sys");
    static const luaL_Reg public_funcs[] = {{"set_num_threads", l_set_num_threads},
                                            {"get_num_threads", l_get_num_threads}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, public_funcs);
}
