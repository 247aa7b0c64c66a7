/* The tensor core: dtypes, refcounted storage, shape/strides views.
 *
 * A tensor is a view (offset, shape, strides, all counted in elements) onto a
 * storage, which owns one allocation on one device. Several tensors may share a
 * storage (views). Both are reference counted; the Lua binding holds one
 * reference per userdata, autograd nodes hold references to what they save.
 *
 * Dims here are 0-based; the Lua binding turns the 1-based positions a user types
 * into these. Functions that can fail on user input return NULL (or -1) and leave
 * a message in ml_error() (see error.h). */
#ifndef ML_TENSOR_H
#define ML_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ML_MAX_DIMS 8

typedef enum { ML_F32, ML_F64, ML_I64, ML_U8, ML_NDTYPES } ml_dtype;
typedef enum { ML_CPU, ML_CUDA, ML_NDEVICES } ml_device;

size_t ml_dtype_size(ml_dtype dt);
const char *ml_dtype_name(ml_dtype dt);      /* "float32", "float64", "int64", "uint8" */
int ml_dtype_from_name(const char *name);    /* -1 when unknown */
bool ml_dtype_is_float(ml_dtype dt);
const char *ml_device_name(ml_device dev);   /* "cpu", "cuda" */
int ml_device_from_name(const char *name);   /* -1 when unknown; "gpu" is "cuda" */

struct ml_budget;

typedef struct ml_storage {
    int refcount;
    ml_device device;
    void *data;
    size_t nbytes;
    /* Memory owned by someone else (an embedding host): released through this
     * callback instead of the device allocator. */
    void (*release)(void *data, void *ctx);
    void *release_ctx;
    /* The memory budget nbytes were charged to (see ml_budget below), or NULL. */
    struct ml_budget *budget;
} ml_storage;

struct ml_node;

typedef struct ml_tensor {
    int refcount;
    ml_dtype dtype;
    int ndim;
    int64_t shape[ML_MAX_DIMS];
    int64_t strides[ML_MAX_DIMS];
    int64_t offset;
    ml_storage *storage;
    /* autograd */
    bool requires_grad;
    struct ml_tensor *grad;     /* accumulated gradient of a leaf, or NULL */
    struct ml_node *grad_fn;    /* the node that produced this tensor, or NULL (leaf) */
} ml_tensor;

/* --- lifetime --- */
/* A new contiguous tensor, data not set. NULL with ml_error set ("tensor: ...")
 * when the shape is bad (more than ML_MAX_DIMS dims, a negative size, more
 * elements than int64 holds), when its bytes exceed this machine's memory (RAM +
 * swap, for a CPU tensor: refused before asking for them), when this thread's
 * memory budget refuses them (see ml_budget), or when the allocator fails. */
ml_tensor *ml_tensor_empty(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape);
ml_tensor *ml_tensor_empty_like(const ml_tensor *t);
ml_tensor *ml_tensor_retain(ml_tensor *t);
void ml_tensor_release(ml_tensor *t);
/* Wraps memory the caller owns (zero-copy); release(data, ctx) runs when the last
 * tensor using it goes. Contiguous row-major. */
ml_tensor *ml_tensor_from_blob(void *data, ml_dtype dt, ml_device dev, int ndim,
                               const int64_t *shape, void (*release)(void *, void *),
                               void *ctx);
/* Bytes of tensor data held by the backends for all live tensors (all threads;
 * memory wrapped by ml_tensor_from_blob is the caller's and not counted). */
int64_t ml_storage_live_bytes(void);
/* A new tensor struct over the same data, without autograd history: what autograd
 * saves for backward (saving the output itself would make a refcount cycle). */
ml_tensor *ml_tensor_alias(const ml_tensor *t);

/* --- shape helpers --- */
int64_t ml_numel(const ml_tensor *t);
/* The product of the sizes; INT64_MAX when it does not fit (no tensor has such a
 * shape: ml_shape_check refuses it), so comparisons with a real count fail. */
int64_t ml_shape_numel(int ndim, const int64_t *shape);
/* *out = a * b for sizes (>= 0); false, *out untouched, when it overflows int64.
 * Every product of user-given sizes goes through it (signed overflow is UB). */
