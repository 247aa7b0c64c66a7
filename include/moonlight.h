/* moonlight.h — embedding Moonlight in a C program.
 *
 * One header, no Lua header needed. A host opens a runtime (one Lua 5.4 state with
 * moonlight loaded as the global `ml`), hands it data as tensors without copying,
 * registers C functions the scripts can call, runs a script, and reads numbers,
 * strings and tensors back:
 *
 *     ml_runtime *rt = ml_open(NULL);
 *     if (!rt) { fprintf(stderr, "%s\n", ml_last_error(NULL)); return 1; }
 *     int64_t shape[2] = {n, 1};
 *     ml_tensor *x = ml_tensor_wrap(xs, ML_FLOAT32, 2, shape, NULL, NULL);
 *     ml_set_global_tensor(rt, "x", x);
 *     ml_tensor_release(x);
 *     if (ml_run_file(rt, "train.lua", 0, NULL) != ML_OK)
 *         fprintf(stderr, "%s\n", ml_last_error(rt));
 *     double loss;
 *     ml_get_number(rt, "1.loss", &loss);      -- field loss of the 1st return value
 *     ml_close(rt);
 *
 * Errors. Every call that can fail returns an ml_status (ML_OK is 0) or NULL, and
 * leaves a message: ml_last_error(rt) for calls on a runtime, ml_last_error(NULL)
 * for calls without one (ml_open, ml_tensor_*). Arguments are validated (NULL
 * pointers, dtypes, shapes, names): a bad one is ML_ERR_ARG with a message, never
 * an abort. Lua errors raised by a script never unwind through the host: they are
 * caught at the boundary and returned as ML_ERR_SCRIPT, with the traceback.
 *
 * Names. Every `name`/`path` argument is a dotted path from the globals:
 * "result.loss" is the global `result`'s field `loss`; a component made of digits is
 * an integer key ("losses.3" is losses[3], 1-based as Lua). A path whose FIRST
 * component is a number N names the N-th value returned by the last ml_run_file /
 * ml_run_string on this runtime ("1" is the first, "1.loss" its field loss).
 *
 * Thread model. A runtime is used by one thread at a time (calls on one runtime
 * from two threads at once must be serialised by the host). Different runtimes
 * are independent and may run at the same time in different threads: each keeps
 * its own Lua state, last error, grad mode and random generator (a runtime's
 * generator and grad mode are swapped in while it runs, so two runtimes even in
 * the same thread don't see each other's). Tensor reference counts are not
 * atomic: a tensor, and every tensor sharing its memory, must only be touched by
 * one thread at a time (normally the thread of the runtime that holds it). */
#ifndef MOONLIGHT_H
#define MOONLIGHT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOONLIGHT_VERSION_MAJOR 0
#define MOONLIGHT_VERSION_MINOR 1
#define MOONLIGHT_VERSION_PATCH 0
/* The library's version string, "0.1.0". */
const char *ml_version(void);

/* --- status codes --- */
typedef enum ml_status {
    ML_OK = 0,
    ML_ERR_ARG = 1,      /* a bad argument at the C boundary: NULL, dtype, shape, name */
    ML_ERR_SCRIPT = 2,   /* a Lua error raised while running (syntax or run time) */
    ML_ERR_MEMORY = 3,   /* out of memory, or the runtime's memory limit was reached */
    ML_ERR_IO = 4,       /* a file could not be read */
    ML_ERR_TYPE = 5,     /* a value exists but is not of the type asked for */
    ML_ERR_NOT_FOUND = 6,/* a name (global, field, return value) does not exist (nil) */
    ML_ERR_DEVICE = 7,   /* the device asked for is not available */
    ML_ERR_INTERRUPTED = 8 /* stopped by ml_interrupt or the runtime's time limit */
} ml_status;

/* A short name for a status: "ML_ERR_ARG", ... */
const char *ml_status_name(int status);

/* --- runtimes --- */
typedef struct ml_runtime ml_runtime;

