#define _POSIX_C_SOURCE 200809L
/* The embedding API's runtime: a Lua state with a counting allocator, moonlight
 * loaded, and every call into Lua made in protected mode so that no Lua error
 * (memory errors included) ever unwinds through the host.
 *
 * Each public call runs its Lua work in a C function called through lua_pcall
 * (`protect`), with a message handler that adds the traceback. Work that fails for
 * a reason of the API's own (a bad path, a wrong type) records the error in C
 * memory and returns normally. While a call is in Lua, the runtime's generator,
 * grad mode and memory budget are swapped into the thread's (`enter`/`leave`).
 *
 * The sandbox (docs/EMBEDDING.md): the state's allocator carries a guard
 * (src/lua/binding.h) with the memory budget (Lua heap and tensors against one
 * limit), the file sandbox (src/sandbox.h) and the interrupt flag; ml_interrupt
 * and the time limit's watchdog stop a script through a Lua hook. */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "../lua/binding.h"
#include "../version.h"
#include "internal.h"

int luaopen_moonlight(lua_State *L);

/* --- errors --- */

static _Thread_local char thread_err[1024];
static _Thread_local int thread_status;

static int vfail(ml_runtime *rt, int status, const char *fmt, va_list ap) {
    if (!rt) {
        vsnprintf(thread_err, sizeof thread_err, fmt, ap);
        thread_status = status;
        return status;
    }
    char buf[1024];
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    free(rt->err);
    rt->err = NULL;
    if (n >= (int)sizeof buf) { /* long: a traceback */
        rt->err = malloc((size_t)n + 1);
        if (rt->err) vsnprintf(rt->err, (size_t)n + 1, fmt, cp);
    }
    va_end(cp);
    if (!rt->err) rt->err = strdup(buf);
    rt->status = status;
    return status;
}

int ml_api_fail(ml_runtime *rt, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(rt, status, fmt, ap);
    va_end(ap);
    return status;
}

int ml_api_ok(ml_runtime *rt) {
    if (!rt) {
        thread_err[0] = '\0';
        thread_status = ML_OK;
    } else {
        free(rt->err);
        rt->err = NULL;
        rt->status = ML_OK;
    }
    return ML_OK;
}

const char *ml_last_error(const ml_runtime *rt) {
    if (!rt) return thread_err;
    return rt->err ? rt->err : "";
}

int ml_last_status(const ml_runtime *rt) { return rt ? rt->status : thread_status; }

const char *ml_status_name(int status) {
    static const char *const names[] = {"ML_OK", "ML_ERR_ARG", "ML_ERR_SCRIPT", "ML_ERR_MEMORY",
                                        "ML_ERR_IO", "ML_ERR_TYPE", "ML_ERR_NOT_FOUND",
                                        "ML_ERR_DEVICE", "ML_ERR_INTERRUPTED"};
    if (status < 0 || status >= (int)(sizeof names / sizeof names[0])) return "ML_ERR_UNKNOWN";
    return names[status];
}

const char *ml_version(void) { return ML_VERSION_STRING; }

/* --- entering and leaving Lua --- */

static void watchdog_arm(ml_runtime *rt);
static void watchdog_disarm(ml_runtime *rt);

static void collect_before_alloc(void *ctx, size_t nbytes);

static void enter(ml_runtime *rt) {
    if (rt->depth++ > 0) return;
    ml_set_collect_hook(collect_before_alloc, rt, &rt->saved_hook, &rt->saved_hook_ctx);
    ml_generator *g = ml_default_generator();
    rt->saved_gen = *g;
    *g = rt->gen;
    rt->saved_grad = ml_grad_enabled();
    ml_set_grad_enabled(rt->grad);
    rt->saved_budget = ml_budget_swap(rt->budget);
    rt->refusals = ml_budget_refusals(rt->budget);
    watchdog_arm(rt);
}

static void leave(ml_runtime *rt) {
    if (--rt->depth > 0) return;
    watchdog_disarm(rt);
    ml_generator *g = ml_default_generator();
    rt->gen = *g;
    *g = rt->saved_gen;
    rt->grad = ml_grad_enabled();
    ml_set_grad_enabled(rt->saved_grad);
    ml_budget_swap(rt->saved_budget);
    ml_set_collect_hook(rt->saved_hook, rt->saved_hook_ctx, NULL, NULL);
}

/* The collector before a large tensor while a call runs (tensor.h, src/lua/util.c). */
static void collect_before_alloc(void *ctx, size_t nbytes) {
    ml_runtime *rt = ctx;
    ml_lua_collect_before_alloc(rt->active ? rt->active : rt->L, nbytes);
}

/* The budget's reclaim: a full collection frees the tensors Lua holds dead (the
 * collector does not see their bytes until it runs). */
static void reclaim(void *ctx) {
    ml_runtime *rt = ctx;
    lua_gc(rt->active ? rt->active : rt->L, LUA_GCCOLLECT);
}

/* --- interrupts ---------------------------------------------------------------
 * ml_interrupt (another thread, a signal handler) and the watchdog set the flag
 * and a hook on the main state and on the coroutine running now, as lua.c does
 * for Ctrl-C (lua_sethook is safe to call asynchronously). The hook raises an
 * error at the next instruction, and at every one after while the flag is set:
 * a script that catches the error cannot go on, since pcall, xpcall and the
 * coroutine functions of every runtime are wrapped to raise it again (and an
 * xpcall handler is skipped: Lua runs it with hooks off when a hook raised the
 * error). The outermost call then returns ML_ERR_INTERRUPTED and clears the
 * flag. A flag set while no call runs stops the next Lua code that runs. */

static ml_runtime *runtime_of(lua_State *L) {
    ml_lua_guard *g = ml_lua_guard_of(L);
    return g ? g->owner : NULL;
}

static const char *interrupt_message(int kind) {
    return kind == ML_INTR_TIME ? "stopped: the runtime's time limit was reached"
                                : "interrupted by the host (ml_interrupt)";
}

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    ml_runtime *rt = runtime_of(L);
    int kind = rt ? atomic_load(&rt->interrupt) : ML_INTR_NONE;
    if (kind == ML_INTR_NONE) { /* cleared since: a coroutine hooked earlier */
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    luaL_error(L, "%s", interrupt_message(kind)); /* the hook stays: the next one raises too */
}

/* Count events only, at every instruction: a C function (the API's own work in
 * protect, a message handler) is never stopped half-way, Lua code at once. */
static void hook_now(lua_State *L) { lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 1); }

/* Sets the flag (the first reason wins) and hooks what runs. Async-signal-safe:
 * lock-free atomics and lua_sethook only. */
static void interrupt_with(ml_runtime *rt, int kind) {
    atomic_fetch_add(&rt->interrupting, 1);
    int none = ML_INTR_NONE;
    atomic_compare_exchange_strong(&rt->interrupt, &none, kind);
    hook_now(rt->L);
    lua_State *co = atomic_load(&rt->running);
    if (co) hook_now(co);
    atomic_fetch_sub(&rt->interrupting, 1);
}

