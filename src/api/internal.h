/* Shared between the files of the embedding API (src/api/): the runtime struct and
 * the error helpers. Not installed. */
#ifndef ML_API_INTERNAL_H
#define ML_API_INTERNAL_H

#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "../lua/stop.h"
#include "../lua/binding.h"
#include "../ops/creation.h"
#include "../sandbox.h"
#include "../tensor.h"
#include "moonlight.h"

/* What stops a running script (ml_runtime.interrupt) */
enum { ML_INTR_NONE = 0, ML_INTR_HOST = 1, ML_INTR_TIME = 2 };

struct ml_runtime {
    lua_State *L;          /* the main state */
    lua_State *active;     /* the state a host callback runs on (a coroutine), or NULL */
    ml_lua_guard guard;    /* the state allocator's ud: budget, sandbox, interrupt flag */
    size_t mem_limit;
    ml_budget *budget;     /* memory_limit over the Lua heap and tensors; NULL without one */
    ml_budget *saved_budget;
    ml_collect_hook saved_hook;  /* the thread's collect hook before enter (tensor.h) */
    void *saved_hook_ctx;
    unsigned refusals;     /* the budget's refusals when the outermost call began */
    ml_sandbox *sandbox;   /* NULL: file access unconfined */
    /* Interrupts (ml_interrupt, the time limit): the flag, the coroutine running
     * now (set by the coroutine wrappers; hooked too), and how many ml_interrupt
     * calls are between reading `running` and hooking it (a wrapper waits for
     * them before the coroutine may be collected). */
    _Atomic int interrupt;
    _Atomic(lua_State *) running;
    _Atomic int interrupting;
    double time_limit;     /* seconds per outermost call; 0: none */
    bool watchdog;         /* the time limit's thread runs */
    pthread_t wd_thread;
    pthread_mutex_t wd_mu;
    pthread_cond_t wd_cv;
    double wd_deadline;    /* monotonic seconds; 0: no call is timed */
    bool wd_quit;
    int status;            /* of the last call */
    char *err;             /* its message (C heap), NULL when none */
    int nresults;          /* values returned by the last run */
    int depth;             /* nesting of calls into Lua (host callbacks re-enter) */
    ml_generator gen, saved_gen;
    bool grad, saved_grad;
    char device[8];
    ml_stop_request stop;  /* ml_request_stop (stop.c): polled by Trainer:fit */
};

/* Sets the runtime's (rt non-NULL) or this thread's (rt NULL) error; returns status. */
int ml_api_fail(ml_runtime *rt, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Clears the error of rt (or of this thread) and returns ML_OK. */
int ml_api_ok(ml_runtime *rt);

/* The value of a one-element tensor of any dtype/device; -1 with ml_error set. */
int ml_api_tensor_item(const ml_tensor *t, double *out);

#endif