/* Lua standard libraries, as bit flags for ml_options.libs. The base library is
 * always opened. Without ML_LIB_PACKAGE, `require` still works for moonlight's own
 * (preloaded) modules but loads nothing from disk: package.loadlib is removed and
 * package.path/cpath are empty. ML_LIB_SAFE is a sandbox: no io, os, debug, and
 * that restricted package.
 *
 * A runtime opened without io, os and debug (ML_LIB_SAFE, or fewer) is
 * SANDBOXED: Moonlight's own file access (ml.save, ml.load, datasets, loggers,
 * checkpoints, plots, and the base library's loadfile/dofile) reaches only the
 * directories granted in ml_options.read_dirs / write_dirs, none unless granted;
 * paths are resolved first (symlinks followed, ".." applied), so neither leads
 * out; `load` and the file loaders take text chunks only (a binary chunk can
 * break Lua's memory safety); package.searchpath is removed. */
enum {
    ML_LIB_BASE = 1 << 0,
    ML_LIB_PACKAGE = 1 << 1,
    ML_LIB_COROUTINE = 1 << 2,
    ML_LIB_TABLE = 1 << 3,
    ML_LIB_IO = 1 << 4,
    ML_LIB_OS = 1 << 5,
    ML_LIB_STRING = 1 << 6,
    ML_LIB_MATH = 1 << 7,
    ML_LIB_UTF8 = 1 << 8,
    ML_LIB_DEBUG = 1 << 9,
    ML_LIB_ALL = (1 << 10) - 1,
    ML_LIB_SAFE = ML_LIB_ALL & ~(ML_LIB_IO | ML_LIB_OS | ML_LIB_DEBUG | ML_LIB_PACKAGE)
};

typedef struct ml_options {
    /* Lua libraries to open (ML_LIB_* flags); 0 means ML_LIB_ALL. */
    unsigned libs;
    /* Most bytes the runtime may hold: the Lua state's own (tables, strings,
     * closures) and the data of the tensors its scripts make, on the CPU and on a
     * device, counted together. 0: no limit. A Lua allocation beyond it fails
     * after a full collection: the script gets Lua's "not enough memory". A tensor
     * beyond it (after a full collection too) is a Lua error naming the function,
     * its shape and the limit ("zeros: a float32 tensor of shape [...] (N bytes)
     * would pass the runtime's memory limit of L bytes ..."). Either way the call
     * returns ML_ERR_MEMORY when the error reaches it, and the runtime stays
     * usable. Memory the host wraps (ml_tensor_wrap) is the host's, not counted. */
    size_t memory_limit;
    /* "cpu", "cuda" or "auto" (NULL is "auto": cuda when a GPU is usable, else
     * cpu). "cuda" without a usable GPU makes ml_open fail (ML_ERR_DEVICE). The
     * chosen device is `ml.host.device` in Lua; scripts put their model and data
     * there (host tensors stay where the host's memory is). */
    const char *device;
    /* A sandboxed runtime's directories (see ML_LIB_SAFE): reads are allowed
     * below each of read_dirs, reads and writes below each of write_dirs.
     * NULL-terminated arrays of existing directories (resolved by ml_open, which
     * fails with ML_ERR_ARG for one that is not a directory); NULL: none. Given
     * to a runtime that is not sandboxed, ml_open fails (ML_ERR_ARG). */
    const char *const *read_dirs;
    const char *const *write_dirs;
    /* Seconds each call into the runtime (ml_run_file, ml_call_tensor, ...) may
     * run; 0: no limit. Past it the script is stopped as by ml_interrupt and the
     * call returns ML_ERR_INTERRUPTED. */
    double time_limit;
} ml_options;

/* Fills *opts with the defaults (all libraries, no limits, "auto", no granted
 * directories). A zeroed ml_options means the same. */
void ml_options_init(ml_options *opts);

/* Opens a runtime: a Lua state with the chosen libraries, moonlight loaded as the
 * global `ml` (and reachable by require "moonlight"), the table `ml.host`.
 * opts may be NULL (defaults). Returns NULL on failure; ml_last_error(NULL) says
 * why (ML_ERR_MEMORY: the limit is too small to load moonlight; ML_ERR_DEVICE;
 * ML_ERR_ARG: an unknown device name or library flag). */
ml_runtime *ml_open(const ml_options *opts);

/* Closes a runtime: frees the Lua state and every reference it holds (tensors the
 * host wrapped get their release callback when no reference is left). NULL is a
 * no-op. Must not be called from inside a host callback of the same runtime. */
void ml_close(ml_runtime *rt);

