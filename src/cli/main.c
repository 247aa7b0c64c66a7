/* The moonlight CLI: `moonlight script.lua [args...]`, `moonlight -e 'code'`,
 * `moonlight plot metrics.csv`, `moonlight --version`, `moonlight --help`. Runs the
 * script in a Lua state with the standard libraries and moonlight preloaded, `arg`
 * set as lua(1) sets it. Exit code 0 on success, 1 on a script error (the
 * traceback goes to stderr), 130 when Ctrl-C stopped a Trainer:fit cleanly.
 *
 * Under an MPI launcher (`mpirun -np 2 moonlight train.lua`), a script that fails
 * on one rank ends the whole job at once (MPI_Abort, exit status 1 from mpirun):
 * the other ranks would otherwise wait forever in their next collective. A
 * script that ends well ends MPI in order (src/dist.h, ml_distributed_finalize).
 *
 * Ctrl-C: while a fit runs, the first SIGINT asks it to stop after the current
 * step (it saves a checkpoint, flushes its logger and raises an error that ends
 * the script with 130); a second one, or one while no fit runs, ends the process
 * at once, as SIGINT does by default. */
#define _POSIX_C_SOURCE 200809L
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../dist.h"
#include "../error.h"
#include "../lua/binding.h"
#include "../lua/stop.h"
#include "../tensor.h"
#include "../version.h"

/* polled by Trainer:fit (src/lua/stop.c); the handler only touches atomics */
static ml_stop_request stop_request = {.after = ML_STOP_RAISE};

/* the state's collector before a large tensor (tensor.h, src/lua/util.c) */
static void collect_before_alloc(void *L, size_t nbytes) { ml_lua_collect_before_alloc(L, nbytes); }