static inline bool ml_mul_size(int64_t a, int64_t b, int64_t *out) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
/* 0 when shape can be a tensor's: ndim in 0..ML_MAX_DIMS, sizes >= 0, and the
 * product of its non-zero sizes fits in int64 (so numel and every contiguous
 * stride do). Else -1 with ml_error set: "fname: ..." naming the shape. */
int ml_shape_check(const char *fname, int ndim, const int64_t *shape);
bool ml_is_contiguous(const ml_tensor *t);
bool ml_same_shape(const ml_tensor *a, const ml_tensor *b);
void ml_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
/* "[2, 3]" into buf; returns buf. */
const char *ml_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);
#define ML_SHAPE_STR_MAX 160
/* Element pointer of the first element of the view. */
static inline void *ml_data(const ml_tensor *t) {
    return (char *)t->storage->data + (size_t)t->offset * ml_dtype_size(t->dtype);
}
/* Normalises a possibly negative 0-based dim against ndim; -1 when out of range. */
int ml_wrap_dim(int dim, int ndim);

/* --- collecting before a large tensor ---
 * The Lua collector does not see a tensor's bytes, so dead tensors wait for its
 * next cycle; a large new tensor may then be mapped beside large dead ones it
 * could have reused (a test pass at batch 1000 after training had three 48 MiB
 * activations resident where one was live). A thread's hook, when set, is called
 * by ml_tensor_empty before it allocates ML_COLLECT_HOOK_MIN bytes or more (never
 * from inside the hook): the Lua binding runs a full collection there when the
 * tensor is large against the Lua heap (src/lua/util.c). The hook may free tensors
 * and must not allocate any. Setting returns the previous hook in *old_fn and
 * *old_ctx (either may be NULL), for restoring. */
typedef void (*ml_collect_hook)(void *ctx, size_t nbytes);
#define ML_COLLECT_HOOK_MIN ((size_t)8 << 20)
void ml_set_collect_hook(ml_collect_hook fn, void *ctx, ml_collect_hook *old_fn, void **old_ctx);

/* --- memory budgets ---
 * The embedding API's memory_limit (include/moonlight.h) covers tensor data as
 * well as the Lua heap. A budget counts both against one limit: the bytes of
 * every storage allocated while it is this thread's budget (ml_budget_swap; the
 * runtime makes its own current while a script runs), and lua_bytes, which the
 * Lua state's allocator keeps. A storage remembers the budget it was charged to
 * and gives the bytes back when freed, on whatever thread; budgets are reference
 * counted (the owner and each charged storage), so a tensor the host keeps after
 * ml_close can still be freed. Allocations with no current budget are not
 * counted (the CLI, stock lua5.4, host calls outside a runtime). */
typedef struct ml_budget ml_budget;
/* A new budget (one reference) of limit bytes (0: no limit, count only), or NULL
 * when out of memory. reclaim(ctx), when set, is called once before a tensor is
 * refused, to free what is dead (the runtime runs a full Lua collection); it may
 * free storages charged to the budget, and must not allocate tensors. */
ml_budget *ml_budget_new(size_t limit, void (*reclaim)(void *ctx), void *ctx);
void ml_budget_retain(ml_budget *b);
void ml_budget_release(ml_budget *b);
/* Drops the reclaim callback (its context is going away); the budget stays. */
void ml_budget_detach(ml_budget *b);
/* Makes b (may be NULL) this thread's current budget; returns the previous one. */
ml_budget *ml_budget_swap(ml_budget *b);
size_t ml_budget_limit(const ml_budget *b);
/* Bytes of live storages charged to b. */
int64_t ml_budget_tensor_bytes(const ml_budget *b);
/* The Lua heap's bytes, kept by the state's allocator (one thread at a time). */
size_t *ml_budget_lua_bytes(ml_budget *b);
/* How many tensors b refused so far (the API maps a failed call to ML_ERR_MEMORY
 * when this grew during it). */
unsigned ml_budget_refusals(const ml_budget *b);
/* The phrase every refusal's message contains. */
#define ML_BUDGET_REFUSED "the runtime's memory limit"

/* --- views (share storage; no copy) --- */
ml_tensor *ml_view_raw(const ml_tensor *t, int ndim, const int64_t *shape,
                       const int64_t *strides, int64_t offset);

#endif