/* Asks the script running on rt to stop: at its next Lua instruction it gets an
 * error ("interrupted by the host (ml_interrupt)") that pcall, xpcall and
 * coroutines cannot swallow (they raise it again), and the outermost call returns
 * ML_ERR_INTERRUPTED; the runtime stays usable. Safe to call from another thread
 * or from a signal handler (it only sets a flag and a Lua hook), at any time
 * between ml_open and ml_close (not concurrently with ml_close). When no call is
 * running, the next Lua code that runs stops at its first instruction (ml_run_*
 * and ml_call_* return ML_ERR_INTERRUPTED; the getters and setters, which run
 * none, are unaffected): no interrupt is lost between a host's check and its
 * next call. Code running in C does not stop until it returns to Lua (a host
 * callback, one long tensor op, a Lua string-library function); Moonlight's own
 * sleeps do. ML_ERR_ARG for NULL. */
int ml_interrupt(ml_runtime *rt);

/* The last error message of rt, with the Lua traceback when a script raised it;
 * "" when the last call succeeded. With rt NULL: the last error of a call that
 * had no runtime (ml_open, ml_tensor_*), for this thread. The string is valid
 * until the next call on rt (or on this thread, for NULL). Never NULL. */
const char *ml_last_error(const ml_runtime *rt);
/* The status of the last call on rt (ML_OK after a success). */
int ml_last_status(const ml_runtime *rt);

/* The Lua state, for hosts that want Lua's own C API (include <lua.h> then). Lua
 * errors raised through it are the host's to catch (lua_pcall). */
struct lua_State;
struct lua_State *ml_lua_state(ml_runtime *rt);

/* --- running scripts --- */

/* Runs the Lua file at path with arguments: the script gets them as `...` and in
 * the global `arg` (arg[0] = path, arg[1..argc] = argv), as lua(1) does. argv may
 * be NULL when argc is 0. The values the script returns are kept (see Names) until
 * the next run. ML_ERR_IO: the file cannot be read; ML_ERR_SCRIPT: a syntax or
 * run-time error (message and traceback in ml_last_error); ML_ERR_MEMORY. */
int ml_run_file(ml_runtime *rt, const char *path, int argc, const char *const *argv);
/* The same for Lua source code in a string (chunk name "=(ml_run_string)"). */
int ml_run_string(ml_runtime *rt, const char *code, int argc, const char *const *argv);
/* How many values the last run returned (0 after a failed run). */
int ml_result_count(const ml_runtime *rt);

/* Asks the Trainer:fit running on rt to stop cleanly: it finishes the current
 * training step, saves interrupted.safetensors beside its ModelCheckpoint's
 * checkpoints (fit(..., {ckpt_path = "last"}) resumes from it, mid-epoch), runs
 * its end hooks, flushes its logger and returns normally with
 * trainer.interrupted true; the script then goes on (ml_run_* returns ML_OK if
 * it ends well). A request made while no fit runs applies to the next fit that
 * starts on rt (it stops before its first step); a fit clears the request when
 * it returns. Safe to call from
 * another thread or from a signal handler (one atomic store; it sets no error
 * message). ML_ERR_ARG when rt is NULL. */
int ml_request_stop(ml_runtime *rt);

/* --- tensors --- */
typedef struct ml_tensor ml_tensor;

/* Element types (the Lua dtypes "float32", "float64", "int64", "uint8"). */
typedef enum ml_type { ML_FLOAT32 = 0, ML_FLOAT64 = 1, ML_INT64 = 2, ML_UINT8 = 3 } ml_type;
#define ML_TENSOR_MAX_DIMS 8

/* Wraps host memory as a tensor WITHOUT copying: data holds numel elements of
 * type, contiguous, row-major, on the CPU, with the given shape (ndim 0..8; shape
 * may be NULL when ndim is 0). Scripts read and write that memory directly. When
 * the last reference goes (the host's and every runtime's), release(data, ctx)
 * is called (release may be NULL: the host frees data itself, after the last
 * reference is gone). Returns a new reference (ml_tensor_release it), or NULL
 * with ml_last_error(NULL) set (ML_ERR_ARG: NULL data with elements, bad type,
 * ndim, negative size). */
ml_tensor *ml_tensor_wrap(void *data, ml_type type, int ndim, const int64_t *shape,
                          void (*release)(void *data, void *ctx), void *ctx);
