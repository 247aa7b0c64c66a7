/* CPU kernels of the index family: gather / scatter_add (torch.gather and its
 * adjoint), index_select / index_add, one_hot.
 *
 * Every tensor is contiguous; index values were checked by ops/index.c. gather and
 * index_select only move elements, so they are typed by element size (any dtype);
 * the adjoints add, so they are typed by dtype. Loops run over the "rows" of the
 * index (all dims but the last), each row's offset into x computed once. */
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "iter.h"

/* Offset in a tensor of strides xs of row r of a contiguous tensor of shape
 * `shape` (nd dims, rows = all but the last), leaving out dim `skip`. */
static inline int64_t row_offset(int64_t r, int nd, const int64_t *shape, const int64_t *xs,
                                 int skip) {
    int64_t off = 0;
    for (int k = nd - 2; k >= 0; k--) {
        int64_t c = r % shape[k];
        r /= shape[k];
        if (k != skip) off += c * xs[k];
    }
    return off;
}

#define GATHER_LOOP(T)                                                                \
    do {                                                                              \
        const T *xp = (const T *)ml_data(x);                                          \
        T *op = (T *)ml_data(out);                                                    \
        ML_PARALLEL_FOR_IF(numel > 32768,                                      \
            for (int64_t r = 0; r < rows; r++) {                               \
                int64_t base = row_offset(r, nd, index->shape, x->strides, dim); \
                const int64_t *ir = ip + r * len;                              \
                T *o = op + r * len;                                           \
                if (dim == nd - 1) {                                           \
                    for (int64_t j = 0; j < len; j++) o[j] = xp[base + ir[j]]; \
                } else {                                                       \
                    for (int64_t j = 0; j < len; j++) o[j] = xp[base + j + ir[j] * xsd]; \
                }                                                              \
            });                                                                \
    } while (0)

static int cpu_index_gather(const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out) {
    int nd = index->ndim;
    int64_t numel = ml_numel(index);
    if (numel == 0) return 0;
    int64_t len = index->shape[nd - 1], rows = numel / len, xsd = x->strides[dim];
    const int64_t *ip = (const int64_t *)ml_data(index);
    switch (ml_dtype_size(x->dtype)) {
    case 1: GATHER_LOOP(uint8_t); break;
    case 4: GATHER_LOOP(uint32_t); break;
    case 8: GATHER_LOOP(uint64_t); break;
    default: return ml_error_set("gather: unsupported dtype %s", ml_dtype_name(x->dtype));
    }
    return 0;
}

/* Rows of the index write distinct rows of out only when dim is the last one;
 * otherwise two rows may hit one element, and the loop stays serial. */
#define SCATTER_LOOP(T)                                                               \
    do {                                                                              \
        T *op = (T *)ml_data(out);                                                    \
        const T *sp = (const T *)ml_data(src);                                        \
        ML_PARALLEL_FOR_IF(numel > 32768 && dim == nd - 1,                     \
            for (int64_t r = 0; r < rows; r++) {                               \
                int64_t base = row_offset(r, nd, index->shape, out->strides, dim); \
                const int64_t *ir = ip + r * len;                              \
                const T *s = sp + r * len;                                     \
                if (dim == nd - 1) {                                           \
                    for (int64_t j = 0; j < len; j++) op[base + ir[j]] += s[j]; \
                } else {                                                       \
                    for (int64_t j = 0; j < len; j++) op[base + j + ir[j] * osd] += s[j]; \
                }                                                              \
            });                                                                \
    } while (0)

static int cpu_index_scatter_add(ml_tensor *out, int dim, const ml_tensor *index, const ml_tensor *src) {
    int nd = index->ndim;
    int64_t numel = ml_numel(index);
    if (numel == 0) return 0;
    int64_t len = index->shape[nd - 1], rows = numel / len, osd = out->strides[dim];
    const int64_t *ip = (const int64_t *)ml_data(index);
    switch (out->dtype) {
    case ML_F32: SCATTER_LOOP(float); break;
    case ML_F64: SCATTER_LOOP(double); break;
    case ML_I64: SCATTER_LOOP(int64_t); break;
    default: return ml_error_set("scatter_add: not defined for %s", ml_dtype_name(out->dtype));
    }
    return 0;
}

