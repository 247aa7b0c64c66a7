#define _POSIX_C_SOURCE 200809L
/* Stop requests, the Lua side (see stop.h): what Trainer:fit calls to learn whether
 * its host asked it to stop.
 *
 *   local req, mode = sys.stop_begin()   -- when fit starts
 *   sys.stop_requested(req)              -- after each step: one atomic load
 *   local pending = sys.stop_end(req, acted)  -- when fit returns or fails
 *
 * mode is "return" or "raise" for a request the host registered (ml_open, the
 * CLI), "signal" for the process-wide one: a state with no registered request
 * (stock lua5.4, a foreign host) gets a SIGINT handler for as long as a fit runs.
 * The first Ctrl-C then sets the request; a second one puts the previous handler
 * back and re-raises SIGINT at once (so lua5.4's own handler, or the default
 * action, sees it); and when the last fit ends, the previous handler is restored
 * and a Ctrl-C that fit answered is raised again for it: the process ends as it
 * would have, but after the step, the checkpoint and the logger's flush. A SIGINT
 * that is ignored (SIG_IGN: a background job, nohup) stays ignored. */
#include <lauxlib.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "binding.h"
#include "stop.h"

static const char stop_key; /* registry: lightuserdata ml_stop_request * */

void ml_lua_set_stop_request(lua_State *L, ml_stop_request *s) {
    if (s) lua_pushlightuserdata(L, s);
    else lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &stop_key);
}

/* --- the process-wide request and its SIGINT handler --- */

static ml_stop_request process_req;
static struct sigaction previous;     /* SIGINT's action before the first fit */
static int process_fits;              /* fits using process_req (under lock) */
static bool handler_installed;        /* false when SIGINT was ignored */
static atomic_int redelivered;        /* a second Ctrl-C already went to `previous` */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_sigint(int sig) {
    if (atomic_exchange(&process_req.requested, 1)) {
        /* the second Ctrl-C: what the process did without us, now (sigaction and
         * raise are async-signal-safe; SIGINT is blocked until we return) */
        atomic_store(&redelivered, 1);
        sigaction(SIGINT, &previous, NULL);
        raise(sig);
    }
}

static void process_begin(void) {
    pthread_mutex_lock(&lock);
    if (process_fits++ == 0) {
        atomic_store(&process_req.requested, 0);
        atomic_store(&redelivered, 0);
        struct sigaction cur;
        handler_installed = false;
        if (sigaction(SIGINT, NULL, &cur) == 0 && cur.sa_handler != SIG_IGN) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_sigint;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART; /* file writes in progress go on */
            previous = cur;
            handler_installed = sigaction(SIGINT, &sa, NULL) == 0;
        }
    }
    pthread_mutex_unlock(&lock);
}

/* Returns whether a Ctrl-C came while fits ran. */
static bool process_end(void) {
    bool pending = false, deliver = false;
    pthread_mutex_lock(&lock);
    if (process_fits > 0 && --process_fits == 0) {
        pending = atomic_exchange(&process_req.requested, 0) != 0;
        if (handler_installed) {
            if (!atomic_load(&redelivered)) sigaction(SIGINT, &previous, NULL);
            deliver = pending && !atomic_load(&redelivered);
            handler_installed = false;
        }
    } else {
        pending = atomic_load(&process_req.requested) != 0;
    }
    pthread_mutex_unlock(&lock);
    /* the Ctrl-C fit answered, to the handler it was meant for (lua5.4 raises
     * "interrupted!" at its next instruction; SIG_DFL ends the process) */
    if (deliver) raise(SIGINT);
    return pending;
}

/* --- Lua --- */

static ml_stop_request *registered(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &stop_key);
    ml_stop_request *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

/* stop_begin() -> req, mode */
static int l_stop_begin(lua_State *L) {
    ml_stop_request *s = registered(L);
    if (s) {
        atomic_fetch_add(&s->fits, 1);
        lua_pushlightuserdata(L, s);
        lua_pushstring(L, s->after == ML_STOP_RAISE ? "raise" : "return");
        return 2;
    }
    process_begin();
    lua_pushlightuserdata(L, &process_req);
    lua_pushstring(L, "signal");
    return 2;
}

static ml_stop_request *check_req(lua_State *L, const char *fname) {
    ml_stop_request *s = lua_touserdata(L, 1);
    if (!s || lua_type(L, 1) != LUA_TLIGHTUSERDATA)
        luaL_error(L, "%s: expected the request stop_begin returned", fname);
    return s;
}

/* stop_requested(req) -> boolean: polled after every step, so one atomic load */
static int l_stop_requested(lua_State *L) {
    ml_stop_request *s = check_req(L, "stop_requested");
    lua_pushboolean(L, atomic_load_explicit(&s->requested, memory_order_relaxed) != 0);
    return 1;
}

/* stop_end(req, acted) -> pending: whether a stop was asked for during the fit
 * (acted: fit stopped because of it). Clears the request. */
static int l_stop_end(lua_State *L) {
    ml_stop_request *s = check_req(L, "stop_end");
    bool acted = lua_toboolean(L, 2);
    bool pending;
    if (s == &process_req) {
        pending = process_end() || acted;
    } else {
        pending = atomic_exchange(&s->requested, 0) != 0 || acted;
        if (pending) atomic_store(&s->stopped, 1);
        if (atomic_load(&s->fits) > 0) atomic_fetch_sub(&s->fits, 1);
    }
    lua_pushboolean(L, pending);
    return 1;
}

void ml_lua_open_stop(lua_State *L, int t) {
    static const luaL_Reg funcs[] = {{"stop_begin", l_stop_begin},
                                     {"stop_requested", l_stop_requested},
                                     {"stop_end", l_stop_end},
                                     {NULL, NULL}};
    ml_lua_setfuncs(L, t, funcs);
}
