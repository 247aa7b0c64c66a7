/* Distributed training: processes, ranks and collectives (issue 19).
 *
 * One process per device, started by an MPI launcher (`mpirun -np N moonlight
 * train.lua`, `srun --mpi=pmix ...`). The processes are MPI's: rank and world size
 * come from MPI_COMM_WORLD, the local rank from the ranks sharing this node's
 * memory (MPI_COMM_TYPE_SHARED). Collectives on host tensors go through MPI; on
 * CUDA tensors through NCCL when every rank of the node has a GPU of its own,
 * else through host memory and MPI (NCCL refuses two ranks on one GPU). Both
 * engines are plugins (src/dist_plugin.h), loaded on first use.
 *
 * A process not started by a launcher is a world of one without MPI: rank 0,
 * world size 1, every collective leaves its tensor as it is (all_gather gives a
 * copy), so one script runs alone or under mpirun. ml_distributed_init() starts MPI
 * there too (a singleton world).
 *
 * Collectives are matched by order: every rank must call the same collectives
 * in the same order, from one thread (MPI_THREAD_SERIALIZED). They block until
 * this rank's part is done (on CUDA: until the work is queued on the backend's
 * stream, as torch.distributed does). Functions return 0 (or a tensor), or -1
 * (NULL) with ml_error set. */
#ifndef ML_DIST_H
#define ML_DIST_H

#include <stdbool.h>

#include "dist_plugin.h"
#include "tensor.h"

/* The reductions of all_reduce: ML_DIST_SUM, ML_DIST_MAX, ML_DIST_MIN
 * (dist_plugin.h) and the mean, a sum divided by the world size in the tensor's
 * dtype (integers: truncated). */
#define ML_DIST_MEAN ((ml_dist_op)3)

/* Whether this build can run distributed: the MPI plugin loads. When not,
 * *why (if why is not NULL) says why and how to build with it. */
bool ml_distributed_available(const char **why);
/* Whether an MPI launcher started this process (OMPI_COMM_WORLD_SIZE, PMIX_RANK,
 * PMI_RANK, PMI_SIZE in the environment). */
bool ml_distributed_launched(void);
/* Starts MPI (once; later calls do nothing). Fails when the plugin is missing. */
int ml_distributed_init(void);
/* ml_distributed_init() when a launcher started this process; else nothing. What every
 * function below calls first. */
int ml_distributed_ensure(void);
bool ml_distributed_is_initialized(void);
/* This process's rank (0-based), the number of processes, its rank among the
 * processes of its node and their number; 0, 1, 0, 1 in a world of one. -1 with
 * the error set when MPI fails to start. */
int ml_distributed_rank(void);
int ml_distributed_world_size(void);
int ml_distributed_local_rank(void);
int ml_distributed_local_size(void);

/* In place over every rank's t (any dtype, any device, any layout). */
int ml_distributed_all_reduce(ml_tensor *t, ml_dist_op op);
/* t on every rank becomes src's t (src: a rank, 0-based). */
int ml_distributed_broadcast(ml_tensor *t, int src);
/* A new tensor [world_size, ...t's shape] on t's device: rank r's t at index r.
 * Every rank's t must have the same shape and dtype. */
ml_tensor *ml_distributed_all_gather(ml_tensor *t);
int ml_distributed_barrier(void);
/* Ends every process of the job with `code` (MPI_Abort); a plain exit in a world
 * of one. Never returns. */
void ml_distributed_abort(int code) __attribute__((noreturn));
/* The orderly end: waits at most timeout_s seconds (<= 0: no limit) for every
 * rank to get there, then MPI_Finalize; aborts the job when they do not come
 * (see ml_mpi_plugin.finalize). Nothing when MPI was never started. */
int ml_distributed_finalize(double timeout_s);
/* MOONLIGHT_DIST_EXIT_TIMEOUT, or 600 s: how long the end of a job that did not
 * say how it ended waits for the other ranks (src/dist.c, at exit). */
double ml_distributed_exit_timeout(void);
/* "mpi" or "nccl": the engine collectives on a tensor of this device use (after
 * the first one on CUDA; before, what it will try). */
const char *ml_distributed_engine(ml_device dev);
/* MPI's library version ("Open MPI v4.1.4"), NULL with the error set without MPI. */
const char *ml_distributed_mpi_version(void);

/* --- gradient reduction for data-parallel training (src/ddp.c) --- */

/* Averages the gradients of a set of parameters across ranks during backward,
 * as PyTorch's DistributedDataParallel: the parameters are cut into buckets (in
 * reverse order, since backward reaches the last layers first; the first bucket
 * holds at most 1 MiB, the others bucket_bytes), a bucket is all-reduced
 * without blocking as soon as backward has finished every gradient in it, and
 * ml_ddp_finish waits for all of them and writes the averages into the
 * gradients. Buckets start in order on every rank (collectives match by order). */
typedef struct ml_ddp ml_ddp;

/* params: borrowed for the call, retained by the reducer. Returns NULL with the
 * error set (no parameter requires grad, mixed devices, memory). */
ml_ddp *ml_ddp_new(int n, ml_tensor *const *params, size_t bucket_bytes);
void ml_ddp_free(ml_ddp *d);
/* Arms the reducer for the next backward on this thread (ml_backward calls it
 * back for each finished leaf gradient: ml_autograd_set_leaf_hook). */
int ml_ddp_prepare(ml_ddp *d);
/* Disarms it, all-reduces the buckets backward did not complete (a parameter
 * without a gradient counts as zeros), waits for every bucket and replaces each
 * parameter's gradient by the average over ranks (a parameter without one gets
 * one). Call it after backward even when backward failed (it then only cleans
 * up and returns 0, leaving the gradients alone). */
int ml_ddp_finish(ml_ddp *d, bool backward_ok);

typedef struct ml_ddp_stats {
    int buckets;
    int64_t elements;          /* gradient elements per step */
    int64_t steps;             /* finished reductions */
    int64_t started_early;     /* buckets started inside backward, over all steps */
    double wait_s;             /* time ml_ddp_finish spent waiting, over all steps */
} ml_ddp_stats;
void ml_ddp_get_stats(const ml_ddp *d, ml_ddp_stats *out);

/* The engines, for ddp.c: MPI once started (else NULL); NCCL when CUDA tensors
 * go through it (starting it on first use: a collective), else NULL. */
const ml_mpi_plugin *ml_distributed_mpi_engine(void);
const ml_nccl_plugin *ml_distributed_nccl_engine(void);

#endif
