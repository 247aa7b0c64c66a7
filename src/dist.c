/* The distributed layer (dist.h): the engines' plugins, the world, collectives
 * on tensors. */
#define _GNU_SOURCE
#include "dist.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "cuda_api.h"
#include "error.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "plugin.h"

/* --- the plugins --- */

static int host_error_set(const char *message) { return ml_error_set("%s", message); }
static const ml_dist_host_api host_api = {.abi = ML_MPI_PLUGIN_ABI, .error_set = host_error_set};
static const ml_dist_host_api nccl_host_api = {.abi = ML_NCCL_PLUGIN_ABI, .error_set = host_error_set};

static pthread_once_t mpi_once = PTHREAD_ONCE_INIT;
static const ml_mpi_plugin *mpi;
static char mpi_reason[1400];

static void load_mpi(void) {
#ifdef ML_MPI_PLUGIN_BUILT
    char tried[1000];
    mpi = ml_plugin_load(ML_MPI_PLUGIN_FILE, "MOONLIGHT_MPI_PLUGIN", ML_MPI_PLUGIN_ENTRY, ML_MPI_PLUGIN_ABI,
                         &host_api, tried, sizeof tried);
    if (!mpi)
        snprintf(mpi_reason, sizeof mpi_reason,
                 "distributed: the MPI engine (%s) could not be loaded: %s", ML_MPI_PLUGIN_FILE, tried);
#else
    snprintf(mpi_reason, sizeof mpi_reason,
             "distributed: this build of moonlight has no MPI support (no MPI was found when it was "
             "built): install OpenMPI (Debian: apt-get install libopenmpi-dev openmpi-bin, or run "
             "scripts/deps) and build again (scripts/build), then launch with "
             "`mpirun -np 2 moonlight train.lua`");
#endif
}

bool ml_distributed_available(const char **why) {
    pthread_once(&mpi_once, load_mpi);
    if (!mpi && why) *why = mpi_reason;
    return mpi != NULL;
}

bool ml_distributed_launched(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return true;
    return false;
}

static const ml_nccl_plugin *nccl;
static bool nccl_tried, nccl_up;
static char nccl_reason[1400];

/* Set once MPI is up; rank and sizes are then fixed for the process. */
static bool initialized;
static int rank_, world_ = 1, local_rank_, local_size_ = 1;
static void at_exit(void);

int ml_distributed_init(void) {
    if (initialized) return 0;
    const char *why;
    if (!ml_distributed_available(&why)) return ml_error_set("%s", why);
    if (mpi->init() != 0) return -1;
    rank_ = mpi->rank();
    world_ = mpi->world_size();
    local_rank_ = mpi->local_rank();
    local_size_ = mpi->local_size();
    initialized = true;
    /* a host that never calls ml_distributed_finalize (a stock lua5.4) still ends the
     * job in order; the CLI calls it first, with what it knows of the outcome */
    atexit(at_exit);
    return 0;
}

int ml_distributed_ensure(void) { return initialized || !ml_distributed_launched() ? 0 : ml_distributed_init(); }
bool ml_distributed_is_initialized(void) { return initialized; }

int ml_distributed_rank(void) { return ml_distributed_ensure() ? -1 : rank_; }
int ml_distributed_world_size(void) { return ml_distributed_ensure() ? -1 : world_; }
int ml_distributed_local_rank(void) { return ml_distributed_ensure() ? -1 : local_rank_; }
int ml_distributed_local_size(void) { return ml_distributed_ensure() ? -1 : local_size_; }

double ml_distributed_exit_timeout(void) {
    const char *s = getenv("MOONLIGHT_DIST_EXIT_TIMEOUT");
    if (s && *s) {
        char *end;
        double v = strtod(s, &end);
        if (*end == '\0') return v;
    }
    return 600;
}

static bool finalized;

int ml_distributed_finalize(double timeout_s) {
    if (!initialized || finalized) return 0;
    finalized = true;
    if (nccl_up) nccl->destroy();
    return mpi->finalize(timeout_s);
}

