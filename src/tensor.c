#include <stdatomic.h>
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/sysinfo.h>
#endif

#include "autograd.h"
#include "backend.h"
#include "error.h"

static const char *const dtype_names[ML_NDTYPES] = {"float32", "float64", "int64", "uint8"};
static const size_t dtype_sizes[ML_NDTYPES] = {4, 8, 8, 1};

size_t ml_dtype_size(ml_dtype dt) { return dtype_sizes[dt]; }
const char *ml_dtype_name(ml_dtype dt) { return dtype_names[dt]; }
bool ml_dtype_is_float(ml_dtype dt) { return dt == ML_F32 || dt == ML_F64; }

int ml_dtype_from_name(const char *name) {
    for (int i = 0; i < ML_NDTYPES; i++)
        if (strcmp(name, dtype_names[i]) == 0) return i;
    /* PyTorch's aliases */
    if (strcmp(name, "float") == 0) return ML_F32;
    if (strcmp(name, "double") == 0) return ML_F64;
    if (strcmp(name, "long") == 0) return ML_I64;
    return -1;
}

const char *ml_device_name(ml_device dev) { return dev == ML_CUDA ? "cuda" : "cpu"; }

int ml_device_from_name(const char *name) {
    if (strcmp(name, "cpu") == 0) return ML_CPU;
    if (strcmp(name, "cuda") == 0 || strcmp(name, "gpu") == 0 || strcmp(name, "cuda:0") == 0)
        return ML_CUDA;
    return -1;
}

int64_t ml_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (!ml_mul_size(n, shape[i], &n)) return INT64_MAX;
    return n;
}

/* A tensor's shape passed ml_shape_check, so its product fits. */
int64_t ml_numel(const ml_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int ml_shape_check(const char *fname, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > ML_MAX_DIMS)
        return ml_error_set("%s: %d dims requested, at most %d are supported", fname, ndim, ML_MAX_DIMS);
    char a[ML_SHAPE_STR_MAX];
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return ml_error_set("%s: size %lld of dim %d in shape %s is negative (sizes must be >= 0)",
                                fname, (long long)shape[i], i + 1, ml_shape_str(ndim, shape, a, sizeof a));
    /* the non-zero sizes' product bounds numel and every contiguous stride, which
     * ml_contiguous_strides computes by multiplying the sizes after a dim */
    int64_t p = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] && !ml_mul_size(p, shape[i], &p))
            return ml_error_set("%s: shape %s has more elements than a tensor can hold (at most "
                                "2^63 - 1)", fname, ml_shape_str(ndim, shape, a, sizeof a));
    return 0;
}

void ml_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i];
    }
}

