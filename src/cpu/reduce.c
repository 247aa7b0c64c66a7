/* CPU kernels of the reduce family: x seen as [outer, n, inner], reduced over n.
 * Float sums accumulate in double, so a float32 mean over a whole epoch's worth of
 * values does not drift; integer sums accumulate in int64. */
#include <math.h>
#include <stdlib.h>

#include "../backend.h"
#include "../error.h"
#include "iter.h"
#include "parallel.h"

/* acc_T accumulates values of T; out_T is what is stored. With inner > 1 (a sum
 * over a leading dim: the bias gradient's sum over the batch) the n rows of each
 * [n, inner] slab are added row by row into a block of accumulators, so the loads
 * are unit-stride and the adds vectorise; a column at a time (stride inner) was
 * ~10x slower at [128, 64]. */
#define SUM_COLS_BLOCK 256
#define SUM_LOOP(T, ACC_T, OUT_T, divide)                                             \
    do {                                                                              \
        const T *xp = (const T *)ml_data(x);                                          \
        OUT_T *op = (OUT_T *)ml_data(out);                                            \
        if (inner == 1) {                                                             \
            ML_PARALLEL_FOR_IF(outer * n > 32768 && outer > 1,                        \
                for (int64_t o = 0; o < outer; o++) {                                 \
                    ACC_T acc = 0;                                                    \
                    const T *p = xp + o * n;                                          \
                    _Pragma("omp simd reduction(+ : acc)")                            \
                    for (int64_t i = 0; i < n; i++) acc += (ACC_T)p[i];               \
                    op[o] = (OUT_T)((divide) ? acc / (ACC_T)n : acc);                 \
                });                                                                   \
            break;                                                                    \
        }                                                                             \
        const int64_t nblk = (inner + SUM_COLS_BLOCK - 1) / SUM_COLS_BLOCK;           \
        ML_PARALLEL_FOR_IF(outer * n * inner > 32768 && outer * nblk > 1,             \
            for (int64_t ob = 0; ob < outer * nblk; ob++) {                           \
                const int64_t o = ob / nblk, j0 = ob % nblk * SUM_COLS_BLOCK;         \
                const int64_t w = inner - j0 < SUM_COLS_BLOCK ? inner - j0 : SUM_COLS_BLOCK; \
                ACC_T acc[SUM_COLS_BLOCK];                                            \
                for (int64_t j = 0; j < w; j++) acc[j] = 0;                           \
                const T *p = xp + o * n * inner + j0;                                 \
                for (int64_t i = 0; i < n; i++) {                                     \
                    const T *restrict row = p + i * inner;                            \
                    _Pragma("omp simd")                                               \
                    for (int64_t j = 0; j < w; j++) acc[j] += (ACC_T)row[j];          \
                }                                                                     \
                OUT_T *restrict q = op + o * inner + j0;                              \
                for (int64_t j = 0; j < w; j++)                                       \
                    q[j] = (OUT_T)((divide) ? acc[j] / (ACC_T)n : acc[j]);            \
            });                                                                       \
    } while (0)

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
                if (isinf(m)) { op[o * inner + j] = m; continue; }                    \
                for (int64_t i = 0; i < n; i++) s += EXP(p[i * inner] - m);            \
                op[o * inner + j] = (T)(m + LOG(s));                                  \
            }                                                                         \
    } while (0)

static int reduce_sum(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                      ml_tensor *out, bool mean) {
    if (outer == 1 && inner == 1) return reduce_sum_all(x, n, out, mean && ml_dtype_is_float(x->dtype));
    switch (x->dtype) {
    case ML_F32: SUM_LOOP(float, double, float, mean); break;
    case ML_F64: SUM_LOOP(double, double, double, mean); break;
    case ML_I64: SUM_LOOP(int64_t, uint64_t, int64_t, false); break; /* wraps (above) */
    case ML_U8: SUM_LOOP(uint8_t, uint64_t, int64_t, false); break;
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

static int cpu_reduce(ml_reduce_op op, const ml_tensor *x, int64_t outer, int64_t n,
                      int64_t inner, ml_tensor *out, ml_tensor *idx) {
    switch (op) {
    case ML_RED_SUM: return reduce_sum(x, outer, n, inner, out, false);
    case ML_RED_MEAN: return reduce_sum(x, outer, n, inner, out, true);
    case ML_RED_MAX: return reduce_extreme(x, outer, n, inner, out, idx, true, false);
    case ML_RED_MIN: return reduce_extreme(x, outer, n, inner, out, idx, false, false);
    case ML_RED_ARGMAX: return reduce_extreme(x, outer, n, inner, out, NULL, true, true);
    case ML_RED_ARGMIN: return reduce_extreme(x, outer, n, inner, out, NULL, false, true);
    case ML_RED_LOGSUMEXP:
        if (x->dtype == ML_F32) LOGSUMEXP_LOOP(float, exp, log);
        else if (x->dtype == ML_F64) LOGSUMEXP_LOOP(double, exp, log);
        else return ml_error_set("logsumexp: needs a floating point tensor, got %s",
                                 ml_dtype_name(x->dtype));
        return 0;
    default: return ml_error_set("reduce: unknown op %d", (int)op);
    }
}

const ml_reduce_ops ml_cpu_reduce = {.reduce = cpu_reduce};