/* x seen as [outer, n, inner]; index picks m of the n slices. */
static void geometry(const ml_tensor *x, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *n = x->shape[dim];
}

#define SELECT_LOOP(T)                                                                \
    do {                                                                              \
        const T *xp = (const T *)ml_data(x);                                          \
        T *op = (T *)ml_data(out);                                                    \
        ML_PARALLEL_FOR_IF(outer * m * inner > 32768,                          \
            for (int64_t o = 0; o < outer; o++) {                              \
                const T *xo = xp + o * n * inner;                              \
                T *oo = op + o * m * inner;                                    \
                if (inner == 1) {                                              \
                    for (int64_t i = 0; i < m; i++) oo[i] = xo[ip[i]];         \
                } else {                                                       \
                    for (int64_t i = 0; i < m; i++)                            \
                        memcpy(oo + i * inner, xo + ip[i] * inner, (size_t)inner * sizeof(T)); \
                }                                                              \
            });                                                                \
    } while (0)

static int cpu_index_index_select(const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out) {
    int64_t outer, n, inner, m = ml_numel(index);
    geometry(x, dim, &outer, &n, &inner);
    const int64_t *ip = (const int64_t *)ml_data(index);
    switch (ml_dtype_size(x->dtype)) {
    case 1: SELECT_LOOP(uint8_t); break;
    case 4: SELECT_LOOP(uint32_t); break;
    case 8: SELECT_LOOP(uint64_t); break;
    default: return ml_error_set("index_select: unsupported dtype %s", ml_dtype_name(x->dtype));
    }
    return 0;
}

/* A repeated index adds twice into one slice: the loop over the index stays
 * serial inside each outer block; blocks are independent. */
#define INDEX_ADD_LOOP(T)                                                             \
    do {                                                                              \
        T *op = (T *)ml_data(out);                                                    \
        const T *sp = (const T *)ml_data(src);                                        \
        ML_PARALLEL_FOR_IF(outer * m * inner > 32768 && outer > 1,             \
            for (int64_t o = 0; o < outer; o++) {                              \
                T *oo = op + o * n * inner;                                    \
                const T *so = sp + o * m * inner;                              \
                for (int64_t i = 0; i < m; i++) {                              \
                    T *dst = oo + ip[i] * inner;                               \
                    const T *s = so + i * inner;                               \
                    _Pragma("omp simd")                                        \
                    for (int64_t j = 0; j < inner; j++) dst[j] += s[j];        \
                }                                                              \
            });                                                                \
    } while (0)

static int cpu_index_index_add(ml_tensor *out, int dim, const ml_tensor *index, const ml_tensor *src) {
    int64_t outer, n, inner, m = ml_numel(index);
    geometry(out, dim, &outer, &n, &inner);
    const int64_t *ip = (const int64_t *)ml_data(index);
    switch (out->dtype) {
    case ML_F32: INDEX_ADD_LOOP(float); break;
    case ML_F64: INDEX_ADD_LOOP(double); break;
    case ML_I64: INDEX_ADD_LOOP(int64_t); break;
    default: return ml_error_set("index_add: not defined for %s", ml_dtype_name(out->dtype));
    }
    return 0;
}

#define ONE_HOT_LOOP(T)                                                               \
    do {                                                                              \
        T *op = (T *)ml_data(out);                                                    \
        memset(op, 0, (size_t)(count * n) * sizeof(T));                               \
        for (int64_t i = 0; i < count; i++) op[i * n + lp[i]] = (T)1;                 \
    } while (0)

static int cpu_index_one_hot(const ml_tensor *labels, int64_t n, ml_tensor *out) {
    int64_t count = ml_numel(labels);
    const int64_t *lp = (const int64_t *)ml_data(labels);
    switch (out->dtype) {
    case ML_F32: ONE_HOT_LOOP(float); break;
    case ML_F64: ONE_HOT_LOOP(double); break;
    case ML_I64: ONE_HOT_LOOP(int64_t); break;
    case ML_U8: ONE_HOT_LOOP(uint8_t); break;
    default: return ml_error_set("one_hot: unsupported output dtype %s", ml_dtype_name(out->dtype));
    }
    return 0;
}

const ml_index_ops ml_cpu_index = {ML_INDEX_ENTRIES(ML_BACKEND_ENTRY, cpu_index_)};
