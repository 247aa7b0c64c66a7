/* CPU kernels of the reduce family: x seen as [outer, n, inner], reduced over n.
 * Float sums accumulate in double, so a float32 mean over a whole epoch's worth of
 * values does not drift; integer sums accumulate in int64. */
#include <math.h>
#include <stdlib.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"

/* One sum call: x as [outer, n, inner]. */
#define SUM_COLS_BLOCK 256
typedef struct {
    const void *x;
    void *out;
    int64_t n, inner;
    bool mean;
} sum_job;

#define T float
#define ACC_T double
#define OUT_T float
#define SUFFIX f32
#include "reduce_sum.h"
#undef T
#undef ACC_T
#undef OUT_T
#undef SUFFIX
#define T double
#define ACC_T double
#define OUT_T double
#define SUFFIX f64
#include "reduce_sum.h"
#undef T
#undef ACC_T
#undef OUT_T
#undef SUFFIX
#define T int64_t
#define ACC_T uint64_t /* wraps as torch's int64 sums (int64_t overflow is undefined) */
#define OUT_T int64_t
#define SUFFIX i64
#include "reduce_sum.h"
#undef T
#undef ACC_T
#undef OUT_T
#undef SUFFIX
#define T uint8_t
#define ACC_T uint64_t
#define OUT_T int64_t
#define SUFFIX u8
#include "reduce_sum.h"
#undef T
#undef ACC_T
#undef OUT_T
#undef SUFFIX

/* Sums (or means) over n of [outer, n, inner] with outer * inner > 1. */
static void reduce_sum_lines(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                             ml_tensor *out, bool mean) {
    static const ml_range_fn rows[] = {[ML_F32] = sum_rows_f32, [ML_F64] = sum_rows_f64,
                                       [ML_I64] = sum_rows_i64, [ML_U8] = sum_rows_u8};
    static const ml_range_fn cols[] = {[ML_F32] = sum_cols_f32, [ML_F64] = sum_cols_f64,
                                       [ML_I64] = sum_cols_i64, [ML_U8] = sum_cols_u8};
    sum_job jb = {ml_data(x), ml_data(out), n, inner, mean && ml_dtype_is_float(x->dtype)};
    if (inner == 1) {
        ml_parallel_for(outer, ML_PAR_MIN / (n > 0 ? n : 1) + 1, rows[x->dtype], &jb);
    } else {
        /* in parallel when the whole is ML_PAR_MIN elements or more */
        const int64_t blocks = outer * ml_nblocks(inner, SUM_COLS_BLOCK);
        ml_parallel_for(blocks, outer * n * inner > ML_PAR_MIN ? 2 : blocks + 1, cols[x->dtype], &jb);
    }
}

/* The whole-tensor sum of a long vector: blocks of ML_SUM_BLOCK elements, each
 * block's sum in its own slot, the slots added in order, so the bits do not depend
 * on the threads (parallel.h). Floats accumulate in double, integers in int64. */
typedef struct {
    const void *x;
    void *slot; /* double or int64_t per block */
} sum_all_job;

#define SUM_BLOCK_FN(NAME, T, ACC_T)                                                  \
    static void NAME(void *ctx, int64_t blk, int64_t lo, int64_t hi) {                \
        const sum_all_job *j = ctx;                                                   \
        const T *p = (const T *)j->x;                                                 \
        ACC_T acc = 0;                                                                \
        _Pragma("omp simd reduction(+ : acc)")                                        \
        for (int64_t i = lo; i < hi; i++) acc += (ACC_T)p[i];                         \
        ((ACC_T *)j->slot)[blk] = acc;                                                \
    }
/* Integer sums add in uint64_t: an int64 sum that overflows wraps, as torch's does,
 * where adding in int64_t was undefined (UBSan; found by fuzz_safetensors). */
SUM_BLOCK_FN(sum_block_f32, float, double)
SUM_BLOCK_FN(sum_block_f64, double, double)
SUM_BLOCK_FN(sum_block_i64, int64_t, uint64_t)
SUM_BLOCK_FN(sum_block_u8, uint8_t, uint64_t)

/* Sums of the blocks of x (n elements) into slot (ml_nblocks(n, ML_SUM_BLOCK) of
 * double or uint64_t, by x's dtype). */