int ml_interrupt(ml_runtime *rt) {
    if (!rt) return ML_ERR_ARG;
    interrupt_with(rt, ML_INTR_HOST);
    return ML_OK;
}

static int raise_interrupt(lua_State *L, ml_runtime *rt) {
    return luaL_error(L, "%s", interrupt_message(atomic_load(&rt->interrupt)));
}

static bool interrupted(ml_runtime *rt) { return rt && atomic_load(&rt->interrupt) != ML_INTR_NONE; }

/* pcall / xpcall: the original (upvalue 1), then the interrupt raised again if it
 * was what they caught. */
static int guarded_pcall_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status;
    (void)ctx;
    ml_runtime *rt = runtime_of(L);
    if (interrupted(rt)) return raise_interrupt(L, rt);
    return lua_gettop(L);
}

static int guarded_pcall(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, guarded_pcall_k);
    return guarded_pcall_k(L, LUA_OK, 0);
}

/* An xpcall message handler (upvalue 1: the script's): skipped once the runtime
 * is interrupted. An error raised by a hook is handled with hooks off, so a
 * handler that loops would never see the interrupt again. */
static int guarded_handler(lua_State *L) {
    ml_runtime *rt = runtime_of(L);
    if (interrupted(rt)) return 1; /* the error as it is */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* xpcall(f, handler, ...): the original (upvalue 1) with the handler guarded */
static int guarded_xpcall(lua_State *L) {
    if (lua_gettop(L) >= 2) {
        lua_pushvalue(L, 2);
        lua_pushcclosure(L, guarded_handler, 1);
        lua_replace(L, 2);
    }
    return guarded_pcall(L);
}

/* setmetatable in a sandbox: no __gc. Lua runs finalizers with hooks off, so a
 * finalizer that loops could never be interrupted; a metatable marks its object
 * for finalization when it is set, so a __gc added later is never called. */
static int guarded_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: a __gc metamethod is not allowed in a sandboxed "
                                 "runtime (finalizers run where the host cannot interrupt them)");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Calls the function below the nargs arguments in protected mode while co is the
 * coroutine running (an interrupt hooks it); then waits for any ml_interrupt
 * still hooking co, which may be collected once this returns. */
static int call_tracking(lua_State *L, ml_runtime *rt, lua_State *co, int nargs) {
    lua_State *prev = rt && co ? atomic_exchange(&rt->running, co) : NULL;
    if (rt && co && interrupted(rt)) hook_now(co);
    int st = lua_pcall(L, nargs, LUA_MULTRET, 0);
    if (rt && co) {
        atomic_store(&rt->running, prev);
        while (atomic_load(&rt->interrupting)) sched_yield();
    }
    return st;
}

/* coroutine.resume / coroutine.close (upvalue 1: the original; argument 1: the
 * coroutine) */
