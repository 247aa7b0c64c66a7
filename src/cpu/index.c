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
#include "parallel.h"

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

/* One call's operands and geometry (x is src for the adds). */
typedef struct {
    const ml_tensor *x, *index, *out;
    const int64_t *ip;
    int dim;
    int64_t len, stride;  /* gather/scatter: the index's last dim, x's (out's) stride of dim */
    int64_t n, m, inner;  /* select/add: x as [outer, n, inner], m indices */
} index_job;

#define T uint8_t
#define SUFFIX u8
#include "index_move.h"
#undef T
#undef SUFFIX
#define T uint32_t
#define SUFFIX u32
#include "index_move.h"
#undef T
#undef SUFFIX
#define T uint64_t
#define SUFFIX u64
#include "index_move.h"
#undef T
#undef SUFFIX

#define T float
#define SUFFIX f32
#include "index_add.h"
#undef T
#undef SUFFIX
#define T double
#define SUFFIX f64
#include "index_add.h"
#undef T
#undef SUFFIX
#define T int64_t
#define SUFFIX i64
#include "index_add.h"
#undef T
#undef SUFFIX

static int cpu_index_gather(const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out) {
    const int nd = index->ndim;
    const int64_t numel = ml_numel(index);
    if (numel == 0) return 0;
    index_job jb = {.x = x, .index = index, .out = out, .ip = ml_data(index), .dim = dim,
                    .len = index->shape[nd - 1], .stride = x->strides[dim]};
    ml_range_fn fn;
    switch (ml_dtype_size(x->dtype)) {
    case 1: fn = gather_rows_u8; break;
    case 4: fn = gather_rows_u32; break;
    case 8: fn = gather_rows_u64; break;
    default: return ml_error_set("gather: unsupported dtype %s", ml_dtype_name(x->dtype));
    }
    ml_parallel_for(numel / jb.len, ML_PAR_MIN / jb.len + 1, fn, &jb);
    return 0;
}

/* Rows of the index write distinct rows of out only when dim is the last one;
 * otherwise two rows may hit one element, and the loop stays on one thread. */
static int cpu_index_scatter_add(ml_tensor *out, int dim, const ml_tensor *index, const ml_tensor *src) {
    const int nd = index->ndim;
    const int64_t numel = ml_numel(index);
    if (numel == 0) return 0;
    index_job jb = {.x = src, .index = index, .out = out, .ip = ml_data(index), .dim = dim,
                    .len = index->shape[nd - 1], .stride = out->strides[dim]};
    ml_range_fn fn;
    switch (out->dtype) {
    case ML_F32: fn = scatter_rows_f32; break;
    case ML_F64: fn = scatter_rows_f64; break;
    case ML_I64: fn = scatter_rows_i64; break;
    default: return ml_error_set("scatter_add: not defined for %s", ml_dtype_name(out->dtype));
    }
    const int64_t rows = numel / jb.len;
    ml_parallel_for(rows, dim == nd - 1 ? ML_PAR_MIN / jb.len + 1 : rows + 1, fn, &jb);
    return 0;
}

/* x seen as [outer, n, inner]; index picks m of the n slices. */
static int64_t geometry(const ml_tensor *x, int dim, index_job *jb) {
    int64_t outer = 1;
    jb->inner = 1;
    for (int i = 0; i < dim; i++) outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) jb->inner *= x->shape[i];
    jb->n = x->shape[dim];
    return outer;
}

static int cpu_index_index_select(const ml_tensor *x, int dim, const ml_tensor *index, ml_tensor *out) {
    index_job jb = {.x = x, .index = index, .out = out, .ip = ml_data(index), .dim = dim,
                    .m = ml_numel(index)};
    const int64_t outer = geometry(x, dim, &jb);
    ml_range_fn fn;
    switch (ml_dtype_size(x->dtype)) {
    case 1: fn = select_blocks_u8; break;
    case 4: fn = select_blocks_u32; break;
    case 8: fn = select_blocks_u64; break;
    default: return ml_error_set("index_select: unsupported dtype %s", ml_dtype_name(x->dtype));
    }
    const int64_t per = jb.m * jb.inner > 0 ? jb.m * jb.inner : 1;
    ml_parallel_for(outer, ML_PAR_MIN / per + 1, fn, &jb);
    return 0;
}

static int cpu_index_index_add(ml_tensor *out, int dim, const ml_tensor *index, const ml_tensor *src) {
    index_job jb = {.x = src, .index = index, .out = out, .ip = ml_data(index), .dim = dim,
                    .m = ml_numel(index)};
    const int64_t outer = geometry(out, dim, &jb);
    ml_range_fn fn;
    switch (out->dtype) {
    case ML_F32: fn = index_add_blocks_f32; break;
    case ML_F64: fn = index_add_blocks_f64; break;
    case ML_I64: fn = index_add_blocks_i64; break;
    default: return ml_error_set("index_add: not defined for %s", ml_dtype_name(out->dtype));
    }
    const int64_t per = jb.m * jb.inner > 0 ? jb.m * jb.inner : 1;
    ml_parallel_for(outer, ML_PAR_MIN / per + 1, fn, &jb);
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
