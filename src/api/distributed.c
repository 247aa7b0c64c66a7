/* The embedding API's distributed functions (moonlight.h, "distributed
 * training"): thin wrappers over src/dist.h with the API's statuses and errors. */
#include "../dist.h"
#include "../error.h"
#include "internal.h"

_Static_assert((int)ML_REDUCE_SUM == 0 && (int)ML_REDUCE_MIN == 3, "public reduce ops are 0..3");

static int dist_fail(const char *fname) {
    return ml_api_fail(NULL, ML_ERR_DEVICE, "%s: %s", fname, ml_error());
}

int ml_dist_is_available(void) {
    const char *why = NULL;
    if (ml_distributed_available(&why)) {
        ml_api_ok(NULL);
        return 1;
    }
    ml_api_fail(NULL, ML_ERR_DEVICE, "%s", why);
    return 0;
}

int ml_dist_init(void) {
    return ml_distributed_init() ? dist_fail("ml_dist_init") : ml_api_ok(NULL);
}

int ml_dist_is_initialized(void) { return ml_distributed_is_initialized() ? 1 : 0; }

static int number_or_fail(int v, const char *fname) {
    if (v < 0) {
        dist_fail(fname);
        return -1;
    }
    ml_api_ok(NULL);
    return v;
}

int ml_dist_rank(void) { return number_or_fail(ml_distributed_rank(), "ml_dist_rank"); }
int ml_dist_world_size(void) { return number_or_fail(ml_distributed_world_size(), "ml_dist_world_size"); }
int ml_dist_local_rank(void) { return number_or_fail(ml_distributed_local_rank(), "ml_dist_local_rank"); }
int ml_dist_local_world_size(void) {
    return number_or_fail(ml_distributed_local_size(), "ml_dist_local_world_size");
}

int ml_dist_all_reduce(ml_tensor *t, ml_collective_op op) {
    static const ml_dist_op ops[] = {ML_DIST_SUM, ML_DIST_MEAN, ML_DIST_MAX, ML_DIST_MIN};
    if (!t) return ml_api_fail(NULL, ML_ERR_ARG, "ml_dist_all_reduce: t is NULL");
    if ((int)op < 0 || (int)op > 3)
        return ml_api_fail(NULL, ML_ERR_ARG, "ml_dist_all_reduce: unknown op %d (expected ML_REDUCE_SUM, "
                           "ML_REDUCE_MEAN, ML_REDUCE_MAX or ML_REDUCE_MIN)", (int)op);
    return ml_distributed_all_reduce(t, ops[op]) ? dist_fail("ml_dist_all_reduce") : ml_api_ok(NULL);
}

int ml_dist_broadcast(ml_tensor *t, int src) {
    if (!t) return ml_api_fail(NULL, ML_ERR_ARG, "ml_dist_broadcast: t is NULL");
    if (ml_distributed_broadcast(t, src) == 0) return ml_api_ok(NULL);
    int world = ml_distributed_world_size();
    if (world > 0 && (src < 0 || src >= world))
        return ml_api_fail(NULL, ML_ERR_ARG, "ml_dist_broadcast: %s", ml_error());
    return dist_fail("ml_dist_broadcast");
}

int ml_dist_all_gather(ml_tensor *t, ml_tensor **out) {
    if (!t || !out) return ml_api_fail(NULL, ML_ERR_ARG, "ml_dist_all_gather: t or out is NULL");
    *out = ml_distributed_all_gather(t);
    return *out ? ml_api_ok(NULL) : dist_fail("ml_dist_all_gather");
}

int ml_dist_barrier(void) {
    return ml_distributed_barrier() ? dist_fail("ml_dist_barrier") : ml_api_ok(NULL);
}

void ml_dist_abort(int code) { ml_distributed_abort(code); }

int ml_dist_finalize(void) {
    return ml_distributed_finalize(ml_distributed_exit_timeout()) ? dist_fail("ml_dist_finalize")
                                                                  : ml_api_ok(NULL);
}
