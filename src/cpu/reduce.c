/* CPU kernels of the reduce family: x seen as [outer, n, inner], reduced over n.
 * Float sums accumulate in double, so a float32 mean over a whole epoch's worth of
 * values does not drift; integer sums accumulate in int64. */
#include <math.h>

#include "../backend.h"
#include "../error.h"
#include "iter.h"

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

/* The whole-tensor sum of a long vector, split across threads. */
#define SUM_ALL(T, ACC_T, OUT_T, divide)                                              \
    do {                                                                              \
        const T *p = (const T *)ml_data(x);                                           \
        ACC_T acc = 0;                                                                \
        if (n > ML_PARALLEL_MIN) {                                                    \
            _Pragma("omp parallel for simd reduction(+ : acc)")                       \
            for (int64_t i = 0; i < n; i++) acc += (ACC_T)p[i];                       \
        } else {                                                                      \
            _Pragma("omp simd reduction(+ : acc)")                                    \
            for (int64_t i = 0; i < n; i++) acc += (ACC_T)p[i];                       \
        }                                                                             \
        *(OUT_T *)ml_data(out) = (OUT_T)((divide) ? acc / (ACC_T)n : acc);            \
    } while (0)

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
    bool all = outer == 1 && inner == 1;
    switch (x->dtype) {
    case ML_F32:
        if (all) SUM_ALL(float, double, float, mean);
        else SUM_LOOP(float, double, float, mean);
        break;
    case ML_F64:
        if (all) SUM_ALL(double, double, double, mean);
        else SUM_LOOP(double, double, double, mean);
        break;
    case ML_I64:
        if (all) SUM_ALL(int64_t, int64_t, int64_t, false);
        else SUM_LOOP(int64_t, int64_t, int64_t, false);
        break;
    case ML_U8:
        if (all) SUM_ALL(uint8_t, int64_t, int64_t, false);
        else SUM_LOOP(uint8_t, int64_t, int64_t, false);
        break;
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
