/* libmoonlight_mpi.so: the MPI engine of src/dist_plugin.h.
 *
 * Everything runs on two duplicates of MPI_COMM_WORLD made at init: `comm` for
 * the collectives the core asks for, and `exit_comm` for the barrier of
 * finalize. A rank that failed without aborting leaves the others blocked in a
 * collective on `comm`; a barrier on the same communicator would be matched
 * against that collective (collectives match by order, not by kind), so the end
 * of the job has a communicator of its own.
 *
 * MPI counts are ints: larger buffers go in pieces of at most INT_MAX elements
 * (the blocking calls; a non-blocking all-reduce is one bucket, far smaller). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist_plugin.h"

static const ml_dist_host_api *host;
static MPI_Comm comm = MPI_COMM_NULL, exit_comm = MPI_COMM_NULL;
static int my_rank, my_size = 1, my_local_rank, my_local_size = 1;
static char version[MPI_MAX_LIBRARY_VERSION_STRING];

struct ml_mpi_request {
    MPI_Request req;
};

/* Sets the core's error from an MPI error code; returns -1. */
static int fail(const char *what, int code) {
    char msg[MPI_MAX_ERROR_STRING + 128], text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", code);
    snprintf(msg, sizeof msg, "distributed: %s failed: %s", what, text);
    return host->error_set(msg);
}

static int mpi_init(void) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) return host->error_set("distributed: MPI was already finalized in this process");
    if (!inited) {
        /* Open MPI spins while it waits; with more processes than free cores (a
         * shared machine, hyperthreads, ranks beside other work) the peer it waits
         * for then gets no core. Yielding in the wait costs a system call where
         * nothing else wants the core and saved 2-4x of the step here (load 9 on
         * 2 cores). The user's own setting wins. */
        setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) return fail("MPI_Init_thread", rc);
    }
    if (comm != MPI_COMM_NULL) return 0;
    /* errors come back as codes on our communicators; MPI_COMM_WORLD keeps the
     * default (fatal), so a broken job still ends */
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_dup(MPI_COMM_WORLD, &exit_comm);
    if (rc != MPI_SUCCESS) return fail("MPI_Comm_dup", rc);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(exit_comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &my_rank);
    MPI_Comm_size(comm, &my_size);
    MPI_Comm local;
    rc = MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, my_rank, MPI_INFO_NULL, &local);
    if (rc != MPI_SUCCESS) return fail("MPI_Comm_split_type", rc);
    MPI_Comm_rank(local, &my_local_rank);
    MPI_Comm_size(local, &my_local_size);
    MPI_Comm_free(&local);
    return 0;
}

static int mpi_rank(void) { return my_rank; }
static int mpi_world_size(void) { return my_size; }
static int mpi_local_rank(void) { return my_local_rank; }
static int mpi_local_size(void) { return my_local_size; }

static MPI_Datatype mpi_type(ml_dtype dt) {
    switch (dt) {
    case ML_F32: return MPI_FLOAT;
    case ML_F64: return MPI_DOUBLE;
    case ML_I64: return MPI_INT64_T;
    case ML_U8: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
    }
}

/* (the core's ml_dtype_size is not visible to a plugin) */
static size_t esize(ml_dtype dt) { return dt == ML_F64 || dt == ML_I64 ? 8 : dt == ML_F32 ? 4 : 1; }

static MPI_Op mpi_op(ml_dist_op op) {
    return op == ML_DIST_MAX ? MPI_MAX : op == ML_DIST_MIN ? MPI_MIN : MPI_SUM;
}

static int mpi_all_reduce(void *buf, int64_t count, ml_dtype dt, ml_dist_op op) {
    MPI_Datatype t = mpi_type(dt);
    if (t == MPI_DATATYPE_NULL) return host->error_set("distributed: all_reduce: unknown dtype");
    size_t es = esize(dt);
    for (int64_t done = 0; done < count;) {
        int n = count - done > INT_MAX ? INT_MAX : (int)(count - done);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)done * es, n, t, mpi_op(op), comm);
        if (rc != MPI_SUCCESS) return fail("MPI_Allreduce", rc);
        done += n;
    }
    return 0;
}