static void at_exit(void) {
    if (!finalized) ml_distributed_finalize(ml_distributed_exit_timeout());
}

void ml_distributed_abort(int code) {
    if (initialized && !finalized) mpi->abort(code);
    fflush(stdout);
    fflush(stderr);
    _Exit(code);
}

const char *ml_distributed_mpi_version(void) {
    const char *why;
    if (!ml_distributed_available(&why)) {
        ml_error_set("%s", why);
        return NULL;
    }
    return mpi->library_version();
}

/* --- NCCL, for CUDA tensors --- */


/* Starts NCCL on first use by a collective on CUDA memory (every rank reaches
 * that point together: it is a collective). True when NCCL carries CUDA
 * tensors; false when they go through host memory and MPI, with nccl_reason
 * saying why. */
static bool use_nccl(void) {
    if (nccl_tried) return nccl_up;
    nccl_tried = true;
    const char *engine = getenv("MOONLIGHT_DIST_CUDA_ENGINE");
    if (engine && strcmp(engine, "mpi") == 0) {
        snprintf(nccl_reason, sizeof nccl_reason, "MOONLIGHT_DIST_CUDA_ENGINE=mpi");
        return false;
    }
    if (world_ == 1) {
        snprintf(nccl_reason, sizeof nccl_reason, "a world of one");
        return false;
    }
    /* NCCL refuses two ranks of one communicator on one GPU ("Duplicate GPU
     * detected"); every rank of every node must agree, so the decision is
     * reduced over the world */
    int devices = ml_cuda_device_count();
    int64_t ok = devices >= local_size_ ? 1 : 0;
    char tried[1000] = "";
#ifdef ML_NCCL_PLUGIN_BUILT
    if (ok) {
        nccl = ml_plugin_load(ML_NCCL_PLUGIN_FILE, "MOONLIGHT_NCCL_PLUGIN", ML_NCCL_PLUGIN_ENTRY,
                              ML_NCCL_PLUGIN_ABI, &nccl_host_api, tried, sizeof tried);
        if (!nccl) ok = 0;
    }
#else
    (void)nccl_host_api;
    snprintf(tried, sizeof tried, "this build has no NCCL engine (nccl.h was not found with the CUDA toolkit)");
    ok = 0;
#endif
    if (mpi->all_reduce(&ok, 1, ML_I64, ML_DIST_MIN) != 0) return false;
    if (!ok) {
        if (tried[0])
            snprintf(nccl_reason, sizeof nccl_reason, "%s", tried);
        else
            snprintf(nccl_reason, sizeof nccl_reason,
                     "%d ranks share %d GPU(s) on a node, and NCCL needs a GPU per rank", local_size_, devices);
        if (rank_ == 0)
            fprintf(stderr, "distributed: collectives on CUDA tensors go through host memory and MPI "
                            "(%s)\n", nccl_reason);
        return false;
    }
    unsigned char id[ML_NCCL_ID_BYTES] = {0};
    int64_t rc = rank_ == 0 ? nccl->unique_id(id) : 0;
    if (mpi->broadcast(&rc, sizeof rc, 0) != 0) return false;
    if (rc != 0) {
        if (rank_ != 0) ml_error_set("distributed: rank 0 could not make NCCL's unique id");
        return false;
    }
    if (mpi->broadcast(id, sizeof id, 0) != 0 || nccl->init(id, world_, rank_) != 0) return false;
    nccl_up = true;
    return true;
}

const char *ml_distributed_engine(ml_device dev) {
    if (dev == ML_CUDA) return nccl_up || (!nccl_tried && world_ > 1) ? "nccl" : "mpi";
    return "mpi";
}

/* --- collectives on tensors --- */

/* A contiguous tensor holding t's values on `dev` (t itself when it is one),
 * without autograd. */
static ml_tensor *contiguous_on(ml_tensor *t, ml_device dev) {
    bool grad = ml_grad_enabled();
    ml_set_grad_enabled(false);
    ml_tensor *c = t->storage->device == dev ? ml_as_contiguous(t) : ml_to_device(t, dev);
    if (c && c != t && !ml_is_contiguous(c)) {
        ml_tensor *cc = ml_contiguous_copy(c);
        ml_tensor_release(c);
        c = cc;
    }
    ml_set_grad_enabled(grad);
    return c;
}