static int guarded_resume(lua_State *L) {
    ml_runtime *rt = runtime_of(L);
    if (interrupted(rt)) return raise_interrupt(L, rt);
    lua_State *co = lua_tothread(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    int st = call_tracking(L, rt, co, lua_gettop(L) - 1);
    if (interrupted(rt)) return raise_interrupt(L, rt);
    if (st != LUA_OK) return lua_error(L); /* resume's own error (a bad argument) */
    return lua_gettop(L);
}

/* The function coroutine.wrap made (upvalue 1) of coroutine upvalue 2. */
static int guarded_wrapped(lua_State *L) {
    ml_runtime *rt = runtime_of(L);
    if (interrupted(rt)) return raise_interrupt(L, rt);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    int st = call_tracking(L, rt, lua_tothread(L, lua_upvalueindex(2)), lua_gettop(L) - 1);
    if (interrupted(rt)) return raise_interrupt(L, rt);
    if (st != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

/* coroutine.wrap (upvalue 1: the original): its function, wrapped with the
 * coroutine it resumes (the original's first upvalue). */
static int guarded_wrap(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    if (!lua_getupvalue(L, -1, 1) || !lua_isthread(L, -1))
        return luaL_error(L, "coroutine.wrap: unexpected implementation (no coroutine upvalue)");
    lua_pushcclosure(L, guarded_wrapped, 2);
    return 1;
}

/* Replaces lib[name] with a C closure of f over the original. */
static void wrap_field(lua_State *L, int lib, const char *name, lua_CFunction f) {
    lib = lua_absindex(L, lib);
    if (lua_getfield(L, lib, name) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, lib, name);
}

static void install_interrupt_wrappers(lua_State *L) {
    lua_pushglobaltable(L);
    wrap_field(L, -1, "pcall", guarded_pcall);
    wrap_field(L, -1, "xpcall", guarded_xpcall);
    lua_pop(L, 1);
    if (lua_getglobal(L, LUA_COLIBNAME) == LUA_TTABLE) {
        wrap_field(L, -1, "resume", guarded_resume);
        wrap_field(L, -1, "close", guarded_resume);
        wrap_field(L, -1, "wrap", guarded_wrap);
    }
    lua_pop(L, 1);
}

/* --- the time limit: one watchdog thread per runtime that has one --- */

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *watchdog_main(void *arg) {
    ml_runtime *rt = arg;
    pthread_mutex_lock(&rt->wd_mu);
    while (!rt->wd_quit) {
        if (rt->wd_deadline == 0) {
            pthread_cond_wait(&rt->wd_cv, &rt->wd_mu);
            continue;
        }
        if (monotonic_now() >= rt->wd_deadline) {
            rt->wd_deadline = 0;
            interrupt_with(rt, ML_INTR_TIME);
            continue;
        }
        struct timespec until;
        until.tv_sec = (time_t)rt->wd_deadline;
        until.tv_nsec = (long)((rt->wd_deadline - (double)until.tv_sec) * 1e9);
        pthread_cond_timedwait(&rt->wd_cv, &rt->wd_mu, &until);
    }
    pthread_mutex_unlock(&rt->wd_mu);
    return NULL;
}

static void watchdog_arm(ml_runtime *rt) {
    if (!rt->watchdog) return;
    pthread_mutex_lock(&rt->wd_mu);
    rt->wd_deadline = monotonic_now() + rt->time_limit;
    pthread_cond_signal(&rt->wd_cv);
    pthread_mutex_unlock(&rt->wd_mu);
}

/* The call is over: nothing to time, and a time limit that struck as it ended
 * must not stop the next one. */
static void watchdog_disarm(ml_runtime *rt) {
    if (!rt->watchdog) return;
    pthread_mutex_lock(&rt->wd_mu);
    rt->wd_deadline = 0;
    int time = ML_INTR_TIME;
    if (atomic_compare_exchange_strong(&rt->interrupt, &time, ML_INTR_NONE)) lua_sethook(rt->L, NULL, 0, 0);
    pthread_mutex_unlock(&rt->wd_mu);
}

static int watchdog_start(ml_runtime *rt) {
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) return -1;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_mutex_init(&rt->wd_mu, NULL) == 0;
    if (ok && pthread_cond_init(&rt->wd_cv, &ca) != 0) {
        pthread_mutex_destroy(&rt->wd_mu);
        ok = 0;
    }
    pthread_condattr_destroy(&ca);
    if (!ok) return -1;
    if (pthread_create(&rt->wd_thread, NULL, watchdog_main, rt) != 0) {
        pthread_cond_destroy(&rt->wd_cv);
        pthread_mutex_destroy(&rt->wd_mu);
        return -1;
    }
    rt->watchdog = true;
    return 0;
}

static void watchdog_stop(ml_runtime *rt) {
    if (!rt->watchdog) return;
    pthread_mutex_lock(&rt->wd_mu);
    rt->wd_quit = true;
    pthread_cond_signal(&rt->wd_cv);
    pthread_mutex_unlock(&rt->wd_mu);
    pthread_join(rt->wd_thread, NULL);
    pthread_cond_destroy(&rt->wd_cv);
    pthread_mutex_destroy(&rt->wd_mu);
    rt->watchdog = false;
}

static lua_State *state_of(ml_runtime *rt) { return rt->active ? rt->active : rt->L; }

static int msgh(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
        else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* A protected call's context: the runtime, the call's own data, and the status
 * the work sets when it fails for a reason of its own. */
typedef struct call {
    ml_runtime *rt;
    const char *fname;
    int status;
    void *data;
} call;

/* Runs f(L) with a lightuserdata `call` at index 1, in protected mode. */
static int protect(ml_runtime *rt, const char *fname, lua_CFunction f, void *data) {
    lua_State *L = state_of(rt);
    call c = {rt, fname, ML_OK, data};
    int top = lua_gettop(L);
    enter(rt);
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, &c);
    int st = lua_pcall(L, 1, 0, top + 1);
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "(error object is not a string)";
        if (interrupted(rt)) {
            ml_api_fail(rt, ML_ERR_INTERRUPTED, "%s", msg);
        } else if (st == LUA_ERRMEM) {
            if (rt->mem_limit)
                ml_api_fail(rt, ML_ERR_MEMORY, "%s: not enough memory (the runtime's memory "
                            "limit is %zu bytes)", fname, rt->mem_limit);
            else ml_api_fail(rt, ML_ERR_MEMORY, "%s: not enough memory", fname);
        } else if (ml_budget_refusals(rt->budget) != rt->refusals && strstr(msg, ML_BUDGET_REFUSED)) {
            /* a tensor the memory limit refused, raised as a Lua error */
            ml_api_fail(rt, ML_ERR_MEMORY, "%s", msg);
        } else {
            ml_api_fail(rt, ML_ERR_SCRIPT, "%s", msg);
        }
        c.status = rt->status;
    } else if (c.status == ML_OK) {
        ml_api_ok(rt);
    }
    lua_settop(L, top);
    if (rt->depth == 1 && c.status == ML_ERR_INTERRUPTED) {
        /* the outermost call stopped: the interrupt is spent */
        atomic_store(&rt->interrupt, ML_INTR_NONE);
        lua_sethook(rt->L, NULL, 0, 0);
    }
    leave(rt);
    return c.status;
}

static call *call_of(lua_State *L) { return lua_touserdata(L, 1); }

/* Records an API error from inside a protected function (no Lua error). */
static int call_fail(call *c, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int call_fail(call *c, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[800];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ml_api_fail(c->rt, status, "%s: %s", c->fname, buf);
    c->status = status;
    return 0;
}

/* --- paths: "a.b.3", "1.loss" (1st result) --- */

static const char RESULTS_KEY = 'r';
static const char ARGS_MT = 'a';

static bool all_digits(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static int check_path(call *c, const char *path) {
    if (!path) return call_fail(c, ML_ERR_ARG, "the name is NULL"), -1;
    size_t n = strlen(path);
    if (n == 0 || path[0] == '.' || path[n - 1] == '.' || strstr(path, ".."))
        return call_fail(c, ML_ERR_ARG, "'%s' is not a name (expected a dotted path such as "
                         "\"result.loss\")", path), -1;
    return 0;
}

/* Pushes component [s, s+n) of a key: an integer when all digits. */
static void push_key(lua_State *L, const char *s, size_t n) {
    if (all_digits(s, n) && n < 18) lua_pushinteger(L, (lua_Integer)strtoll(s, NULL, 10));
    else lua_pushlstring(L, s, n);
}

static bool indexable(lua_State *L, int idx) {
    int t = lua_type(L, idx);
    if (t == LUA_TTABLE) return true;
    if (t == LUA_TUSERDATA && luaL_getmetafield(L, idx, "__index") != LUA_TNIL) {
        lua_pop(L, 1);
        return true;
    }
    return false;
}

/* Pushes the value at path; 0, or -1 with the call's error set (nothing pushed). */
static int push_path(lua_State *L, call *c, const char *path) {
    if (check_path(c, path)) return -1;
    const char *s = path;
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    if (all_digits(s, n)) {
        lua_Integer i = (lua_Integer)strtoll(s, NULL, 10);
        if (i < 1 || i > c->rt->nresults) {
            call_fail(c, ML_ERR_NOT_FOUND, "'%s': the last run returned %d value%s", path,
                      c->rt->nresults, c->rt->nresults == 1 ? "" : "s");
            return -1;
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &RESULTS_KEY);
        lua_rawgeti(L, -1, i);
        lua_remove(L, -2);
    } else {
        lua_pushglobaltable(L);
        push_key(L, s, n);
        lua_gettable(L, -2);
        lua_remove(L, -2);
    }
    while (dot) {
        if (lua_isnil(L, -1)) {
            call_fail(c, ML_ERR_NOT_FOUND, "'%s': '%.*s' is nil", path, (int)(dot - path), path);
            lua_pop(L, 1);
            return -1;
        }
        if (!indexable(L, -1)) {
            call_fail(c, ML_ERR_TYPE, "'%s': '%.*s' is a %s, not a table", path, (int)(dot - path),
                      path, luaL_typename(L, -1));
            lua_pop(L, 1);
            return -1;
        }
        s = dot + 1;
        dot = strchr(s, '.');
        n = dot ? (size_t)(dot - s) : strlen(s);
        push_key(L, s, n);
        lua_gettable(L, -2);
        lua_remove(L, -2);
    }
    return 0;
}

/* Assigns the value on top of the stack to path (creating tables on the way); pops it. */
static int set_path(lua_State *L, call *c, const char *path) {
    if (check_path(c, path)) return lua_pop(L, 1), -1;
    const char *s = path;
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    if (all_digits(s, n)) {
        lua_pop(L, 1);
        return call_fail(c, ML_ERR_ARG, "'%s': a name must start with a letter (numbers name "
                         "the results of the last run, which are read-only)", path), -1;
    }
    int value = lua_gettop(L);
    lua_pushglobaltable(L);
    while (dot) {
        push_key(L, s, n);
        lua_pushvalue(L, -1);
        lua_gettable(L, -3);              /* tbl key child */
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_settable(L, -5);          /* tbl[key] = {} */
        } else if (!indexable(L, -1)) {
            call_fail(c, ML_ERR_TYPE, "'%s': '%.*s' is a %s, not a table", path,
                      (int)(dot - path), path, luaL_typename(L, -1));
            lua_settop(L, value - 1);
            return -1;
        }
        lua_remove(L, -2);
        lua_remove(L, -2);
        s = dot + 1;
        dot = strchr(s, '.');
        n = dot ? (size_t)(dot - s) : strlen(s);
    }
    push_key(L, s, n);
    lua_pushvalue(L, value);
    lua_settable(L, -3);
    lua_settop(L, value - 1);
    return 0;
}

/* Pushes a new reference to t as a userdata; never leaks t if the push fails. */
static void push_tensor_ref(lua_State *L, ml_tensor *t) {
    ml_tensor **ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = NULL;
    luaL_setmetatable(L, ML_TENSOR_MT);
    *ud = ml_tensor_retain(t);
}

/* --- open / close --- */

struct open_data {
    unsigned libs;
    const char *device;
    bool sandboxed;
};

/* --- what a sandboxed runtime's base library may do ---
 * load and the file loaders take text chunks only (a crafted binary chunk can
 * break Lua's memory safety), and loadfile/dofile read through the sandbox. */

/* load(chunk, name, mode, env) with mode "t" (upvalue 1: the original) */
static int safe_load(lua_State *L) {
    int n = lua_gettop(L);
    if (n < 3) lua_settop(L, 3);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* loadfile(path [, mode [, env]]): the resolved path, text only */
static int safe_loadfile(lua_State *L) {
    if (lua_isnoneornil(L, 1)) return luaL_error(L, "loadfile: a sandboxed runtime does not read stdin");
    bool env = lua_gettop(L) >= 3;
    const char *path = ml_lua_check_path(L, 1, ML_ACCESS_READ, "loadfile");
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) { /* as loadfile: env becomes the chunk's first upvalue (_ENV) */
        lua_pushvalue(L, 3);
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    }
    return 1;
}

static int safe_dofile_k(lua_State *L, int status, lua_KContext base) {
    (void)status;
    return lua_gettop(L) - (int)base;
}

/* dofile(path): the resolved path, text only */
static int safe_dofile(lua_State *L) {
    if (lua_isnoneornil(L, 1)) return luaL_error(L, "dofile: a sandboxed runtime does not read stdin");
    lua_settop(L, 1);
    const char *path = ml_lua_check_path(L, 1, ML_ACCESS_READ, "dofile"); /* at 2 */
    if (luaL_loadfilex(L, path, "t") != LUA_OK) return lua_error(L);
    lua_callk(L, 0, LUA_MULTRET, 2, safe_dofile_k);
    return safe_dofile_k(L, LUA_OK, 2);
}

static void install_sandbox(lua_State *L) {
    lua_pushglobaltable(L);
    lua_getfield(L, -1, "load");
    lua_pushcclosure(L, safe_load, 1);
    lua_setfield(L, -2, "load");
    lua_pushcfunction(L, safe_loadfile);
    lua_setfield(L, -2, "loadfile");
    lua_pushcfunction(L, safe_dofile);
    lua_setfield(L, -2, "dofile");
    lua_pop(L, 1);
    /* package.searchpath opens files to see whether they exist */
    if (lua_getglobal(L, LUA_LOADLIBNAME) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_setfield(L, -2, "searchpath");
    }
    lua_pop(L, 1);
    lua_pushglobaltable(L);
    wrap_field(L, -1, "setmetatable", guarded_setmetatable);
    lua_pop(L, 1);
}

/* After moonlight is loaded: the metatables of the userdata a sandboxed script
 * can reach (tensors, the files of ml._sys.open) are hidden behind __metatable,
 * so that it cannot give them a __gc that loops (see guarded_setmetatable). */
static void hide_userdata_metatables(lua_State *L) {
    static const char *const names[] = {ML_TENSOR_MT, LUA_FILEHANDLE};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (luaL_getmetatable(L, names[i]) == LUA_TTABLE) {
            lua_pushstring(L, names[i]);
            lua_setfield(L, -2, "__metatable");
        }
        lua_pop(L, 1);
    }
}

static const struct {
    unsigned flag;
    const char *name;
    lua_CFunction open;
} std_libs[] = {
    {ML_LIB_BASE, LUA_GNAME, luaopen_base},          {ML_LIB_PACKAGE, LUA_LOADLIBNAME, luaopen_package},
    {ML_LIB_COROUTINE, LUA_COLIBNAME, luaopen_coroutine}, {ML_LIB_TABLE, LUA_TABLIBNAME, luaopen_table},
    {ML_LIB_IO, LUA_IOLIBNAME, luaopen_io},           {ML_LIB_OS, LUA_OSLIBNAME, luaopen_os},
    {ML_LIB_STRING, LUA_STRLIBNAME, luaopen_string},  {ML_LIB_MATH, LUA_MATHLIBNAME, luaopen_math},
    {ML_LIB_UTF8, LUA_UTF8LIBNAME, luaopen_utf8},     {ML_LIB_DEBUG, LUA_DBLIBNAME, luaopen_debug},
};

static int args_gc(lua_State *L);

static int f_open(lua_State *L) {
    call *c = call_of(L);
    struct open_data *o = c->data;
    unsigned libs = o->libs | ML_LIB_BASE | ML_LIB_PACKAGE;
    ml_lua_use_generational_gc(L); /* tensors die young: see src/lua/util.c */
    for (size_t i = 0; i < sizeof std_libs / sizeof std_libs[0]; i++) {
        if (!(libs & std_libs[i].flag)) continue;
        luaL_requiref(L, std_libs[i].name, std_libs[i].open, 1);
        lua_pop(L, 1);
    }
    if (!(o->libs & ML_LIB_PACKAGE)) {
        /* package was not asked for: keep require for preloaded modules (moonlight's)
         * only; no loading of Lua files or C libraries from disk */
        lua_getglobal(L, LUA_LOADLIBNAME);
        lua_getfield(L, -1, "searchers");
        lua_createtable(L, 1, 0);
        lua_rawgeti(L, -2, 1); /* the preload searcher */
        lua_rawseti(L, -2, 1);
        lua_setfield(L, -3, "searchers");
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_setfield(L, -2, "loadlib");
        lua_pushliteral(L, "");
        lua_setfield(L, -2, "path");
        lua_pushliteral(L, "");
        lua_setfield(L, -2, "cpath");
        lua_pop(L, 1);
    }
    install_interrupt_wrappers(L);
    if (o->sandboxed) install_sandbox(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_moonlight);
    lua_setfield(L, -2, "moonlight");
    lua_pop(L, 1);
    ml_lua_set_stop_request(L, &c->rt->stop); /* fits poll ml_request_stop's flag */
    lua_getglobal(L, "require");
    lua_pushstring(L, "moonlight");
    lua_call(L, 1, 1);
    if (o->sandboxed) hide_userdata_metatables(L);
    lua_newtable(L);
    lua_pushstring(L, o->device);
    lua_setfield(L, -2, "device");
    lua_setfield(L, -2, "host");
    lua_setglobal(L, "ml");
    /* the metatable of host-call argument boxes */
    lua_newtable(L);
    lua_pushcfunction(L, args_gc);
    lua_setfield(L, -2, "__gc");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ARGS_MT);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RESULTS_KEY);
    return 0;
}

