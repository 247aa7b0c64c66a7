/* CPU kernels of the sort family (contract: src/backend/sort.h): a stable merge
 * sort of each line, and the cumulative sum of each line in its order. Lines run
 * in parallel (ml_parallel_for); each line is one thread's, so the results do not
 * depend on the threads. The typed loops come from sort_type.h, once per dtype. */
#include <stdatomic.h>
#include <stdlib.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"
#include "scalar_math.h"

#define ML_CAT_(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT_(a, b)

/* One call over lines: x as [outer, n, inner]; values/indices (sort) or values as
 * cumsum's output; desc: descending (sort) or reverse (cumsum). */
typedef struct {
    const void *x;
    void *values;
    int64_t *indices;
    int64_t n, inner;
    bool desc;
    atomic_int failed; /* a scratch allocation failed */
} sort_job;

_Static_assert(ML_NDTYPES == 4, "sort.c instantiates the kernels for 4 dtypes");

#define T float
#define ACC double
#define OUT float
#define SUF f32
#include "sort_type.h"
#undef T
#undef ACC
#undef OUT
#undef SUF

#define T double
#define ACC double
#define OUT double
#define SUF f64
#include "sort_type.h"
#undef T
#undef ACC
#undef OUT
#undef SUF

#define T int64_t
#define ACC int64_t
#define OUT int64_t
#define SUF i64
#include "sort_type.h"
#undef T
#undef ACC
#undef OUT
#undef SUF

#define T uint8_t
#define ACC int64_t
#define OUT int64_t
#define SUF u8
#include "sort_type.h"
#undef T
#undef ACC
#undef OUT
#undef SUF

static const ml_range_fn sort_fns[ML_NDTYPES] = {
    [ML_F32] = sort_lines_f32, [ML_F64] = sort_lines_f64, [ML_I64] = sort_lines_i64,
    [ML_U8] = sort_lines_u8};
static const ml_range_fn cumsum_fns[ML_NDTYPES] = {
    [ML_F32] = cumsum_lines_f32, [ML_F64] = cumsum_lines_f64, [ML_I64] = cumsum_lines_i64,
    [ML_U8] = cumsum_lines_u8};

/* Runs fn over the outer * inner lines of n elements: in parallel from ML_PAR_MIN
 * elements of work. */
static void run_lines(ml_range_fn fn, sort_job *job, int64_t outer, int64_t n, int64_t inner) {
    const int64_t lines = outer * inner;
    ml_parallel_for(lines, ML_PAR_MIN / (n > 0 ? n : 1) + 1, fn, job);
}

static int cpu_sort_sort(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                         bool descending, ml_tensor *values, ml_tensor *indices) {
    if ((unsigned)x->dtype >= ML_NDTYPES || values->dtype != x->dtype || indices->dtype != ML_I64)
        return ml_error_set("sort: not defined for %s", ml_dtype_name(x->dtype));
    if (n == 0 || outer * inner == 0) return 0;
    sort_job job = {ml_data(x), ml_data(values), (int64_t *)ml_data(indices), n, inner,
                    descending, 0};
    run_lines(sort_fns[x->dtype], &job, outer, n, inner);
    if (atomic_load(&job.failed))
        return ml_error_set("sort: out of memory for the scratch of lines of %lld elements",
                            (long long)n);
    return 0;
}

static int cpu_sort_cumsum(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                           bool reverse, ml_tensor *out) {
    const ml_dtype want = ml_dtype_is_float(x->dtype) ? x->dtype : ML_I64;
    if ((unsigned)x->dtype >= ML_NDTYPES || out->dtype != want)
        return ml_error_set("cumsum: not defined from %s to %s", ml_dtype_name(x->dtype),
                            ml_dtype_name(out->dtype));
    if (n == 0 || outer * inner == 0) return 0;
    sort_job job = {ml_data(x), ml_data(out), NULL, n, inner, reverse, 0};
    run_lines(cumsum_fns[x->dtype], &job, outer, n, inner);
    return 0;
}

const ml_sort_ops ml_cpu_sort = {ML_SORT_ENTRIES(ML_BACKEND_ENTRY, cpu_sort_)};