static int mpi_iall_reduce(void *buf, int64_t count, ml_dtype dt, ml_dist_op op, ml_mpi_request **out) {
    MPI_Datatype t = mpi_type(dt);
    if (t == MPI_DATATYPE_NULL) return host->error_set("distributed: all_reduce: unknown dtype");
    if (count > INT_MAX) return host->error_set("distributed: a gradient bucket over 2^31 elements");
    ml_mpi_request *r = malloc(sizeof *r);
    if (!r) return host->error_set("distributed: out of host memory");
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, t, mpi_op(op), comm, &r->req);
    if (rc != MPI_SUCCESS) {
        free(r);
        return fail("MPI_Iallreduce", rc);
    }
    *out = r;
    return 0;
}

static int mpi_test(ml_mpi_request *r, int *done) {
    int rc = MPI_Test(&r->req, done, MPI_STATUS_IGNORE);
    return rc == MPI_SUCCESS ? 0 : fail("MPI_Test", rc);
}

static int mpi_wait(ml_mpi_request *r) {
    int rc = MPI_Wait(&r->req, MPI_STATUS_IGNORE);
    free(r);
    return rc == MPI_SUCCESS ? 0 : fail("MPI_Wait", rc);
}

static int mpi_broadcast(void *buf, int64_t bytes, int root) {
    for (int64_t done = 0; done < bytes;) {
        int n = bytes - done > INT_MAX ? INT_MAX : (int)(bytes - done);
        int rc = MPI_Bcast((char *)buf + done, n, MPI_BYTE, root, comm);
        if (rc != MPI_SUCCESS) return fail("MPI_Bcast", rc);
        done += n;
    }
    return 0;
}

static int mpi_all_gather(const void *send, void *recv, int64_t bytes) {
    if (bytes > INT_MAX) return host->error_set("distributed: all_gather of more than 2 GiB per rank");
    int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, comm);
    return rc == MPI_SUCCESS ? 0 : fail("MPI_Allgather", rc);
}

static int mpi_barrier(void) {
    int rc = MPI_Barrier(comm);
    return rc == MPI_SUCCESS ? 0 : fail("MPI_Barrier", rc);
}

static void mpi_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* MPI_Abort does not return; this is for the compiler */
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mpi_finalize(double timeout_s) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized) return 0;
    if (exit_comm != MPI_COMM_NULL && my_size > 1) {
        MPI_Request req;
        int done = 0;
        if (MPI_Ibarrier(exit_comm, &req) != MPI_SUCCESS) mpi_abort(1);
        double start = now();
        struct timespec nap = {0, 1000000}; /* 1 ms: the others may be busy for minutes */
        while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) {
            if (timeout_s > 0 && now() - start > timeout_s) {
                fprintf(stderr, "moonlight (rank %d): the other ranks did not reach the end of the job "
                                "within %g s (one of them failed?): aborting the job\n", my_rank, timeout_s);
                mpi_abort(1);
            }
            nanosleep(&nap, NULL);
        }
    }
    if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
    if (exit_comm != MPI_COMM_NULL) MPI_Comm_free(&exit_comm);
    int rc = MPI_Finalize();
    return rc == MPI_SUCCESS ? 0 : fail("MPI_Finalize", rc);
}

static const char *mpi_library_version(void) {
    if (!version[0]) {
        int len = 0;
        MPI_Get_library_version(version, &len);
        char *nl = strchr(version, '\n');
        if (nl) *nl = '\0';
        char *comma = strchr(version, ',');
        if (comma) *comma = '\0';
    }
    return version;
}

static const ml_mpi_plugin plugin = {
    .abi = ML_MPI_PLUGIN_ABI,
    .init = mpi_init,
    .rank = mpi_rank,
    .world_size = mpi_world_size,
    .local_rank = mpi_local_rank,
    .local_size = mpi_local_size,
    .all_reduce = mpi_all_reduce,
    .iall_reduce = mpi_iall_reduce,
    .test = mpi_test,
    .wait = mpi_wait,
    .broadcast = mpi_broadcast,
    .all_gather = mpi_all_gather,
    .barrier = mpi_barrier,
    .abort = mpi_abort,
    .finalize = mpi_finalize,
    .library_version = mpi_library_version,
};

__attribute__((visibility("default"))) const ml_mpi_plugin *ml_mpi_plugin_entry(const ml_dist_host_api *h) {
    if (!h || h->abi != ML_MPI_PLUGIN_ABI) return NULL;
    host = h;
    return &plugin;
}
