/* The seams between the core's distributed layer (src/dist.c) and its engines,
 * two plugins loaded on first use through src/plugin.h:
 *
 *   libmoonlight_mpi.so   MPI (OpenMPI, MPICH, ...): the processes, their ranks,
 *                         collectives on host memory; also the launcher's world
 *                         (`mpirun -np N moonlight train.lua`).
 *   libmoonlight_nccl.so  NCCL: collectives on CUDA device memory, one rank per
 *                         GPU; its unique id travels over MPI.
 *
 * Why plugins: the core links Lua, OpenBLAS, zlib and cJSON only (ARCHITECTURE.md),
 * and a process that never trains across processes never maps libmpi or libnccl.
 * A build without MPI or without NCCL simply lacks the plugin, and the core says
 * how to get it.
 *
 * Both plugins call back into the core through ml_dist_host_api (error messages)
 * and are reached through their tables; each carries an ABI number. Counts are
 * elements; buffers are contiguous. Every function returns 0, or -1 with the
 * error set through host->error_set. */
#ifndef ML_DIST_PLUGIN_H
#define ML_DIST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

/* The reduction ops the engines know ("mean" is a sum divided in the core). */
typedef enum { ML_DIST_SUM, ML_DIST_MAX, ML_DIST_MIN } ml_dist_op;

typedef struct ml_dist_host_api {
    int abi;
    int (*error_set)(const char *message);
} ml_dist_host_api;

#define ML_MPI_PLUGIN_ABI 1
#define ML_MPI_PLUGIN_FILE "libmoonlight_mpi.so"
#define ML_MPI_PLUGIN_ENTRY "ml_mpi_plugin_entry"

/* A non-blocking all-reduce in flight (an MPI_Request inside). */
typedef struct ml_mpi_request ml_mpi_request;

typedef struct ml_mpi_plugin {
    int abi;
    /* MPI_Init_thread (MPI_THREAD_SERIALIZED: collectives come from one thread
     * at a time), a private duplicate of MPI_COMM_WORLD for the collectives, and
     * the node-local communicator (MPI_COMM_TYPE_SHARED) for the local rank.
     * Safe to call again. */
    int (*init)(void);
    int (*rank)(void);
    int (*world_size)(void);
    int (*local_rank)(void);
    int (*local_size)(void);
    /* In place: buf holds this rank's values and receives the reduction. */
    int (*all_reduce)(void *buf, int64_t count, ml_dtype dt, ml_dist_op op);
    /* Starts an in-place all-reduce (MPI_Iallreduce); *req is freed by wait. */
    int (*iall_reduce)(void *buf, int64_t count, ml_dtype dt, ml_dist_op op, ml_mpi_request **req);
    /* Progresses req (MPI_Test); *done becomes 1 once it has completed. */
    int (*test)(ml_mpi_request *req, int *done);
    /* Waits for req and frees it. */
    int (*wait)(ml_mpi_request *req);
    int (*broadcast)(void *buf, int64_t bytes, int root);
    /* recv gets world_size blocks of `bytes`, rank r's at r * bytes. */
    int (*all_gather)(const void *send, void *recv, int64_t bytes);
    int (*barrier)(void);
    /* MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job. Never returns. */
    void (*abort)(int code);
    /* The end of a job that went well: a barrier on a communicator of its own
     * (MPI_Ibarrier, so that it never matches a collective another rank is stuck
     * in), polled for at most timeout_s seconds (<= 0: no limit), then
     * MPI_Finalize. When the others do not arrive in time, one of them failed
     * without aborting: the job is aborted (code 1) rather than left hanging. */
    int (*finalize)(double timeout_s);
    /* "Open MPI v4.1.4, ..." (MPI_Get_library_version, first line). */
    const char *(*library_version)(void);
} ml_mpi_plugin;

typedef const ml_mpi_plugin *(*ml_mpi_plugin_entry_fn)(const ml_dist_host_api *host);

#define ML_NCCL_PLUGIN_ABI 1
#define ML_NCCL_PLUGIN_FILE "libmoonlight_nccl.so"
#define ML_NCCL_PLUGIN_ENTRY "ml_nccl_plugin_entry"
#define ML_NCCL_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */

/* Streams are the CUDA backend's (cudaStream_t, passed as void *): NCCL's work
 * runs on a stream of the plugin's own that waits for the compute stream's work
 * queued so far (an event), so an all-reduce overlaps the kernels queued after
 * it; `join` makes the compute stream wait for everything NCCL was given. */
typedef struct ml_nccl_plugin {
    int abi;
    /* ncclGetUniqueId, on rank 0 (the core broadcasts it over MPI). */
    int (*unique_id)(unsigned char id[ML_NCCL_ID_BYTES]);
    /* ncclCommInitRank on the current CUDA device. */
    int (*init)(const unsigned char id[ML_NCCL_ID_BYTES], int world, int rank);
    int (*all_reduce)(void *dev_buf, int64_t count, ml_dtype dt, ml_dist_op op, void *compute_stream);
    int (*broadcast)(void *dev_buf, int64_t bytes, int root, void *compute_stream);
    int (*all_gather)(const void *dev_send, void *dev_recv, int64_t bytes, void *compute_stream);
    int (*join)(void *compute_stream);
    /* ncclCommDestroy (nothing when not initialised). */
    void (*destroy)(void);
    /* "2.28.9" */
    const char *(*version)(void);
} ml_nccl_plugin;

typedef const ml_nccl_plugin *(*ml_nccl_plugin_entry_fn)(const ml_dist_host_api *host);

#endif
