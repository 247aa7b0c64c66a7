#include <stdatomic.h>
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

int64_t ml_numel(const ml_tensor *t) { return ml_shape_numel(t->ndim, t->shape); }

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

static ml_tensor *tensor_struct(ml_dtype dt, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > ML_MAX_DIMS) {
        ml_error_set("tensor: %d dims requested, at most %d are supported", ndim, ML_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            ml_error_set("tensor: negative size %lld in dim %d", (long long)shape[i], i + 1);
            return NULL;
        }
    }
    ml_tensor *t = struct_alloc(sizeof *t);
    if (!t) return NULL; /* the allocator set the error */
    t->refcount = 1;
    t->dtype = dt;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    ml_contiguous_strides(ndim, shape, t->strides);
    return t;
}

/* A contiguous tensor of a fresh storage of its size on dev, data not set yet. */
static ml_tensor *tensor_with_storage(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape) {
    ml_tensor *t = tensor_struct(dt, ndim, shape);
    if (!t) return NULL;
    ml_storage *s = struct_alloc(sizeof *s);
    if (!s) {
        struct_free(t, sizeof *t);
        return NULL;
    }
    s->refcount = 1;
    s->device = dev;
    s->nbytes = (size_t)ml_numel(t) * ml_dtype_size(dt);
    t->storage = s;
    return t;
}

/* Bytes of tensor data the backends hold for live storages (what from_blob wraps is
 * the caller's and not counted): the Lua binding watches it to time full
 * collections (src/lua/util.c). */
static _Atomic int64_t live_storage_bytes;

int64_t ml_storage_live_bytes(void) {
    return atomic_load_explicit(&live_storage_bytes, memory_order_relaxed);
}

ml_tensor *ml_tensor_empty(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape) {
    const ml_backend *be = ml_backend_get(dev);
    if (!be) return NULL;
    ml_tensor *t = tensor_with_storage(dt, dev, ndim, shape);
    if (!t) return NULL;
    ml_storage *s = t->storage;
    /* Never a zero-byte allocation, so data is always a valid pointer. */
    s->data = be->memory->alloc(s->nbytes ? s->nbytes : 1);
    if (!s->data) {
        struct_free(s, sizeof *s);
        struct_free(t, sizeof *t);
        return NULL;
    }
    atomic_fetch_add_explicit(&live_storage_bytes, (int64_t)s->nbytes, memory_order_relaxed);
    return t;
}

ml_tensor *ml_tensor_empty_like(const ml_tensor *t) {
    return ml_tensor_empty(t->dtype, t->storage->device, t->ndim, t->shape);
}

ml_tensor *ml_tensor_from_blob(void *data, ml_dtype dt, ml_device dev, int ndim,
                               const int64_t *shape, void (*release)(void *, void *),
                               void *ctx) {
    ml_tensor *t = tensor_with_storage(dt, dev, ndim, shape);
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