void ml_options_init(ml_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->libs = ML_LIB_ALL;
    opts->device = "auto";
}

ml_runtime *ml_open(const ml_options *opts) {
    ml_options o;
    ml_options_init(&o);
    if (opts) o = *opts;
    if (o.libs == 0) o.libs = ML_LIB_ALL;
    if (o.libs & ~(unsigned)ML_LIB_ALL) {
        ml_api_fail(NULL, ML_ERR_ARG, "ml_open: unknown library flags 0x%x", o.libs & ~(unsigned)ML_LIB_ALL);
        return NULL;
    }
    const bool sandboxed = !(o.libs & (ML_LIB_IO | ML_LIB_OS | ML_LIB_DEBUG));
    if (!sandboxed && ((o.read_dirs && o.read_dirs[0]) || (o.write_dirs && o.write_dirs[0]))) {
        ml_api_fail(NULL, ML_ERR_ARG, "ml_open: read_dirs / write_dirs confine a sandboxed runtime "
                    "(opened without io, os and debug, as ML_LIB_SAFE); these libraries reach any "
                    "file anyway");
        return NULL;
    }
    if (!(o.time_limit >= 0) || isinf(o.time_limit)) {
        ml_api_fail(NULL, ML_ERR_ARG, "ml_open: time_limit must be a number of seconds >= 0 (0: "
                    "none), got %g", o.time_limit);
        return NULL;
    }
    const char *dev = o.device ? o.device : "auto";
    const char *chosen;
    if (strcmp(dev, "cpu") == 0) {
        chosen = "cpu";
    } else if (strcmp(dev, "cuda") == 0 || strcmp(dev, "gpu") == 0) {
        if (!ml_cuda_backend()) {
            ml_api_fail(NULL, ML_ERR_DEVICE, "ml_open: device \"cuda\" asked for, but %s", ml_error());
            ml_error_clear();
            return NULL;
        }
        chosen = "cuda";
    } else if (strcmp(dev, "auto") == 0) {
        chosen = ml_cuda_backend() ? "cuda" : "cpu";
        ml_error_clear();
    } else {
        ml_api_fail(NULL, ML_ERR_ARG, "ml_open: unknown device '%s' (expected \"cpu\", \"cuda\" "
                    "or \"auto\")", dev);
        return NULL;
    }
    ml_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        ml_api_fail(NULL, ML_ERR_MEMORY, "ml_open: out of memory");
        return NULL;
    }
    rt->mem_limit = o.memory_limit;
    rt->time_limit = o.time_limit;
    rt->grad = true;
    ml_generator_seed(&rt->gen, 67280421310721ULL); /* the core's (and torch's) default seed */
    snprintf(rt->device, sizeof rt->device, "%s", chosen);
    atomic_init(&rt->interrupt, ML_INTR_NONE);
    atomic_init(&rt->running, NULL);
    atomic_init(&rt->interrupting, 0);
    if (o.memory_limit && !(rt->budget = ml_budget_new(o.memory_limit, reclaim, rt))) {
        free(rt);
        ml_api_fail(NULL, ML_ERR_MEMORY, "ml_open: out of memory");
        return NULL;
    }
    if (sandboxed && !(rt->sandbox = ml_sandbox_new(o.read_dirs, o.write_dirs))) {
        ml_api_fail(NULL, ML_ERR_ARG, "%s", ml_error());
        ml_budget_release(rt->budget);
        free(rt);
        return NULL;
    }
    rt->guard.budget = rt->budget;
    rt->guard.sandbox = rt->sandbox;
    rt->guard.interrupted = &rt->interrupt;
    rt->guard.owner = rt;
    rt->L = lua_newstate(ml_lua_guard_alloc, &rt->guard);
    if (!rt->L) {
        ml_sandbox_free(rt->sandbox);
        ml_budget_release(rt->budget);
        free(rt);
        ml_api_fail(NULL, ML_ERR_MEMORY, "ml_open: not enough memory for a Lua state%s",
                    o.memory_limit ? " within the memory limit" : "");
        return NULL;
    }
    struct open_data od = {o.libs, rt->device, sandboxed};
    int st = protect(rt, "ml_open", f_open, &od);
    if (st == ML_OK && o.time_limit > 0 && watchdog_start(rt) != 0)
        st = ml_api_fail(rt, ML_ERR_MEMORY, "ml_open: cannot start the time limit's thread");
    if (st != ML_OK) {
        ml_api_fail(NULL, st, "%s", ml_last_error(rt));
        ml_close(rt);
        return NULL;
    }
    ml_api_ok(NULL);
    return rt;
}