/* Copies src's values back into t when src is a copy; a host copy of a device
 * tensor (collectives through MPI) goes back to t's device first. */
static int copy_back(ml_tensor *t, ml_tensor *src) {
    if (src == t) return 0;
    if (src->storage->device == t->storage->device) return ml_copy_(t, src);
    ml_tensor *moved = ml_to_device(src, t->storage->device);
    int rc = moved ? ml_copy_(t, moved) : -1;
    ml_tensor_release(moved);
    return rc;
}

static int check_op(const char *fname, ml_dist_op op, ml_dtype dt) {
    if (op != ML_DIST_SUM && op != ML_DIST_MAX && op != ML_DIST_MIN && op != ML_DIST_MEAN)
        return ml_error_set("%s: unknown op %d (expected sum, mean, max or min)", fname, (int)op);
    (void)dt;
    return 0;
}

/* The MPI path: reduce a host copy (or t itself), then copy back. */
static int all_reduce_host(ml_tensor *t, ml_dist_op op) {
    ml_tensor *c = contiguous_on(t, ML_CPU);
    if (!c) return -1;
    int rc = mpi->all_reduce(ml_data(c), ml_numel(c), c->dtype, op == ML_DIST_MEAN ? ML_DIST_SUM : op);
    if (rc == 0) rc = copy_back(t, c);
    ml_tensor_release(c);
    return rc;
}

static int all_reduce_nccl(ml_tensor *t, ml_dist_op op) {
    ml_tensor *c = contiguous_on(t, ML_CUDA);
    if (!c) return -1;
    void *stream = ml_cuda_stream();
    int rc = nccl->all_reduce(ml_data(c), ml_numel(c), c->dtype, op == ML_DIST_MEAN ? ML_DIST_SUM : op,
                              stream);
    if (rc == 0) rc = nccl->join(stream);
    if (rc == 0) rc = copy_back(t, c);
    ml_tensor_release(c);
    return rc;
}

/* t /= world in t's dtype (the mean's second half) */
static int divide_by_world(ml_tensor *t) {
    bool grad = ml_grad_enabled();
    ml_set_grad_enabled(false);
    ml_tensor *q;
    if (ml_dtype_is_float(t->dtype)) {
        q = ml_mul_scalar(t, 1.0 / world_);
    } else {
        ml_tensor *w = ml_scalar((double)world_, t->dtype, t->storage->device);
        q = w ? ml_binary(ML_BIN_FLOOR_DIVIDE, t, w) : NULL;
        ml_tensor_release(w);
    }
    int rc = q ? ml_copy_(t, q) : -1;
    ml_tensor_release(q);
    ml_set_grad_enabled(grad);
    return rc;
}

int ml_distributed_all_reduce(ml_tensor *t, ml_dist_op op) {
    if (check_op("all_reduce", op, t->dtype)) return -1;
    if (ml_distributed_ensure()) return -1;
    if (!initialized || world_ == 1) return 0;
    int rc = t->storage->device == ML_CUDA && use_nccl() ? all_reduce_nccl(t, op) : all_reduce_host(t, op);
    if (rc == 0 && op == ML_DIST_MEAN) rc = divide_by_world(t);
    return rc;
}

int ml_distributed_broadcast(ml_tensor *t, int src) {
    if (ml_distributed_ensure()) return -1;
    if (src < 0 || src >= world_)
        return ml_error_set("broadcast: src must be a rank between 0 and %d, got %d", world_ - 1, src);
    if (!initialized || world_ == 1) return 0;
    bool dev = t->storage->device == ML_CUDA && use_nccl();
    ml_tensor *c = contiguous_on(t, dev ? ML_CUDA : ML_CPU);
    if (!c) return -1;
    int64_t bytes = ml_numel(c) * (int64_t)ml_dtype_size(c->dtype);
    int rc;
    if (dev) {
        void *stream = ml_cuda_stream();
        rc = nccl->broadcast(ml_data(c), bytes, src, stream);
        if (rc == 0) rc = nccl->join(stream);
    } else {
        rc = mpi->broadcast(ml_data(c), bytes, src);
    }
    if (rc == 0) rc = copy_back(t, c);
    ml_tensor_release(c);
    return rc;
}