/* A new tensor that owns its memory (on the CPU), filled with a copy of data
 * (numel elements of type), or zeros when data is NULL. New reference or NULL. */
ml_tensor *ml_tensor_new(ml_type type, int ndim, const int64_t *shape, const void *data);
/* Reference counting (not atomic; see Thread model). retain returns t. release
 * of NULL is a no-op. */
ml_tensor *ml_tensor_retain(ml_tensor *t);
void ml_tensor_release(ml_tensor *t);

/* Properties; t must not be NULL (they return -1 / NULL then, error set). */
int ml_tensor_type(const ml_tensor *t);     /* an ml_type, or -1 */
int ml_tensor_ndim(const ml_tensor *t);
/* The sizes (ml_tensor_ndim of them), valid while t lives; NULL when t is NULL. */
const int64_t *ml_tensor_shape(const ml_tensor *t);
int64_t ml_tensor_numel(const ml_tensor *t);
/* "cpu" or "cuda" */
const char *ml_tensor_device(const ml_tensor *t);
/* The element memory when t is on the CPU and contiguous (row-major): a pointer
 * the host may read and write while t lives. NULL otherwise (a view with strides,
 * a GPU tensor: use ml_tensor_read), with ml_last_error(NULL) saying which. */
void *ml_tensor_data(ml_tensor *t);
/* Copies t's elements, row-major, into dst (from any device, any strides); nbytes
 * must be numel * element size of t's type (ML_ERR_ARG otherwise). */
int ml_tensor_read(const ml_tensor *t, void *dst, size_t nbytes);
/* The value of a one-element tensor, as a double (ML_ERR_ARG if numel != 1). */
int ml_tensor_item(const ml_tensor *t, double *out);

/* --- globals and results --- */

/* Sets the global (dotted path; missing tables along it are created) to t; the
 * runtime takes its own reference, the caller keeps its own. */
int ml_set_global_tensor(ml_runtime *rt, const char *name, ml_tensor *t);
int ml_set_global_number(ml_runtime *rt, const char *name, double v);
int ml_set_global_string(ml_runtime *rt, const char *name, const char *s);

/* Reads a number: a Lua number, or a tensor of one element (a 0-dim loss).
 * ML_ERR_NOT_FOUND when the value is nil, ML_ERR_TYPE when it is something else. */
int ml_get_number(ml_runtime *rt, const char *path, double *out);
/* Copies a string (NUL-terminated) into buf of size bytes; *len (may be NULL)
 * gets its length. ML_ERR_ARG when buf is too small (*len still set). */
int ml_get_string(ml_runtime *rt, const char *path, char *buf, size_t size, size_t *len);
/* A tensor, as a new reference in *out (release it). */
int ml_get_tensor(ml_runtime *rt, const char *path, ml_tensor **out);
/* Calls fn(key, value, ud) for every entry of the table at path whose value is a
 * number or a one-element tensor (as ml_get_number reads them), in sorted key
 * order (integer keys as decimal strings): a metrics table. fn returns 0 to go on,
 * non-zero to stop. The key string is valid during the call. */
int ml_get_numbers(ml_runtime *rt, const char *path,
                   int (*fn)(const char *key, double value, void *ud), void *ud);

/* --- calling Lua functions --- */

/* Calls the Lua function at path with nin tensors and takes nout tensors back
 * (new references in out[0..nout-1]; on failure none are left). ML_ERR_TYPE when
 * a returned value is not a tensor or fewer than nout come back. */
int ml_call_tensors(ml_runtime *rt, const char *path, int nin, ml_tensor *const *in, int nout,
                    ml_tensor **out);
/* One tensor in, one out: ml_call_tensor(rt, "predict", x, &y). */
int ml_call_tensor(ml_runtime *rt, const char *path, ml_tensor *in, ml_tensor **out);

/* --- host callbacks --- */

/* The arguments and results of one call of a host function: valid only during
 * that call. Argument indices are 0-based. */
typedef struct ml_args ml_args;
/* A host function. Returns ML_OK, or the status of ml_args_error to raise a Lua
 * error in the calling script (it never longjmps through the host's frames). */
typedef int (*ml_host_fn)(ml_runtime *rt, ml_args *args, void *ud);