void ml_close(ml_runtime *rt) {
    if (!rt) return;
    watchdog_stop(rt);
    /* no collection from inside lua_close (a finalizer making a tensor past the
     * limit); tensors the host still holds keep the budget alive after */
    ml_budget_detach(rt->budget);
    if (rt->L) {
        atomic_store(&rt->interrupt, ML_INTR_NONE); /* finalizers run undisturbed */
        lua_sethook(rt->L, NULL, 0, 0);
        enter(rt);
        /* nor before a large tensor: the collect hook enter installed is set aside */
        ml_collect_hook hook;
        void *hook_ctx;
        ml_set_collect_hook(NULL, NULL, &hook, &hook_ctx);
        lua_close(rt->L);
        ml_set_collect_hook(hook, hook_ctx, NULL, NULL);
        leave(rt);
    }
    ml_budget_release(rt->budget);
    ml_sandbox_free(rt->sandbox);
    free(rt->err);
    free(rt);
}

struct lua_State *ml_lua_state(ml_runtime *rt) {
    if (!rt) {
        ml_api_fail(NULL, ML_ERR_ARG, "ml_lua_state: the runtime is NULL");
        return NULL;
    }
    return state_of(rt);
}

#define CHECK_RT(rt, fname)                                                            \
    do {                                                                               \
        if (!(rt)) return ml_api_fail(NULL, ML_ERR_ARG, "%s: the runtime is NULL", fname); \
    } while (0)

/* --- running --- */

struct run_data {
    const char *source; /* path or code */
    bool is_file;
    int argc;
    const char *const *argv;
};

