/* CPU kernels of the data family: batch rows gathered from a dataset's storage.
 * A batch is small (128 x 784 for MNIST) and bound by the misses of its random
 * rows: ~35 us on one core. Two threads split a batch of 64k elements and more:
 * each core then has its own misses in flight, and MNIST's epoch of gathers went
 * from ~16 to ~10 ms (a fork/join to a spinning worker costs a few us). */
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "../threads.h"
#include "iter.h"

#include <omp.h>

#define PAR_MIN (1 << 16)

static int64_t row_len(const ml_tensor *t) {
    int64_t n = 1;
    for (int i = 1; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* Rows are read in a random order (a shuffled epoch): the next rows are
 * prefetched while one is converted, or each row starts with a cache/TLB miss. */
#define PREFETCH_AHEAD 4
static inline void prefetch_row(const void *p, size_t nbytes) {
    const char *c = (const char *)p;
    for (size_t k = 0; k < nbytes; k += 64) __builtin_prefetch(c + k, 0, 0);
}

/* The next batch's rows, asked for after this batch's gather: the step's work
 * runs while they arrive (into L2, then L3 as they age), and the next gather
 * finds them in the cache instead of waiting on a miss per row. A shuffled
 * MNIST batch from memory: ~25 us on one core; prefetched a step ahead, ~11. */
static inline void prefetch_row_for_later(const void *p, size_t nbytes) {
    const char *c = (const char *)p;
    for (size_t k = 0; k < nbytes; k += 64) __builtin_prefetch(c + k, 0, 1);
}

/* The value of byte v is (T)(v * scale + shift) computed in double. For float32
 * the same numbers come faster from float arithmetic when it rounds alike for
 * all 256 bytes (checked up front): ToTensor's v / 255 is torchvision's float
 * division, which a multiply by the reciprocal and one fma correction give exactly
 * for every byte (checked) at a fraction of a vector division's cost (the
 * division bound the gather of a batch); other scales take a float fma when
 * exact, else a division or double. */
enum { PATH_DOUBLE, PATH_DIV, PATH_RCP, PATH_FMA };

/* v / d by the reciprocal r = 1 / d: q = v r, then q + (v - q d) r. */
static inline float div_by_rcp(float v, float d, float r) {
    const float q = v * r;
    return fmaf(fmaf(-q, d, v), r, q);
}

/* The check of all 256 bytes, made again only when scale or shift change (a
 * DataLoader asks with the same two for every batch). */
static int float_path(double scale, double shift, float *div, float *rcp, float *a, float *c) {
    static _Thread_local struct { double scale, shift; int path; bool valid; } last;
    *div = (float)(1.0 / scale);
    *rcp = 1.0f / *div;
    *a = (float)scale;
    *c = (float)shift;
    if (last.valid && last.scale == scale && last.shift == shift) return last.path;
    bool div_ok = shift == 0 && *div == (float)(int32_t)*div, rcp_ok = div_ok, fma_ok = true;
    for (int v = 0; v < 256; v++) {
        float want = (float)((double)v * scale + shift);
        if (div_ok && (float)v / *div != want) div_ok = false;
        if (rcp_ok && div_by_rcp((float)v, *div, *rcp) != (float)v / *div) rcp_ok = false;
        if (fma_ok && fmaf((float)v, *a, *c) != want) fma_ok = false;
    }
    const int path = div_ok ? (rcp_ok ? PATH_RCP : PATH_DIV) : fma_ok ? PATH_FMA : PATH_DOUBLE;
    last.scale = scale;
    last.shift = shift;
    last.path = path;
    last.valid = true;
    return path;
}

/* The rows, then the next batch's prefetched: both loops split statically over
 * the same count, so a thread prefetches the positions it will gather next time
 * (into its own core's cache). */
#define GATHER_ROWS(T, EXPR)                                                     \
    for (int64_t b = 0; b < b_n; b++) {                                          \
        if (b + PREFETCH_AHEAD < b_n)                                            \
            prefetch_row(sp + idx[b + PREFETCH_AHEAD] * row, (size_t)row);       \
        const uint8_t *restrict s = sp + idx[b] * row;                           \
        T *restrict o = op + b * row;                                            \
        for (int64_t j = 0; j < row; j++) o[j] = (EXPR);                         \
    }
#define PREFETCH_NEXT_ROWS                                                       \
    for (int64_t b = 0; b < b_n; b++)                                            \
        if (b < n_next) prefetch_row_for_later(sp + nidx[b] * row, (size_t)row);

#define GATHER_SCALED(T, EXPR)                                                   \
    do {                                                                         \
        T *op = (T *)ml_data(out);                                               \
        const int team = b_n * row > PAR_MIN ? ml_team_threads() : 1;            \
        if (team > 1) {                                                          \
            const double t0 = ml_clock_seconds();                                \
            double own = 0;                                                      \
            _Pragma("omp parallel num_threads(team)")                            \
            {                                                                    \
                _Pragma("omp for schedule(static) nowait") GATHER_ROWS(T, EXPR)  \
                _Pragma("omp for schedule(static) nowait") PREFETCH_NEXT_ROWS    \
                if (omp_get_thread_num() == 0) own = ml_clock_seconds() - t0;    \
            }                                                                    \
            ml_team_report(ml_clock_seconds() - t0, own);                        \
        } else {                                                                 \
            GATHER_ROWS(T, EXPR)                                                 \
            PREFETCH_NEXT_ROWS                                                   \
        }                                                                        \
    } while (0)

static int cpu_data_gather_scaled(const ml_tensor *src, const ml_tensor *indices, double scale,
                             double shift, ml_tensor *out, const ml_tensor *next) {
    const int64_t *idx = (const int64_t *)ml_data(indices);
    const int64_t *nidx = next ? (const int64_t *)ml_data(next) : NULL;
    const uint8_t *sp = (const uint8_t *)ml_data(src);
    int64_t b_n = ml_numel(indices), row = row_len(src), n_next = next ? ml_numel(next) : 0;
    for (int64_t b = 0; b < PREFETCH_AHEAD && b < b_n; b++)
        prefetch_row(sp + idx[b] * row, (size_t)row);
    if (out->dtype == ML_F32) {
        float div, rcp, a, c;
        switch (float_path(scale, shift, &div, &rcp, &a, &c)) {
        case PATH_RCP: GATHER_SCALED(float, div_by_rcp((float)s[j], div, rcp)); break;
        case PATH_DIV: GATHER_SCALED(float, (float)s[j] / div); break;
        case PATH_FMA: GATHER_SCALED(float, fmaf((float)s[j], a, c)); break;
        default: GATHER_SCALED(float, (float)((double)s[j] * scale + shift)); break;
        }
    } else if (out->dtype == ML_F64) {
        GATHER_SCALED(double, (double)s[j] * scale + shift);
    } else {
        return ml_error_set("gather_scaled: output must be float32 or float64, got %s",
                            ml_dtype_name(out->dtype));
    }
    return 0;
}

#define ONE_HOT(L, T)                                                            \
    do {                                                                         \
        const L *lp = (const L *)ml_data(labels);                                \
        T *op = (T *)ml_data(out);                                               \
        for (int64_t b = 0; b < b_n; b++) {                                      \
            int64_t c = (int64_t)lp[idx[b]];                                     \
            if (c < 0 || c >= n_classes) {                                       \
                bad = c;                                                         \
                break;                                                           \
            }                                                                    \
            T *o = op + b * n_classes;                                           \
            for (int64_t k = 0; k < n_classes; k++) o[k] = 0;                    \
            o[c] = 1;                                                            \
        }                                                                        \
    } while (0)

static int cpu_data_gather_one_hot(const ml_tensor *labels, const ml_tensor *indices,
                              int64_t n_classes, ml_tensor *out) {
    const int64_t *idx = (const int64_t *)ml_data(indices);
    int64_t b_n = ml_numel(indices);
    int64_t bad = -1;
    bool u8 = labels->dtype == ML_U8;
    if (labels->dtype != ML_U8 && labels->dtype != ML_I64)
        return ml_error_set("one_hot: labels must be uint8 or int64, got %s",
                            ml_dtype_name(labels->dtype));
    if (out->dtype == ML_F32) {
        if (u8) ONE_HOT(uint8_t, float);
        else ONE_HOT(int64_t, float);
    } else if (out->dtype == ML_F64) {
        if (u8) ONE_HOT(uint8_t, double);
        else ONE_HOT(int64_t, double);
    } else if (out->dtype == ML_I64) {
        if (u8) ONE_HOT(uint8_t, int64_t);
        else ONE_HOT(int64_t, int64_t);
    } else {
        return ml_error_set("one_hot: output must be float32, float64 or int64, got %s",
                            ml_dtype_name(out->dtype));
    }
    if (bad != -1)
        return ml_error_set("one_hot: class id %lld is out of range for %lld classes (ids are "
                            "0-based, 0 to %lld)", (long long)bad, (long long)n_classes,
                            (long long)n_classes - 1);
    return 0;
}

static int cpu_data_gather_labels(const ml_tensor *labels, const ml_tensor *indices, ml_tensor *out) {
    const int64_t *idx = (const int64_t *)ml_data(indices);
    int64_t b_n = ml_numel(indices);
    int64_t *op = (int64_t *)ml_data(out);
    if (labels->dtype == ML_U8) {
        const uint8_t *lp = (const uint8_t *)ml_data(labels);
        for (int64_t b = 0; b < b_n; b++) op[b] = lp[idx[b]];
    } else if (labels->dtype == ML_I64) {
        const int64_t *lp = (const int64_t *)ml_data(labels);
        for (int64_t b = 0; b < b_n; b++) op[b] = lp[idx[b]];
    } else {
        return ml_error_set("gather_labels: labels must be uint8 or int64, got %s",
                            ml_dtype_name(labels->dtype));
    }
    return 0;
}

static int cpu_data_gather_rows(const ml_tensor *src, const ml_tensor *indices, ml_tensor *out) {
    const int64_t *idx = (const int64_t *)ml_data(indices);
    int64_t b_n = ml_numel(indices);
    size_t rb = (size_t)row_len(src) * ml_dtype_size(src->dtype);
    const char *sp = (const char *)ml_data(src);
    char *op = (char *)ml_data(out);
    _Pragma("omp parallel for if ((int64_t)rb * b_n > 4 * PAR_MIN) schedule(static)")
    for (int64_t b = 0; b < b_n; b++) {
        if (b + PREFETCH_AHEAD < b_n) prefetch_row(sp + (size_t)idx[b + PREFETCH_AHEAD] * rb, rb);
        memcpy(op + (size_t)b * rb, sp + (size_t)idx[b] * rb, rb);
    }
    return 0;
}

const ml_data_ops ml_cpu_data = {ML_DATA_ENTRIES(ML_BACKEND_ENTRY, cpu_data_)};