ml_tensor *ml_distributed_all_gather(ml_tensor *t) {
    if (ml_distributed_ensure()) return NULL;
    if (t->ndim >= ML_MAX_DIMS) {
        ml_error_set("all_gather: a tensor of %d dims (at most %d)", t->ndim, ML_MAX_DIMS - 1);
        return NULL;
    }
    int64_t shape[ML_MAX_DIMS];
    shape[0] = world_;
    memcpy(shape + 1, t->shape, (size_t)t->ndim * sizeof *shape);
    ml_device device = t->storage->device;
    if (!initialized || world_ == 1) {
        ml_tensor *c = ml_contiguous_copy(t);
        if (!c) return NULL;
        int64_t strides[ML_MAX_DIMS];
        ml_contiguous_strides(t->ndim + 1, shape, strides);
        ml_tensor *v = ml_view_raw(c, t->ndim + 1, shape, strides, c->offset);
        ml_tensor_release(c);
        return v;
    }
    /* the shapes must agree, or ranks would read past each other's blocks */
    int64_t mine[ML_MAX_DIMS + 2] = {t->ndim, t->dtype};
    memcpy(mine + 2, t->shape, (size_t)t->ndim * sizeof *mine);
    int64_t lo[ML_MAX_DIMS + 2], hi[ML_MAX_DIMS + 2];
    memcpy(lo, mine, sizeof mine);
    memcpy(hi, mine, sizeof mine);
    if (mpi->all_reduce(lo, ML_MAX_DIMS + 2, ML_I64, ML_DIST_MIN) || mpi->all_reduce(hi, ML_MAX_DIMS + 2, ML_I64, ML_DIST_MAX))
        return NULL;
    if (memcmp(lo, hi, sizeof lo) != 0) {
        char sh[ML_SHAPE_STR_MAX];
        ml_error_set("all_gather: every rank must give a tensor of the same shape and dtype (this rank: %s %s)",
                     ml_dtype_name(t->dtype), ml_shape_str(t->ndim, t->shape, sh, sizeof sh));
        return NULL;
    }
    bool dev = device == ML_CUDA && use_nccl();
    ml_device where = dev ? ML_CUDA : ML_CPU;
    ml_tensor *c = contiguous_on(t, where);
    if (!c) return NULL;
    ml_tensor *out = ml_tensor_empty(t->dtype, where, t->ndim + 1, shape);
    int rc = out ? 0 : -1;
    int64_t bytes = ml_numel(c) * (int64_t)ml_dtype_size(c->dtype);
    if (rc == 0 && dev) {
        void *stream = ml_cuda_stream();
        rc = nccl->all_gather(ml_data(c), ml_data(out), bytes, stream);
        if (rc == 0) rc = nccl->join(stream);
    } else if (rc == 0) {
        rc = mpi->all_gather(ml_data(c), ml_data(out), bytes);
    }
    ml_tensor_release(c);
    if (rc == 0 && where != device) {
        ml_tensor *moved = contiguous_on(out, device);
        ml_tensor_release(out);
        out = moved;
    }
    if (rc != 0) {
        ml_tensor_release(out);
        return NULL;
    }
    return out;
}

int ml_distributed_barrier(void) {
    if (ml_distributed_ensure()) return -1;
    if (!initialized || world_ == 1) return 0;
    return mpi->barrier();
}

/* --- what the gradient reducer (ddp.c) needs of the engines --- */

const ml_mpi_plugin *ml_distributed_mpi_engine(void) { return initialized ? mpi : NULL; }
const ml_nccl_plugin *ml_distributed_nccl_engine(void) { return initialized && use_nccl() ? nccl : NULL; }