static int f_run(lua_State *L) {
    call *c = call_of(L);
    struct run_data *r = c->data;
    int st = r->is_file ? luaL_loadfilex(L, r->source, NULL)
                        : luaL_loadbufferx(L, r->source, strlen(r->source), "=(ml_run_string)", NULL);
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        return call_fail(c, st == LUA_ERRFILE ? ML_ERR_IO : st == LUA_ERRMEM ? ML_ERR_MEMORY : ML_ERR_SCRIPT, "%s",
                         msg ? msg : "cannot load the chunk");
    }
    int fn = lua_gettop(L);
    lua_createtable(L, r->argc, 1);
    lua_pushstring(L, r->is_file ? r->source : "(ml_run_string)");
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < r->argc; i++) {
        lua_pushstring(L, r->argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    luaL_checkstack(L, r->argc + LUA_MINSTACK, "too many arguments");
    for (int i = 0; i < r->argc; i++) lua_pushstring(L, r->argv[i]);
    lua_call(L, r->argc, LUA_MULTRET);
    int n = lua_gettop(L) - fn + 1;
    lua_createtable(L, n, 1);
    for (int i = 0; i < n; i++) {
        lua_pushvalue(L, fn + i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RESULTS_KEY);
    c->rt->nresults = n;
    return 0;
}

static int f_clear_results(lua_State *L) {
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RESULTS_KEY);
    return 0;
}

static int run(ml_runtime *rt, const char *fname, struct run_data *r) {
    CHECK_RT(rt, fname);
    if (!r->source) return ml_api_fail(rt, ML_ERR_ARG, "%s: %s is NULL", fname, r->is_file ? "path" : "code");
    if (r->argc < 0 || (r->argc > 0 && !r->argv))
        return ml_api_fail(rt, ML_ERR_ARG, "%s: argc is %d with argv %s", fname, r->argc,
                           r->argv ? "set" : "NULL");
    for (int i = 0; i < r->argc; i++)
        if (!r->argv[i]) return ml_api_fail(rt, ML_ERR_ARG, "%s: argv[%d] is NULL", fname, i);
    rt->nresults = 0;
    protect(rt, fname, f_clear_results, NULL);
    return protect(rt, fname, f_run, r);
}

int ml_run_file(ml_runtime *rt, const char *path, int argc, const char *const *argv) {
    struct run_data r = {path, true, argc, argv};
    return run(rt, "ml_run_file", &r);
}

int ml_run_string(ml_runtime *rt, const char *code, int argc, const char *const *argv) {
    struct run_data r = {code, false, argc, argv};
    return run(rt, "ml_run_string", &r);
}

int ml_result_count(const ml_runtime *rt) { return rt ? rt->nresults : 0; }

/* --- globals --- */

struct set_data {
    const char *path;
    int kind; /* 0 tensor, 1 number, 2 string */
    ml_tensor *t;
    double v;
    const char *s;
};

static int f_set(lua_State *L) {
    call *c = call_of(L);
    struct set_data *d = c->data;
    if (d->kind == 0) push_tensor_ref(L, d->t);
    else if (d->kind == 1) lua_pushnumber(L, d->v);
    else lua_pushstring(L, d->s);
    set_path(L, c, d->path);
    return 0;
}

int ml_set_global_tensor(ml_runtime *rt, const char *name, ml_tensor *t) {
    CHECK_RT(rt, "ml_set_global_tensor");
    if (!t) return ml_api_fail(rt, ML_ERR_ARG, "ml_set_global_tensor: the tensor is NULL");
    struct set_data d = {name, 0, t, 0, NULL};
    return protect(rt, "ml_set_global_tensor", f_set, &d);
}

int ml_set_global_number(ml_runtime *rt, const char *name, double v) {
    CHECK_RT(rt, "ml_set_global_number");
    struct set_data d = {name, 1, NULL, v, NULL};
    return protect(rt, "ml_set_global_number", f_set, &d);
}

int ml_set_global_string(ml_runtime *rt, const char *name, const char *s) {
    CHECK_RT(rt, "ml_set_global_string");
    if (!s) return ml_api_fail(rt, ML_ERR_ARG, "ml_set_global_string: the string is NULL");
    struct set_data d = {name, 2, NULL, 0, s};
    return protect(rt, "ml_set_global_string", f_set, &d);
}

/* The number at idx: a Lua number or a one-element tensor. 0, or -1 with a reason
 * in why (static text or the core's message). */
static int to_number(lua_State *L, int idx, double *out, const char **why) {
    if (lua_type(L, idx) == LUA_TNUMBER) {
        *out = lua_tonumber(L, idx);
        return 0;
    }
    ml_tensor *t = ml_lua_test_tensor(L, idx);
    if (t) {
        if (ml_api_tensor_item(t, out) == 0) return 0;
        *why = ml_error();
        return -1;
    }
    *why = NULL;
    return -1;
}

struct get_data {
    const char *path;
    double *num;
    char *buf;
    size_t size, *len;
    ml_tensor **tensor;
    int (*fn)(const char *, double, void *);
    void *ud;
};

static int not_found_or_type(call *c, lua_State *L, const char *path, const char *want) {
    if (lua_isnil(L, -1)) return call_fail(c, ML_ERR_NOT_FOUND, "'%s' is nil", path);
    return call_fail(c, ML_ERR_TYPE, "'%s' is a %s, not %s", path, luaL_typename(L, -1), want);
}

static int f_get_number(lua_State *L) {
    call *c = call_of(L);
    struct get_data *d = c->data;
    if (push_path(L, c, d->path)) return 0;
    const char *why = NULL;
    if (to_number(L, -1, d->num, &why)) {
        if (why) return call_fail(c, ML_ERR_TYPE, "'%s': %s", d->path, why);
        return not_found_or_type(c, L, d->path, "a number or a one-element tensor");
    }
    return 0;
}

int ml_get_number(ml_runtime *rt, const char *path, double *out) {
    CHECK_RT(rt, "ml_get_number");
    if (!out) return ml_api_fail(rt, ML_ERR_ARG, "ml_get_number: out is NULL");
    struct get_data d = {.path = path, .num = out};
    return protect(rt, "ml_get_number", f_get_number, &d);
}

static int f_get_string(lua_State *L) {
    call *c = call_of(L);
    struct get_data *d = c->data;
    if (push_path(L, c, d->path)) return 0;
    if (lua_type(L, -1) != LUA_TSTRING) return not_found_or_type(c, L, d->path, "a string");
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (d->len) *d->len = n;
    if (n + 1 > d->size)
        return call_fail(c, ML_ERR_ARG, "'%s': a buffer of %zu bytes is too small for %zu + 1",
                         d->path, d->size, n);
    memcpy(d->buf, s, n + 1);
    return 0;
}

int ml_get_string(ml_runtime *rt, const char *path, char *buf, size_t size, size_t *len) {
    CHECK_RT(rt, "ml_get_string");
    if (!buf && size) return ml_api_fail(rt, ML_ERR_ARG, "ml_get_string: buf is NULL");
    struct get_data d = {.path = path, .buf = buf, .size = size, .len = len};
    return protect(rt, "ml_get_string", f_get_string, &d);
}

static int f_get_tensor(lua_State *L) {
    call *c = call_of(L);
    struct get_data *d = c->data;
    if (push_path(L, c, d->path)) return 0;
    ml_tensor *t = ml_lua_test_tensor(L, -1);
    if (!t) return not_found_or_type(c, L, d->path, "a tensor");
    *d->tensor = ml_tensor_retain(t);
    return 0;
}

int ml_get_tensor(ml_runtime *rt, const char *path, ml_tensor **out) {
    CHECK_RT(rt, "ml_get_tensor");
    if (!out) return ml_api_fail(rt, ML_ERR_ARG, "ml_get_tensor: out is NULL");
    *out = NULL;
    struct get_data d = {.path = path, .tensor = out};
    return protect(rt, "ml_get_tensor", f_get_tensor, &d);
}

static int key_cmp(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

static int f_get_numbers(lua_State *L) {
    call *c = call_of(L);
    struct get_data *d = c->data;
    if (push_path(L, c, d->path)) return 0;
    if (!lua_istable(L, -1)) return not_found_or_type(c, L, d->path, "a table");
    int tbl = lua_gettop(L);
    /* the keys, as strings in a Lua array (so they stay alive), then sorted in C */
    lua_newtable(L);
    int keys = tbl + 1;
    lua_Integer nk = 0;
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
        double v;
        const char *why;
        int kt = lua_type(L, -2);
        if ((kt == LUA_TSTRING || (kt == LUA_TNUMBER && lua_isinteger(L, -2))) &&
            to_number(L, -1, &v, &why) == 0) {
            lua_pushvalue(L, -2);
            lua_tostring(L, -1); /* an integer key becomes its decimal string (on the copy) */
            lua_rawseti(L, keys, ++nk);
        }
        lua_pop(L, 1);
    }
    const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(nk ? nk : 1), 0);
    for (lua_Integer i = 0; i < nk; i++) {
        lua_rawgeti(L, keys, i + 1);
        names[i] = lua_tostring(L, -1); /* anchored in keys */
        lua_pop(L, 1);
    }
    qsort(names, (size_t)nk, sizeof *names, key_cmp);
    for (lua_Integer i = 0; i < nk; i++) {
        lua_getfield(L, tbl, names[i]);
        if (lua_isnil(L, -1)) { /* an integer key */
            lua_pop(L, 1);
            lua_pushinteger(L, (lua_Integer)strtoll(names[i], NULL, 10));
            lua_rawget(L, tbl);
        }
        double v = 0;
        const char *why;
        to_number(L, -1, &v, &why);
        lua_pop(L, 1);
        if (d->fn(names[i], v, d->ud)) break;
    }
    return 0;
}

