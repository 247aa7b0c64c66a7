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

typedef struct ml_storage {
    int refcount;
    ml_device device;
    void *data;
    size_t nbytes;
    /* Memory owned by someone else (an embedding host): released through this
     * callback instead of the device allocator. */
    void (*release)(void *data, void *ctx);
    void *release_ctx;
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
int64_t ml_shape_numel(int ndim, const int64_t *shape);
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

/* --- views (share storage; no copy) --- */
ml_tensor *ml_view_raw(const ml_tensor *t, int ndim, const int64_t *shape,
                       const int64_t *strides, int64_t offset);

#endif