static void sum_blocks(const ml_tensor *x, int64_t n, void *slot) {
    static const ml_block_fn fns[] = {[ML_F32] = sum_block_f32, [ML_F64] = sum_block_f64,
                                      [ML_I64] = sum_block_i64, [ML_U8] = sum_block_u8};
    sum_all_job job = {ml_data(x), slot};
    ml_parallel_blocks(n, ML_SUM_BLOCK, ML_PAR_MIN, fns[x->dtype], &job);
}

#define SLOTS_ON_STACK 256
static int reduce_sum_all(const ml_tensor *x, int64_t n, ml_tensor *out, bool mean) {
    const int64_t nb = ml_nblocks(n, ML_SUM_BLOCK);
    int64_t stack[SLOTS_ON_STACK]; /* doubles or int64s: both 8 bytes */
    void *slot = nb <= SLOTS_ON_STACK ? (void *)stack : malloc((size_t)nb * 8);
    if (!slot) return ml_error_set("sum: out of memory for %lld partial sums", (long long)nb);
    sum_blocks(x, n, slot);
    switch (x->dtype) {
    case ML_F32:
    case ML_F64: {
        double s = ml_sum_slots((const double *)slot, nb);
        if (mean) s /= (double)n;
        if (x->dtype == ML_F32) *(float *)ml_data(out) = (float)s;
        else *(double *)ml_data(out) = s;
        break;
    }
    default: {
        uint64_t s = 0; /* wraps, as the blocks did */
        for (int64_t b = 0; b < nb; b++) s += ((const uint64_t *)slot)[b];
        *(int64_t *)ml_data(out) = (int64_t)s;
        break;
    }
    }
    if (slot != (void *)stack) free(slot);
    return 0;
}

/* Max/min and their positions; a NaN wins and stops the search, as in torch. */
#define EXTREME_LOOP(T, better)                                                       \
    do {                                                                              \
        const T *xp = (const T *)ml_data(x);                                          \
        for (int64_t o = 0; o < outer; o++)                                           \
            for (int64_t j = 0; j < inner; j++) {                                     \
                const T *p = xp + o * n * inner + j;                                  \
                T best = p[0];                                                        \
                int64_t at = 0;                                                       \
                for (int64_t i = 1; i < n && best == best; i++) {                     \
                    T v = p[i * inner];                                               \
                    if (v != v || (better)) { best = v; at = i; }                     \
                }                                                                     \
                int64_t k = o * inner + j;                                            \
                if (want_index_only) ((int64_t *)ml_data(out))[k] = at;               \
                else {                                                                \
                    ((T *)ml_data(out))[k] = best;                                    \
                    if (idx) ((int64_t *)ml_data(idx))[k] = at;                       \
                }                                                                     \
            }                                                                         \
    } while (0)

#define LOGSUMEXP_LOOP(T, EXP, LOG)                                                   \
    do {                                                                              \
        const T *xp = (const T *)ml_data(x);                                          \
        T *op = (T *)ml_data(out);                                                    \
        for (int64_t o = 0; o < outer; o++)                                           \
            for (int64_t j = 0; j < inner; j++) {                                     \
                const T *p = xp + o * n * inner + j;                                  \
                T m = -INFINITY;                                                      \
                for (int64_t i = 0; i < n; i++) m = p[i * inner] > m ? p[i * inner] : m; \
                double s = 0;                                                         \
                if (isinf(m)) { /* all -inf, or a +inf: the max, unless a NaN (torch) */ \
                    for (int64_t i = 0; i < n; i++) if (p[i * inner] != p[i * inner]) m = NAN; \
                    op[o * inner + j] = m;                                            \
                    continue;                                                         \
                }                                                                     \
                for (int64_t i = 0; i < n; i++) s += EXP(p[i * inner] - m);            \
                op[o * inner + j] = (T)(m + LOG(s));                                  \
            }                                                                         \
    } while (0)

static int reduce_sum(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                      ml_tensor *out, bool mean) {
    if (outer == 1 && inner == 1) return reduce_sum_all(x, n, out, mean && ml_dtype_is_float(x->dtype));
    switch (x->dtype) {
    case ML_F32:
    case ML_F64:
    case ML_I64:
    case ML_U8: reduce_sum_lines(x, outer, n, inner, out, mean && ml_dtype_is_float(x->dtype)); break;
    default: break;
    }
    return 0;
}

