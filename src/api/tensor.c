/* The embedding API's tensors: wrapping host memory (zero-copy), owned copies,
 * properties, reading data back from any device. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../error.h"
#include "../ops.h"
#include "internal.h"

_Static_assert((int)ML_FLOAT32 == (int)ML_F32 && (int)ML_FLOAT64 == (int)ML_F64 &&
                   (int)ML_INT64 == (int)ML_I64 && (int)ML_UINT8 == (int)ML_U8,
               "public ml_type must match the core's ml_dtype");
_Static_assert(ML_TENSOR_MAX_DIMS == ML_MAX_DIMS, "public max dims must match the core's");

static int check_layout(const char *fname, int type, int ndim, const int64_t *shape) {
    if (type < 0 || type >= ML_NDTYPES)
        return ml_api_fail(NULL, ML_ERR_ARG, "%s: unknown type %d (expected ML_FLOAT32, "
                           "ML_FLOAT64, ML_INT64 or ML_UINT8)", fname, type);
    if (ndim < 0 || ndim > ML_MAX_DIMS)
        return ml_api_fail(NULL, ML_ERR_ARG, "%s: ndim %d out of range (expected 0..%d)", fname,
                           ndim, ML_MAX_DIMS);
    if (ndim > 0 && !shape) return ml_api_fail(NULL, ML_ERR_ARG, "%s: shape is NULL with ndim %d", fname, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return ml_api_fail(NULL, ML_ERR_ARG, "%s: negative size %lld in dim %d", fname,
                               (long long)shape[i], i);
    return ML_OK;
}

static void keep_host_memory(void *data, void *ctx) {
    (void)data;
    (void)ctx;
}

ml_tensor *ml_tensor_wrap(void *data, ml_type type, int ndim, const int64_t *shape,
                          void (*release)(void *, void *), void *ctx) {
    if (check_layout("ml_tensor_wrap", (int)type, ndim, shape)) return NULL;
    if (!data && ml_shape_numel(ndim, shape) > 0) {
        ml_api_fail(NULL, ML_ERR_ARG, "ml_tensor_wrap: data is NULL");
        return NULL;
    }
    static char empty; /* a valid pointer for a tensor with no elements */
    /* never NULL: a storage without a release callback would free the host's memory */
    ml_tensor *t = ml_tensor_from_blob(data ? data : &empty, (ml_dtype)type, ML_CPU, ndim,
                                       shape, release ? release : keep_host_memory, ctx);
    if (!t) ml_api_fail(NULL, ML_ERR_MEMORY, "ml_tensor_wrap: %s", ml_error());
    else ml_api_ok(NULL);
    return t;
}

ml_tensor *ml_tensor_new(ml_type type, int ndim, const int64_t *shape, const void *data) {
    if (check_layout("ml_tensor_new", (int)type, ndim, shape)) return NULL;
    ml_tensor *t = ml_tensor_empty((ml_dtype)type, ML_CPU, ndim, shape);
    if (!t) {
        ml_api_fail(NULL, ML_ERR_MEMORY, "ml_tensor_new: %s", ml_error());
        return NULL;
    }
    size_t n = (size_t)ml_numel(t) * ml_dtype_size(t->dtype);
    if (data) memcpy(ml_data(t), data, n);
    else memset(ml_data(t), 0, n);
    ml_api_ok(NULL);
    return t;
}

#define CHECK_T(t, fname, ret)                                                       \
    do {                                                                             \
        if (!(t)) {                                                                  \
            ml_api_fail(NULL, ML_ERR_ARG, "%s: the tensor is NULL", fname);          \
            return ret;                                                              \
        }                                                                            \
    } while (0)

int ml_tensor_type(const ml_tensor *t) {
    CHECK_T(t, "ml_tensor_type", -1);
    return (int)t->dtype;
}

int ml_tensor_ndim(const ml_tensor *t) {
    CHECK_T(t, "ml_tensor_ndim", -1);
    return t->ndim;
}

const int64_t *ml_tensor_shape(const ml_tensor *t) {
    CHECK_T(t, "ml_tensor_shape", NULL);
    return t->shape;
}

int64_t ml_tensor_numel(const ml_tensor *t) {
    CHECK_T(t, "ml_tensor_numel", -1);
    return ml_numel(t);
}

const char *ml_tensor_device(const ml_tensor *t) {
    CHECK_T(t, "ml_tensor_device", NULL);
    return ml_device_name(t->storage->device);
}

void *ml_tensor_data(ml_tensor *t) {
    CHECK_T(t, "ml_tensor_data", NULL);
    if (t->storage->device != ML_CPU) {
        ml_api_fail(NULL, ML_ERR_ARG, "ml_tensor_data: the tensor is on %s, not in host memory "
                    "(copy it out with ml_tensor_read)", ml_device_name(t->storage->device));
        return NULL;
    }
    if (!ml_is_contiguous(t)) {
        ml_api_fail(NULL, ML_ERR_ARG, "ml_tensor_data: the tensor is a strided view, not "
                    "contiguous (copy it out with ml_tensor_read)");
        return NULL;
    }
    ml_api_ok(NULL);
    return ml_data(t);
}

int ml_tensor_read(const ml_tensor *t, void *dst, size_t nbytes) {
    CHECK_T(t, "ml_tensor_read", ML_ERR_ARG);
    size_t want = (size_t)ml_numel(t) * ml_dtype_size(t->dtype);
    if (!dst && want) return ml_api_fail(NULL, ML_ERR_ARG, "ml_tensor_read: dst is NULL");
    if (nbytes != want) {
        char s[ML_SHAPE_STR_MAX];
        return ml_api_fail(NULL, ML_ERR_ARG, "ml_tensor_read: %zu bytes given, the %s tensor of "
                           "shape %s needs %zu", nbytes, ml_dtype_name(t->dtype),
                           ml_shape_str(t->ndim, t->shape, s, sizeof s), want);
    }
    if (!want) return ml_api_ok(NULL);
    ml_tensor *src = (ml_tensor *)t;
    ml_tensor *c = ml_contiguous(src);
    ml_tensor *h = c ? ml_to_device(c, ML_CPU) : NULL;
    ml_tensor_release(c);
    if (!h) return ml_api_fail(NULL, ML_ERR_MEMORY, "ml_tensor_read: %s", ml_error());
    memcpy(dst, ml_data(h), want);
    ml_tensor_release(h);
    return ml_api_ok(NULL);
}

int ml_api_tensor_item(const ml_tensor *t, double *out) {
    if (ml_numel(t) != 1) {
        char s[ML_SHAPE_STR_MAX];
        return ml_error_set("a tensor of shape %s has %lld elements, not one",
                            ml_shape_str(t->ndim, t->shape, s, sizeof s), (long long)ml_numel(t));
    }
    ml_tensor *c = ml_cast((ml_tensor *)t, ML_F64);
    ml_tensor *h = c ? ml_to_device(c, ML_CPU) : NULL;
    ml_tensor_release(c);
    if (!h) return -1;
    *out = *(const double *)ml_data(h);
    ml_tensor_release(h);
    return 0;
}

int ml_tensor_item(const ml_tensor *t, double *out) {
    CHECK_T(t, "ml_tensor_item", ML_ERR_ARG);
    if (!out) return ml_api_fail(NULL, ML_ERR_ARG, "ml_tensor_item: out is NULL");
    if (ml_api_tensor_item(t, out)) return ml_api_fail(NULL, ML_ERR_ARG, "ml_tensor_item: %s", ml_error());
    return ml_api_ok(NULL);
}
