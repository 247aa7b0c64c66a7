/* Shared between the files of the embedding API (src/api/): the runtime struct and
 * the error helpers. Not installed. */
#ifndef ML_API_INTERNAL_H
#define ML_API_INTERNAL_H

#include <lua.h>
#include <stdbool.h>

#include "../lua/stop.h"
#include "../ops/creation.h"
#include "../tensor.h"
#include "moonlight.h"

struct ml_runtime {
    lua_State *L;          /* the main state */
    lua_State *active;     /* the state a host callback runs on (a coroutine), or NULL */
    size_t mem_used, mem_limit;
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
