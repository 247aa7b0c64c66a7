/* libmoonlight_nccl.so: the NCCL engine of src/dist_plugin.h, collectives on CUDA
 * device memory, one communicator over the world, one rank per GPU.
 *
 * Streams: the CUDA backend queues every kernel on its one stream (the
 * "compute" stream, handed in by the core). NCCL's calls go on a stream of
 * this plugin: before each, an event recorded on the compute stream makes the
 * NCCL stream wait for the work queued so far (the gradients it reduces), and
 * the compute stream goes on with the rest of backward meanwhile: that is the
 * overlap. join() records an event on the NCCL stream and makes the compute
 * stream wait for it, so the kernels queued after it (the optimizer step) see
 * the reduced values. The host never blocks.
 *
 * The plugin links NCCL and the CUDA runtime itself (statically, as the CUDA
 * plugin does). Its runtime is a second copy in the process; streams and
 * events are the driver's objects of the device's primary context, which both
 * copies share, so a stream of one is a stream of the other (NCCL itself ships
 * its own copy of the runtime and is handed PyTorch's streams the same way). */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <string.h>

#include "dist_plugin.h"

_Static_assert(ML_NCCL_ID_BYTES == NCCL_UNIQUE_ID_BYTES, "NCCL's unique id size changed");

static const ml_dist_host_api *host;
static ncclComm_t comm;
static cudaStream_t nccl_stream;
static cudaEvent_t ready_ev, done_ev;
static char version_str[32];

static int fail_nccl(const char *what, ncclResult_t r) {
    char msg[512];
    snprintf(msg, sizeof msg, "distributed: %s failed: %s (%s)", what, ncclGetErrorString(r),
             ncclGetLastError(comm));
    return host->error_set(msg);
}

static int fail_cuda(const char *what, cudaError_t e) {
    char msg[512];
    (void)cudaGetLastError();
    snprintf(msg, sizeof msg, "distributed: %s failed: %s", what, cudaGetErrorString(e));
    return host->error_set(msg);
}

#define NCCL_TRY(what, call)                          \
    do {                                              \
        ncclResult_t r_ = (call);                     \
        if (r_ != ncclSuccess) return fail_nccl(what, r_); \
    } while (0)
#define CUDA_TRY(what, call)                          \
    do {                                              \
        cudaError_t e_ = (call);                      \
        if (e_ != cudaSuccess) return fail_cuda(what, e_); \
    } while (0)

static int nccl_unique_id(unsigned char id[ML_NCCL_ID_BYTES]) {
    ncclUniqueId u;
    NCCL_TRY("ncclGetUniqueId", ncclGetUniqueId(&u));
    memcpy(id, u.internal, ML_NCCL_ID_BYTES);
    return 0;
}

static int nccl_init(const unsigned char id[ML_NCCL_ID_BYTES], int world, int rank) {
    if (comm) return 0;
    ncclUniqueId u;
    memcpy(u.internal, id, ML_NCCL_ID_BYTES);
    CUDA_TRY("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&nccl_stream, cudaStreamNonBlocking));
    CUDA_TRY("cudaEventCreateWithFlags", cudaEventCreateWithFlags(&ready_ev, cudaEventDisableTiming));
    CUDA_TRY("cudaEventCreateWithFlags", cudaEventCreateWithFlags(&done_ev, cudaEventDisableTiming));
    NCCL_TRY("ncclCommInitRank", ncclCommInitRank(&comm, world, u, rank));
    return 0;
}

static int nccl_type(ml_dtype dt, ncclDataType_t *t) {
    switch (dt) {
    case ML_F32: *t = ncclFloat32; return 0;
    case ML_F64: *t = ncclFloat64; return 0;
    case ML_I64: *t = ncclInt64; return 0;
    case ML_U8: *t = ncclUint8; return 0;
    default: return host->error_set("distributed: NCCL: unknown dtype");
    }
}

/* The NCCL stream waits for what the compute stream has queued so far. */
static int after_compute(void *compute) {
    if (!comm) return host->error_set("distributed: NCCL is not initialised");
    CUDA_TRY("cudaEventRecord", cudaEventRecord(ready_ev, (cudaStream_t)compute));
    CUDA_TRY("cudaStreamWaitEvent", cudaStreamWaitEvent(nccl_stream, ready_ev, 0));
    return 0;
}

static int nccl_all_reduce(void *buf, int64_t count, ml_dtype dt, ml_dist_op op, void *compute) {
    ncclDataType_t t = ncclFloat32; /* set by nccl_type; gcc cannot see it through error_set */
    if (nccl_type(dt, &t) || after_compute(compute)) return -1;
    ncclRedOp_t o = op == ML_DIST_MAX ? ncclMax : op == ML_DIST_MIN ? ncclMin : ncclSum;
    NCCL_TRY("ncclAllReduce", ncclAllReduce(buf, buf, (size_t)count, t, o, comm, nccl_stream));
    return 0;
}

static int nccl_broadcast(void *buf, int64_t bytes, int root, void *compute) {
    if (after_compute(compute)) return -1;
    NCCL_TRY("ncclBroadcast", ncclBroadcast(buf, buf, (size_t)bytes, ncclUint8, root, comm, nccl_stream));
    return 0;
}

static int nccl_all_gather(const void *send, void *recv, int64_t bytes, void *compute) {
    if (after_compute(compute)) return -1;
    NCCL_TRY("ncclAllGather", ncclAllGather(send, recv, (size_t)bytes, ncclUint8, comm, nccl_stream));
    return 0;
}

static int nccl_join(void *compute) {
    if (!comm) return 0;
    CUDA_TRY("cudaEventRecord", cudaEventRecord(done_ev, nccl_stream));
    CUDA_TRY("cudaStreamWaitEvent", cudaStreamWaitEvent((cudaStream_t)compute, done_ev, 0));
    return 0;
}

static void nccl_destroy(void) {
    if (!comm) return;
    cudaStreamSynchronize(nccl_stream);
    ncclCommDestroy(comm);
    comm = NULL;
}

static const char *nccl_version(void) {
    int v = 0;
    if (!version_str[0] && ncclGetVersion(&v) == ncclSuccess)
        snprintf(version_str, sizeof version_str, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
    return version_str;
}

static const ml_nccl_plugin plugin = {
    .abi = ML_NCCL_PLUGIN_ABI,
    .unique_id = nccl_unique_id,
    .init = nccl_init,
    .all_reduce = nccl_all_reduce,
    .broadcast = nccl_broadcast,
    .all_gather = nccl_all_gather,
    .join = nccl_join,
    .destroy = nccl_destroy,
    .version = nccl_version,
};

__attribute__((visibility("default"))) const ml_nccl_plugin *ml_nccl_plugin_entry(const ml_dist_host_api *h) {
    if (!h || h->abi != ML_NCCL_PLUGIN_ABI) return NULL;
    host = h;
    return &plugin;
}