static void on_sigint(int sig) {
    if (atomic_load(&stop_request.fits) == 0 || atomic_exchange(&stop_request.requested, 1)) {
        /* no fit to stop cleanly, or the second Ctrl-C: the default action, now */
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

static void handle_sigint(void) {
    struct sigaction sa, cur;
    /* a SIGINT the parent ignores (a background job) stays ignored */
    if (sigaction(SIGINT, NULL, &cur) != 0 || cur.sa_handler == SIG_IGN) return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
}

int luaopen_moonlight(lua_State *L);
int luaopen_moonlight_bench(lua_State *L);

static void usage(FILE *f) {
    fprintf(f,
            "usage: moonlight [options] [script.lua [args...]]\n"
            "  -e code      run the Lua code (moonlight is available as the global ml)\n"
            "  --version    print the version\n"
            "  --help       print this help\n"
            "  plot metrics.csv [-o curves.png]\n"
            "               draw a CSVLogger's loss curves to a PNG\n"
            "A script gets its arguments in `arg` (arg[0] is the script), as with lua.\n"
            "Inside, `local ml = require \"moonlight\"` loads the library.\n"
            "Ctrl-C during Trainer:fit stops after the current step, saves a checkpoint\n"
            "and exits with status 130; a second Ctrl-C exits at once.\n");
}

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    /* a fit stopped by Ctrl-C: its message says all, a traceback would not help */
    if (atomic_load(&stop_request.stopped)) return 1;
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int run_chunk(lua_State *L, int status, int nargs) {
    if (status == LUA_OK) {
        int base = lua_gettop(L) - nargs;
        lua_pushcfunction(L, traceback);
        lua_insert(L, base);
        status = lua_pcall(L, nargs, 0, base);
        lua_remove(L, base);
    }
    if (status != LUA_OK) {
        if (ml_distributed_is_initialized() && ml_distributed_world_size() > 1)
            fprintf(stderr, "moonlight (rank %d of %d): %s\n", ml_distributed_rank(), ml_distributed_world_size(),
                    lua_tostring(L, -1));
        else
            fprintf(stderr, "moonlight: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return atomic_load(&stop_request.stopped) ? 130 : 1;
    }
    return 0;
}

/* arg = {[0] = script, args...}, and negative indices for the interpreter. */
static void set_arg(lua_State *L, char **argv, int argc, int script) {
    lua_createtable(L, argc - script, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static void plot_usage(FILE *f) {
    fprintf(f, "usage: moonlight plot metrics.csv [-o curves.png]\n"
               "  Draws the curves of a CSVLogger's metrics.csv against step, one panel per\n"
               "  metric: loss with val_loss, train_acc with val_acc (the name after a\n"
               "  train_/val_/test_ prefix, without a _step/_epoch suffix).\n"
               "  -o FILE      the PNG to write (default curves.png)\n"
               "  -h, --help   print this help\n");
}

/* moonlight plot metrics.csv [-o curves.png]: errors are one line, no traceback
 * (a wrong path or a bad file is the user's, not a bug) */
static int plot_command(lua_State *L, int argc, char **argv) {
    const char *csv = NULL, *out = "curves.png";
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            plot_usage(stdout);
            return 0;
        } else if (strcmp(a, "-o") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "moonlight plot: -o needs a file name\n");
                return 1;
            }
            out = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "moonlight plot: unknown option '%s'\n", a);
            plot_usage(stderr);
            return 1;
        } else if (!csv) {
            csv = a;
        } else {
            fprintf(stderr, "moonlight plot: unexpected argument '%s'\n", a);
            plot_usage(stderr);
            return 1;
        }
    }
    if (!csv) {
        plot_usage(stderr);
        return 1;
    }
    static const char code[] =
        "local csv, out = ...\n"
        "require('moonlight')\n"
        "local ok, err = pcall(require('moonlight.history').plot, csv, out)\n"
        "if not ok then return tostring(err):gsub('^[^\\n]-:%d+: ', '') end\n"
        "print('wrote ' .. out)\n";
    if (luaL_loadbuffer(L, code, sizeof code - 1, "=plot") != LUA_OK) return run_chunk(L, LUA_ERRSYNTAX, 0);
    lua_pushstring(L, csv);
    lua_pushstring(L, out);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) return run_chunk(L, LUA_ERRRUN, 0);
    if (lua_isstring(L, -1)) { /* the error, without the position of the code that raised it */
        fprintf(stderr, "moonlight plot: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 1;
    }
    lua_pop(L, 1);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("moonlight %s (%s)\n", ML_VERSION_STRING, LUA_RELEASE);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "moonlight: cannot create a Lua state (out of memory)\n");
        return 1;
    }
    ml_lua_use_generational_gc(L); /* tensors die young: see src/lua/util.c */
    ml_set_collect_hook(collect_before_alloc, L, NULL, NULL);
    ml_lua_set_stop_request(L, &stop_request);
    handle_sigint();
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_moonlight);
    lua_setfield(L, -2, "moonlight");
    lua_pushcfunction(L, luaopen_moonlight_bench); /* the benchmarks' peers (bench.c) */
    lua_setfield(L, -2, "moonlight.bench");
    lua_pop(L, 1);
    int rc = 0;
    if (argc >= 2 && strcmp(argv[1], "plot") == 0) {
        rc = plot_command(L, argc, argv);
    } else if (argc >= 3 && strcmp(argv[1], "-e") == 0) {
        set_arg(L, argv, argc, 2);
        lua_getglobal(L, "require");
        lua_pushstring(L, "moonlight");
        rc = run_chunk(L, LUA_OK, 1) ;
        if (rc == 0) {
            lua_getglobal(L, "require");
            lua_pushstring(L, "moonlight");
            lua_call(L, 1, 1);
            lua_setglobal(L, "ml");
            rc = run_chunk(L, luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)"), 0);
        }
    } else if (argc >= 2 && argv[1][0] == '-' && argv[1][1] != '\0') {
        fprintf(stderr, "moonlight: unknown option '%s'\n", argv[1]);
        usage(stderr);
        rc = 1;
    } else if (argc >= 2) {
        set_arg(L, argv, argc, 1);
        int status = strcmp(argv[1], "-") == 0 ? luaL_loadfile(L, NULL) : luaL_loadfile(L, argv[1]);
        if (status == LUA_OK) {
            for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
            rc = run_chunk(L, status, argc - 2);
        } else {
            rc = run_chunk(L, status, 0);
        }
    } else {
        usage(stderr);
        rc = 1;
    }
    /* one rank failed: the others are (or will be) stuck in a collective */
    if (rc != 0 && ml_distributed_is_initialized() && ml_distributed_world_size() > 1) ml_distributed_abort(rc);
    ml_set_collect_hook(NULL, NULL, NULL, NULL);
    lua_close(L);
    if (ml_distributed_is_initialized() && ml_distributed_finalize(ml_distributed_exit_timeout()) != 0 && rc == 0) {
        fprintf(stderr, "moonlight: %s\n", ml_error());
        rc = 1;
    }
    return rc;
}