int ml_get_numbers(ml_runtime *rt, const char *path, int (*fn)(const char *, double, void *),
                   void *ud) {
    CHECK_RT(rt, "ml_get_numbers");
    if (!fn) return ml_api_fail(rt, ML_ERR_ARG, "ml_get_numbers: fn is NULL");
    struct get_data d = {.path = path, .fn = fn, .ud = ud};
    return protect(rt, "ml_get_numbers", f_get_numbers, &d);
}

/* --- calling Lua --- */

struct call_data {
    const char *path;
    int nin, nout;
    ml_tensor *const *in;
    ml_tensor **out;
};

static int f_call(lua_State *L) {
    call *c = call_of(L);
    struct call_data *d = c->data;
    if (push_path(L, c, d->path)) return 0;
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        if (luaL_getmetafield(L, -1, "__call") == LUA_TNIL)
            return not_found_or_type(c, L, d->path, "a function");
        lua_pop(L, 1);
    }
    int base = lua_gettop(L);
    luaL_checkstack(L, d->nin + LUA_MINSTACK, "too many arguments");
    for (int i = 0; i < d->nin; i++) push_tensor_ref(L, d->in[i]);
    lua_call(L, d->nin, LUA_MULTRET);
    int n = lua_gettop(L) - base + 1;
    for (int i = 0; i < d->nout; i++) {
        if (i >= n || !ml_lua_test_tensor(L, base + i))
            return call_fail(c, ML_ERR_TYPE, "'%s' returned %s as value %d, expected a tensor "
                             "(%d expected)", d->path, i >= n ? "nothing" : luaL_typename(L, base + i),
                             i + 1, d->nout);
    }
    for (int i = 0; i < d->nout; i++) d->out[i] = ml_tensor_retain(ml_lua_test_tensor(L, base + i));
    return 0;
}

int ml_call_tensors(ml_runtime *rt, const char *path, int nin, ml_tensor *const *in, int nout,
                    ml_tensor **out) {
    CHECK_RT(rt, "ml_call_tensors");
    if (nin < 0 || nout < 0 || (nin && !in) || (nout && !out))
        return ml_api_fail(rt, ML_ERR_ARG, "ml_call_tensors: nin %d / nout %d with in %s, out %s",
                           nin, nout, in ? "set" : "NULL", out ? "set" : "NULL");
    for (int i = 0; i < nin; i++)
        if (!in[i]) return ml_api_fail(rt, ML_ERR_ARG, "ml_call_tensors: input %d is NULL", i);
    for (int i = 0; i < nout; i++) out[i] = NULL;
    struct call_data d = {path, nin, nout, in, out};
    return protect(rt, "ml_call_tensors", f_call, &d);
}

int ml_call_tensor(ml_runtime *rt, const char *path, ml_tensor *in, ml_tensor **out) {
    CHECK_RT(rt, "ml_call_tensor");
    if (!in) return ml_api_fail(rt, ML_ERR_ARG, "ml_call_tensor: the input tensor is NULL");
    if (!out) return ml_api_fail(rt, ML_ERR_ARG, "ml_call_tensor: out is NULL");
    ml_tensor *ins[1] = {in};
    int st = ml_call_tensors(rt, path, 1, ins, 1, out);
    if (st != ML_OK && rt->err && strncmp(rt->err, "ml_call_tensors", 15) == 0) {
        /* name the function the host called */
        char *msg = rt->err;
        rt->err = NULL;
        ml_api_fail(rt, st, "ml_call_tensor%s", msg + 15);
        free(msg);
    }
    return st;
}

/* --- host callbacks --- */

#define ML_MAX_RETURNS 8

struct host_fn {
    ml_host_fn fn;
    void *ud;
    ml_runtime *rt;
    char name[128];
};

struct ml_args {
    lua_State *L;
    int n;
    const char *name;
    int nret;
    struct {
        int kind;
        double v;
        char *s;
        ml_tensor *t;
    } ret[ML_MAX_RETURNS];
    char err[512];
};

static void args_clear(ml_args *a) {
    for (int i = 0; i < a->nret; i++) {
        free(a->ret[i].s);
        a->ret[i].s = NULL;
        ml_tensor_release(a->ret[i].t);
        a->ret[i].t = NULL;
    }
    a->nret = 0;
}

static int args_gc(lua_State *L) {
    ml_args *a = lua_touserdata(L, 1);
    if (a) args_clear(a);
    return 0;
}