/* Makes fn callable from Lua under the dotted name (missing tables created):
 * `name(...)` calls fn(rt, args, ud). The host function may call ml_get_* and
 * ml_set_* on rt (not ml_close). */
int ml_register(ml_runtime *rt, const char *name, ml_host_fn fn, void *ud);

typedef enum ml_value_kind {
    ML_VALUE_NONE = 0, ML_VALUE_NIL, ML_VALUE_BOOLEAN, ML_VALUE_NUMBER, ML_VALUE_STRING,
    ML_VALUE_TENSOR, ML_VALUE_TABLE, ML_VALUE_OTHER
} ml_value_kind;

int ml_args_count(const ml_args *a);
/* The kind of argument i (ML_VALUE_NONE past the end). */
int ml_arg_kind(const ml_args *a, int i);
/* Argument i as a number (a Lua number or a one-element tensor). ML_ERR_ARG (with
 * a message naming the function and the argument) when it is not one. */
int ml_arg_number(ml_args *a, int i, double *out);
/* Argument i as a string (valid during the call). */
int ml_arg_string(ml_args *a, int i, const char **out);
/* Argument i as a tensor (borrowed: valid during the call; retain to keep it). */
int ml_arg_tensor(ml_args *a, int i, ml_tensor **out);
/* Results, in order (at most 8): */
int ml_return_number(ml_args *a, double v);
int ml_return_boolean(ml_args *a, int v);
int ml_return_string(ml_args *a, const char *s);
/* The runtime takes its own reference to t. */
int ml_return_tensor(ml_args *a, ml_tensor *t);
/* Records an error message (printf style) for the script and returns
 * ML_ERR_SCRIPT: `return ml_args_error(a, "bad epoch %d", e);` raises
 * "<name>: bad epoch 3" in Lua once the host function has returned. */
int ml_args_error(ml_args *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* --- distributed training (ml.distributed; docs/DISTRIBUTED.md) ---
 *
 * The same world and collectives as a script's ml.distributed, for a host
 * started by an MPI launcher (`mpirun -np 4 ./my_host`): one process per device,
 * rank and size from MPI. In a process no launcher started, the world is this
 * process alone (rank 0 of 1) and the collectives leave tensors as they are,
 * unless ml_dist_init() started MPI there. Collectives match by order: every
 * rank calls the same ones in the same order, one thread at a time; they return
 * once this rank's part is done. Errors: ML_ERR_DEVICE when this build has no
 * MPI engine or MPI fails (ml_last_error(NULL) says why and how to build it),
 * ML_ERR_ARG for a bad tensor, op or rank. A failed rank leaves the others
 * waiting in their next collective: end the job with ml_dist_abort. */

typedef enum ml_collective_op { ML_REDUCE_SUM = 0, ML_REDUCE_MEAN = 1, ML_REDUCE_MAX = 2, ML_REDUCE_MIN = 3 } ml_collective_op;

/* 1 when this build can run distributed (the MPI engine loads), else 0 with
 * ml_last_error(NULL) saying why. */
int ml_dist_is_available(void);
/* Starts MPI (once; a launcher's world, or a world of one). */
int ml_dist_init(void);
/* 1 once MPI runs in this process. */
int ml_dist_is_initialized(void);
/* Rank (0-based), world size, rank among this node's processes, their number;
 * -1 with the error set when MPI fails to start. */
int ml_dist_rank(void);
int ml_dist_world_size(void);
int ml_dist_local_rank(void);
int ml_dist_local_world_size(void);
/* In place on every rank's t (any type; CUDA tensors through NCCL). */
int ml_dist_all_reduce(ml_tensor *t, ml_collective_op op);
/* t becomes rank src's t on every rank. */
int ml_dist_broadcast(ml_tensor *t, int src);
/* *out: a new tensor [world_size, ...t's shape], rank r's t at index r. */
int ml_dist_all_gather(ml_tensor *t, ml_tensor **out);
int ml_dist_barrier(void);
/* Ends every process of the job with code (MPI_Abort). Does not return. */
void ml_dist_abort(int code);
/* The orderly end of MPI in this process, once every rank gets here (at most
 * MOONLIGHT_DIST_EXIT_TIMEOUT seconds, 600 by default; then the job is aborted).
 * A host that does not call it gets it at exit. */
int ml_dist_finalize(void);

#ifdef __cplusplus
}
#endif

#endif
