/* ml_request_stop: the host asks a running Trainer:fit to stop cleanly (issue 17).
 * The runtime's request (rt->stop, registered in the Lua state by ml_open) is
 * polled by fit after every step (src/lua/stop.h); setting it is one atomic store,
 * so this may be called from another thread or a signal handler. */
#include "internal.h"

int ml_request_stop(ml_runtime *rt) {
    /* no ml_api_fail here: it writes the runtime's error string (malloc), which
     * is neither async-signal-safe nor safe while another thread runs rt */
    if (!rt) return ML_ERR_ARG;
    atomic_store(&rt->stop.requested, 1);
    return ML_OK;
}