static int host_trampoline(lua_State *L) {
    struct host_fn *h = lua_touserdata(L, lua_upvalueindex(1));
    int nargs = lua_gettop(L);
    ml_args *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ARGS_MT);
    lua_setmetatable(L, -2);
    a->L = L;
    a->n = nargs;
    a->name = h->name;
    ml_runtime *rt = h->rt;
    lua_State *was = rt->active;
    rt->active = L;
    int st = h->fn(rt, a, h->ud);
    rt->active = was;
    if (st != ML_OK) {
        args_clear(a);
        if (!a->err[0]) snprintf(a->err, sizeof a->err, "the host function failed (%s)", ml_status_name(st));
        return luaL_error(L, "%s: %s", h->name, a->err);
    }
    luaL_checkstack(L, a->nret, "too many results");
    for (int i = 0; i < a->nret; i++) {
        switch (a->ret[i].kind) {
        case ML_VALUE_NUMBER: lua_pushnumber(L, a->ret[i].v); break;
        case ML_VALUE_BOOLEAN: lua_pushboolean(L, a->ret[i].v != 0); break;
        case ML_VALUE_STRING:
            lua_pushstring(L, a->ret[i].s);
            free(a->ret[i].s);
            a->ret[i].s = NULL;
            break;
        default: /* tensor: the reference moves into the userdata */
            push_tensor_ref(L, a->ret[i].t);
            ml_tensor_release(a->ret[i].t);
            a->ret[i].t = NULL;
        }
    }
    int n = a->nret;
    a->nret = 0;
    return n;
}

struct reg_data {
    const char *name;
    ml_host_fn fn;
    void *ud;
};

static int f_register(lua_State *L) {
    call *c = call_of(L);
    struct reg_data *r = c->data;
    struct host_fn *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->fn = r->fn;
    h->ud = r->ud;
    h->rt = c->rt;
    snprintf(h->name, sizeof h->name, "%s", r->name);
    lua_pushcclosure(L, host_trampoline, 1);
    set_path(L, c, r->name);
    return 0;
}

int ml_register(ml_runtime *rt, const char *name, ml_host_fn fn, void *ud) {
    CHECK_RT(rt, "ml_register");
    if (!fn) return ml_api_fail(rt, ML_ERR_ARG, "ml_register: fn is NULL");
    struct reg_data r = {name, fn, ud};
    return protect(rt, "ml_register", f_register, &r);
}

int ml_args_count(const ml_args *a) { return a ? a->n : 0; }

int ml_arg_kind(const ml_args *a, int i) {
    if (!a || i < 0 || i >= a->n) return ML_VALUE_NONE;
    switch (lua_type(a->L, i + 1)) {
    case LUA_TNIL: return ML_VALUE_NIL;
    case LUA_TBOOLEAN: return ML_VALUE_BOOLEAN;
    case LUA_TNUMBER: return ML_VALUE_NUMBER;
    case LUA_TSTRING: return ML_VALUE_STRING;
    case LUA_TTABLE: return ML_VALUE_TABLE;
    default: return ml_lua_test_tensor(a->L, i + 1) ? ML_VALUE_TENSOR : ML_VALUE_OTHER;
    }
}

static int arg_fail(ml_args *a, int i, const char *want) {
    const char *got = i < 0 || i >= a->n ? "nothing" : luaL_typename(a->L, i + 1);
    snprintf(a->err, sizeof a->err, "argument %d must be %s, got %s", i + 1, want, got);
    return ML_ERR_ARG;
}

int ml_arg_number(ml_args *a, int i, double *out) {
    if (!a || !out) return ML_ERR_ARG;
    if (i < 0 || i >= a->n) return arg_fail(a, i, "a number");
    const char *why = NULL;
    if (to_number(a->L, i + 1, out, &why)) {
        if (why) {
            snprintf(a->err, sizeof a->err, "argument %d: %s", i + 1, why);
            return ML_ERR_ARG;
        }
        return arg_fail(a, i, "a number");
    }
    return ML_OK;
}

int ml_arg_string(ml_args *a, int i, const char **out) {
    if (!a || !out) return ML_ERR_ARG;
    if (i < 0 || i >= a->n || lua_type(a->L, i + 1) != LUA_TSTRING) return arg_fail(a, i, "a string");
    *out = lua_tostring(a->L, i + 1);
    return ML_OK;
}

int ml_arg_tensor(ml_args *a, int i, ml_tensor **out) {
    if (!a || !out) return ML_ERR_ARG;
    ml_tensor *t = i >= 0 && i < a->n ? ml_lua_test_tensor(a->L, i + 1) : NULL;
    if (!t) return arg_fail(a, i, "a tensor");
    *out = t;
    return ML_OK;
}

static int add_ret(ml_args *a, int kind) {
    if (!a) return -1;
    if (a->nret >= ML_MAX_RETURNS) {
        snprintf(a->err, sizeof a->err, "at most %d results", ML_MAX_RETURNS);
        return -1;
    }
    int i = a->nret++;
    a->ret[i].kind = kind;
    a->ret[i].s = NULL;
    a->ret[i].t = NULL;
    return i;
}

int ml_return_number(ml_args *a, double v) {
    int i = add_ret(a, ML_VALUE_NUMBER);
    if (i < 0) return ML_ERR_ARG;
    a->ret[i].v = v;
    return ML_OK;
}

int ml_return_boolean(ml_args *a, int v) {
    int i = add_ret(a, ML_VALUE_BOOLEAN);
    if (i < 0) return ML_ERR_ARG;
    a->ret[i].v = v != 0;
    return ML_OK;
}

int ml_return_string(ml_args *a, const char *s) {
    if (!a) return ML_ERR_ARG;
    if (!s) {
        snprintf(a->err, sizeof a->err, "ml_return_string: the string is NULL");
        return ML_ERR_ARG;
    }
    char *copy = strdup(s);
    if (!copy) {
        snprintf(a->err, sizeof a->err, "ml_return_string: out of memory");
        return ML_ERR_MEMORY;
    }
    int i = add_ret(a, ML_VALUE_STRING);
    if (i < 0) {
        free(copy);
        return ML_ERR_ARG;
    }
    a->ret[i].s = copy;
    return ML_OK;
}

int ml_return_tensor(ml_args *a, ml_tensor *t) {
    if (!a) return ML_ERR_ARG;
    if (!t) {
        snprintf(a->err, sizeof a->err, "ml_return_tensor: the tensor is NULL");
        return ML_ERR_ARG;
    }
    int i = add_ret(a, ML_VALUE_TENSOR);
    if (i < 0) return ML_ERR_ARG;
    a->ret[i].t = ml_tensor_retain(t);
    return ML_OK;
}

int ml_args_error(ml_args *a, const char *fmt, ...) {
    if (!a) return ML_ERR_SCRIPT;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof a->err, fmt ? fmt : "error", ap);
    va_end(ap);
    return ML_ERR_SCRIPT;
}