bool ml_is_contiguous(const ml_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool ml_same_shape(const ml_tensor *a, const ml_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *ml_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t used = 0;
    used += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}

int ml_wrap_dim(int dim, int ndim) {
    int d = dim < 0 ? dim + ndim : dim;
    return (d < 0 || d >= ndim) ? -1 : d;
}

/* Tensor and storage structs come from the CPU allocator's free lists (as small
 * tensors' data does): the Lua collector frees them in bursts of thousands, after
 * which glibc's malloc took its slow paths (consolidating, unlinking chunks) for
 * every struct of the next ops. */
static void *struct_alloc(size_t n) {
    void *p = ml_cpu_backend()->memory->alloc(n);
    if (p) memset(p, 0, n);
    return p;
}

static void struct_free(void *p, size_t n) {
    if (p) ml_cpu_backend()->memory->free(p, n);
}

/* A tensor struct with shape's contiguous strides; the shape has been checked. */
static ml_tensor *tensor_struct_checked(ml_dtype dt, int ndim, const int64_t *shape) {
    ml_tensor *t = struct_alloc(sizeof *t);
    if (!t) return NULL; /* the allocator set the error */
    t->refcount = 1;
    t->dtype = dt;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    ml_contiguous_strides(ndim, shape, t->strides);
    return t;
}

/* The same for a shape not checked yet: views of any strides (an expand
 * included) can only have shapes whose counts fit. */
static ml_tensor *tensor_struct(ml_dtype dt, int ndim, const int64_t *shape) {
    if (ml_shape_check("tensor", ndim, shape)) return NULL;
    return tensor_struct_checked(dt, ndim, shape);
}

/* The bytes of a tensor of shape (checked), or -1 with ml_error set when the
 * shape is bad or its bytes do not fit in 63 bits. */
static int tensor_nbytes(ml_dtype dt, int ndim, const int64_t *shape, size_t *nbytes) {
    if (ml_shape_check("tensor", ndim, shape)) return -1;
    int64_t n;
    if (!ml_mul_size(ml_shape_numel(ndim, shape), (int64_t)ml_dtype_size(dt), &n)) {
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("tensor: a %s tensor of shape %s needs more than 2^63 bytes",
                            ml_dtype_name(dt), ml_shape_str(ndim, shape, a, sizeof a));
    }
    *nbytes = (size_t)n;
    return 0;
}

/* A contiguous tensor of a fresh storage of nbytes on dev, data not set yet; the
 * shape was checked by tensor_nbytes. */
static ml_tensor *tensor_with_storage(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape,
                                      size_t nbytes) {
    ml_tensor *t = tensor_struct_checked(dt, ndim, shape);
    if (!t) return NULL;
    ml_storage *s = struct_alloc(sizeof *s);
    if (!s) {
        struct_free(t, sizeof *t);
        return NULL;
    }
    s->refcount = 1;
    s->device = dev;
    s->nbytes = nbytes;
    t->storage = s;
    return t;
}

/* "1.5 GiB" */
static const char *human_bytes(double v, char *buf, size_t n) {
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (v >= 1024 && u < 6) v /= 1024, u++;
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

/* This machine's RAM plus swap, in bytes (UINT64_MAX when unknown): a CPU tensor
 * larger than that is refused before the allocator is asked, as Linux's default
 * overcommit heuristic would refuse it, but with a message that says why (and
 * without ASan aborting on an absurd request). Read once. */
static uint64_t machine_memory(void) {
    static _Atomic uint64_t cached;
    uint64_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v) return v;
    v = UINT64_MAX;
#ifdef __linux__
    struct sysinfo si;
    if (sysinfo(&si) == 0 && si.mem_unit > 0)
        v = ((uint64_t)si.totalram + (uint64_t)si.totalswap) * si.mem_unit;
#endif
    atomic_store_explicit(&cached, v, memory_order_relaxed);
    return v;
}

/* --- memory budgets (see tensor.h) --- */

struct ml_budget {
    size_t limit;                  /* 0: count only */
    size_t lua_bytes;              /* the Lua heap, kept by the state's allocator */
    _Atomic int64_t tensor_bytes;  /* live storages charged here, freed on any thread */
    _Atomic unsigned refusals;
    _Atomic int refs;
    void (*reclaim)(void *ctx);
    void *ctx;
    bool reclaiming;               /* reclaim runs finalizers: no recursion */
};

static _Thread_local ml_budget *current_budget;

ml_budget *ml_budget_new(size_t limit, void (*reclaim)(void *ctx), void *ctx) {
    ml_budget *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->limit = limit;
    b->reclaim = reclaim;
    b->ctx = ctx;
    atomic_init(&b->refs, 1);
    return b;
}

void ml_budget_retain(ml_budget *b) {
    if (b) atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void ml_budget_release(ml_budget *b) {
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) free(b);
}

void ml_budget_detach(ml_budget *b) {
    if (!b) return;
    b->reclaim = NULL;
    b->ctx = NULL;
}

ml_budget *ml_budget_swap(ml_budget *b) {
    ml_budget *old = current_budget;
    current_budget = b;
    return old;
}

size_t ml_budget_limit(const ml_budget *b) { return b ? b->limit : 0; }
int64_t ml_budget_tensor_bytes(const ml_budget *b) {
    return b ? atomic_load_explicit(&b->tensor_bytes, memory_order_relaxed) : 0;
}
size_t *ml_budget_lua_bytes(ml_budget *b) { return &b->lua_bytes; }
unsigned ml_budget_refusals(const ml_budget *b) {
    return b ? atomic_load_explicit(&b->refusals, memory_order_relaxed) : 0;
}

/* Charges nbytes to b: 0, or -1 with ml_error set when they would pass its limit
 * even after one reclaim (dead tensors waiting for the Lua collector count until
 * it runs). */
static int budget_charge(ml_budget *b, size_t nbytes, ml_dtype dt, int ndim, const int64_t *shape) {
    for (int attempt = 0; b->limit; attempt++) {
        uint64_t used = (uint64_t)b->lua_bytes +
                        (uint64_t)atomic_load_explicit(&b->tensor_bytes, memory_order_relaxed);
        if (used <= b->limit && nbytes <= b->limit - used) break;
        if (attempt == 0 && b->reclaim && !b->reclaiming) {
            b->reclaiming = true;
            b->reclaim(b->ctx);
            b->reclaiming = false;
            continue;
        }
        atomic_fetch_add_explicit(&b->refusals, 1, memory_order_relaxed);
        char a[ML_SHAPE_STR_MAX];
        return ml_error_set("tensor: a %s tensor of shape %s (%zu bytes) would pass "
                            ML_BUDGET_REFUSED " of %zu bytes (%llu in use: %lld by tensors, %zu by "
                            "Lua)", ml_dtype_name(dt), ml_shape_str(ndim, shape, a, sizeof a), nbytes,
                            b->limit, (unsigned long long)used,
                            (long long)atomic_load_explicit(&b->tensor_bytes, memory_order_relaxed),
                            b->lua_bytes);
    }
    atomic_fetch_add_explicit(&b->tensor_bytes, (int64_t)nbytes, memory_order_relaxed);
    ml_budget_retain(b);
    return 0;
}

static void budget_uncharge(ml_budget *b, size_t nbytes) {
    atomic_fetch_sub_explicit(&b->tensor_bytes, (int64_t)nbytes, memory_order_relaxed);
    ml_budget_release(b);
}

/* Bytes of tensor data the backends hold for live storages (what from_blob wraps is
 * the caller's and not counted): the Lua binding watches it to time full
 * collections (src/lua/util.c). */
static _Atomic int64_t live_storage_bytes;

int64_t ml_storage_live_bytes(void) {
    return atomic_load_explicit(&live_storage_bytes, memory_order_relaxed);
}

/* --- collecting before a large tensor (see tensor.h) --- */

static _Thread_local struct {
    ml_collect_hook fn;
    void *ctx;
    bool running; /* the hook frees tensors: no call from inside it */
} collect_hook;

void ml_set_collect_hook(ml_collect_hook fn, void *ctx, ml_collect_hook *old_fn, void **old_ctx) {
    if (old_fn) *old_fn = collect_hook.fn;
    if (old_ctx) *old_ctx = collect_hook.ctx;
    collect_hook.fn = fn;
    collect_hook.ctx = ctx;
}

static void collect_before(size_t nbytes) {
    if (nbytes < ML_COLLECT_HOOK_MIN || !collect_hook.fn || collect_hook.running) return;
    collect_hook.running = true;
    collect_hook.fn(collect_hook.ctx, nbytes);
    collect_hook.running = false;
}

ml_tensor *ml_tensor_empty(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape) {
    const ml_backend *be = ml_backend_get(dev);
    if (!be) return NULL;
    size_t nbytes = 0; /* set by tensor_nbytes; gcc cannot see it through ml_error_set */
    if (tensor_nbytes(dt, ndim, shape, &nbytes)) return NULL;
    if (dev == ML_CPU && nbytes > machine_memory()) {
        char a[ML_SHAPE_STR_MAX], h1[32], h2[32];
        ml_error_set("tensor: a %s tensor of shape %s needs %zu bytes (%s), more than this "
                     "machine's memory (RAM and swap: %s)", ml_dtype_name(dt),
                     ml_shape_str(ndim, shape, a, sizeof a), nbytes,
                     human_bytes((double)nbytes, h1, sizeof h1),
                     human_bytes((double)machine_memory(), h2, sizeof h2));
        return NULL;
    }
    collect_before(nbytes);
    ml_budget *b = current_budget;
    if (b && budget_charge(b, nbytes, dt, ndim, shape)) return NULL;
    ml_tensor *t = tensor_with_storage(dt, dev, ndim, shape, nbytes);
    ml_storage *s = t ? t->storage : NULL;
    /* Never a zero-byte allocation, so data is always a valid pointer. */
    if (s) s->data = be->memory->alloc(nbytes ? nbytes : 1);
    if (!s || !s->data) {
        if (b) budget_uncharge(b, nbytes);
        if (s) struct_free(s, sizeof *s);
        if (t) struct_free(t, sizeof *t);
        return NULL;
    }
    s->budget = b;
    atomic_fetch_add_explicit(&live_storage_bytes, (int64_t)s->nbytes, memory_order_relaxed);
    return t;
}

ml_tensor *ml_tensor_empty_like(const ml_tensor *t) {
    return ml_tensor_empty(t->dtype, t->storage->device, t->ndim, t->shape);
}

ml_tensor *ml_tensor_from_blob(void *data, ml_dtype dt, ml_device dev, int ndim,
                               const int64_t *shape, void (*release)(void *, void *),
                               void *ctx) {
    size_t nbytes = 0;
    if (tensor_nbytes(dt, ndim, shape, &nbytes)) return NULL;
    ml_tensor *t = tensor_with_storage(dt, dev, ndim, shape, nbytes);
    if (!t) return NULL;
    t->storage->data = data;
    t->storage->release = release;
    t->storage->release_ctx = ctx;
    return t;
}

static void storage_release(ml_storage *s) {
    if (--s->refcount > 0) return;
    if (s->release) {
        s->release(s->data, s->release_ctx);
    } else {
        const ml_backend *be = ml_backend_get(s->device);
        if (be) be->memory->free(s->data, s->nbytes ? s->nbytes : 1);
        atomic_fetch_sub_explicit(&live_storage_bytes, (int64_t)s->nbytes, memory_order_relaxed);
        if (s->budget) budget_uncharge(s->budget, s->nbytes);
    }
    struct_free(s, sizeof *s);
}

ml_tensor *ml_tensor_retain(ml_tensor *t) {
    if (t) t->refcount++;
    return t;
}

void ml_tensor_release(ml_tensor *t) {
    if (!t || --t->refcount > 0) return;
    ml_tensor_release(t->grad);
    if (t->grad_fn) ml_node_release(t->grad_fn);
    storage_release(t->storage);
    struct_free(t, sizeof *t);
}

ml_tensor *ml_view_raw(const ml_tensor *t, int ndim, const int64_t *shape,
                       const int64_t *strides, int64_t offset) {
    ml_tensor *v = tensor_struct(t->dtype, ndim, shape);
    if (!v) return NULL;
    if (ndim) memcpy(v->strides, strides, sizeof(int64_t) * (size_t)ndim);
    v->offset = offset;
    v->storage = t->storage;
    t->storage->refcount++;
    return v;
}

ml_tensor *ml_tensor_alias(const ml_tensor *t) {
    return ml_view_raw(t, t->ndim, t->shape, t->strides, t->offset);
}
