/* Stop requests: asking a running Trainer:fit to stop cleanly (issue 17).
 *
 * A host sets `requested` from a signal handler or another thread: the CLI's SIGINT
 * handler (src/cli/main.c), ml_request_stop (src/api/stop.c). fit polls it after
 * every training step (ml._sys.stop_requested), and when it is set finishes the
 * step, saves a checkpoint, flushes its logger and then does what `after` says.
 * The fields are lock-free atomics, so setting them is async-signal-safe and needs
 * no lock between threads.
 *
 * A Lua state without a registered request (moonlight loaded into a stock lua5.4,
 * or into a host that does not use ml_open) gets a process-wide one while a fit
 * runs: fit installs a SIGINT handler for its duration and puts the previous one
 * back when it returns (see src/lua/stop.c). */
#ifndef ML_LUA_STOP_H
#define ML_LUA_STOP_H

#include <lua.h>
#include <stdatomic.h>

/* What fit does once it has stopped cleanly on a request. */
enum {
    ML_STOP_RETURN = 0, /* returns normally, trainer.interrupted true (ml_request_stop) */
    ML_STOP_RAISE = 1,  /* raises an error the host turns into its exit (the CLI: 130) */
};

typedef struct ml_stop_request {
    atomic_int requested; /* 1: stop after the current step */
    atomic_int fits;      /* fits running on the state(s) that poll it */
    atomic_int stopped;   /* set by fit when it stopped because of a request */
    int after;            /* ML_STOP_RETURN or ML_STOP_RAISE */
} ml_stop_request;

/* Registers s as the stop request of L's fits; s must outlive the state (or be
 * unregistered with s NULL). */
void ml_lua_set_stop_request(lua_State *L, ml_stop_request *s);

/* Adds the Lua side (stop_begin, stop_requested, stop_end) to the table at t
 * (ml._sys). */
void ml_lua_open_stop(lua_State *L, int t);

#endif