static int reduce_extreme(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                          ml_tensor *out, ml_tensor *idx, bool is_max, bool want_index_only) {
    if (n == 0) return ml_error_set("max/min: cannot reduce over a dim of size 0");
#define BOTH(T) if (is_max) EXTREME_LOOP(T, v > best); else EXTREME_LOOP(T, v < best)
    switch (x->dtype) {
    case ML_F32: BOTH(float); break;
    case ML_F64: BOTH(double); break;
    case ML_I64: BOTH(int64_t); break;
    case ML_U8: BOTH(uint8_t); break;
    default: break;
    }
#undef BOTH
    return 0;
}

/* all/any: out = 1 when every (all) / some (any) element along n is nonzero; a NaN
 * is nonzero. One pass per line; an empty line gives all 1, any 0. */
#define TRUTH_FN(SUF, T)                                                              \
    static void truth_##SUF(const T *x, int64_t outer, int64_t n, int64_t inner,      \
                            uint8_t *out, bool any) {                                 \
        for (int64_t o = 0; o < outer; o++)                                           \
            for (int64_t j = 0; j < inner; j++) {                                     \
                const T *p = x + o * n * inner + j;                                   \
                bool r = !any;                                                        \
                for (int64_t i = 0; i < n && r != any; i++) r = p[i * inner] != 0;    \
                out[o * inner + j] = r;                                               \
            }                                                                         \
    }
TRUTH_FN(f32, float)
TRUTH_FN(f64, double)
TRUTH_FN(i64, int64_t)
TRUTH_FN(u8, uint8_t)
#undef TRUTH_FN

static int reduce_truth(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                        ml_tensor *out, bool any) {
    uint8_t *o = (uint8_t *)ml_data(out);
    switch (x->dtype) {
    case ML_F32: truth_f32((const float *)ml_data(x), outer, n, inner, o, any); return 0;
    case ML_F64: truth_f64((const double *)ml_data(x), outer, n, inner, o, any); return 0;
    case ML_I64: truth_i64((const int64_t *)ml_data(x), outer, n, inner, o, any); return 0;
    case ML_U8: truth_u8((const uint8_t *)ml_data(x), outer, n, inner, o, any); return 0;
    default: return ml_error_set("%s: not defined for %s", any ? "any" : "all", ml_dtype_name(x->dtype));
    }
}

/* The family's entries, one per reduction of ML_REDUCE_OPS. */
static int cpu_reduce_sum(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                          ml_tensor *out, ml_tensor *idx) {
    (void)idx;
    return reduce_sum(x, outer, n, inner, out, false);
}
static int cpu_reduce_mean(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                           ml_tensor *out, ml_tensor *idx) {
    (void)idx;
    return reduce_sum(x, outer, n, inner, out, true);
}
static int cpu_reduce_max(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                          ml_tensor *out, ml_tensor *idx) {
    return reduce_extreme(x, outer, n, inner, out, idx, true, false);
}
static int cpu_reduce_min(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                          ml_tensor *out, ml_tensor *idx) {
    return reduce_extreme(x, outer, n, inner, out, idx, false, false);
}
static int cpu_reduce_argmax(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                             ml_tensor *out, ml_tensor *idx) {
    (void)idx;
    return reduce_extreme(x, outer, n, inner, out, NULL, true, true);
}
static int cpu_reduce_argmin(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                             ml_tensor *out, ml_tensor *idx) {
    (void)idx;
    return reduce_extreme(x, outer, n, inner, out, NULL, false, true);
}
static int cpu_reduce_logsumexp(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                                ml_tensor *out, ml_tensor *idx) {
    (void)idx;
    if (x->dtype == ML_F32) LOGSUMEXP_LOOP(float, exp, log);
    else if (x->dtype == ML_F64) LOGSUMEXP_LOOP(double, exp, log);
    else return ml_error_set("logsumexp: needs a floating point tensor, got %s",
                             ml_dtype_name(x->dtype));
    return 0;
}

static int cpu_reduce_all(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                          ml_tensor *out, ml_tensor *idx) {
    (void)idx;
    return reduce_truth(x, outer, n, inner, out, false);
}
static int cpu_reduce_any(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                          ml_tensor *out, ml_tensor *idx) {
    (void)idx;
    return reduce_truth(x, outer, n, inner, out, true);
}

#define ENTRY(NAME, name, ...) cpu_reduce_##name,
const ml_reduce_ops ml_cpu_reduce = {ML_REDUCE_OPS(ENTRY)};
#undef ENTRY
