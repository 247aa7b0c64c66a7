/* CPU kernels of the data family: batch rows gathered from a dataset's storage.
 * A batch is small (128 x 784 for MNIST) and bound by the misses of its random
 * rows: ~35 us on one core. Two threads split a batch of 64k elements and more:
 * each core then has its own misses in flight, and MNIST's epoch of gathers went
 * from ~16 to ~10 ms (a fork/join to a spinning worker costs a few us). */
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"

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

/* One gather_scaled call. */
typedef struct {
    const uint8_t *src;
    const int64_t *idx, *next; /* this batch's rows; the next batch's (or NULL) */
    int64_t n, n_next, row;    /* rows in this batch and the next, elements a row */
    void *out;
    int path; /* float32: PATH_*; float64 output: -1 */
    double scale, shift;
    float div, rcp, a, c;
} gather_job;

/* Row b of the batch converted, by the job's path (the switch is per row: a row is
 * hundreds of elements, each path's loop vectorises). */
static void gather_row(const gather_job *g, int64_t b) {
    const uint8_t *restrict s = g->src + g->idx[b] * g->row;
    const int64_t n = g->row;
    if (g->path < 0) {
        double *restrict o = (double *)g->out + b * n;
        for (int64_t j = 0; j < n; j++) o[j] = (double)s[j] * g->scale + g->shift;
        return;
    }
    float *restrict o = (float *)g->out + b * n;
    switch (g->path) {
    case PATH_RCP:
        for (int64_t j = 0; j < n; j++) o[j] = div_by_rcp((float)s[j], g->div, g->rcp);
        break;
    case PATH_DIV:
        for (int64_t j = 0; j < n; j++) o[j] = (float)s[j] / g->div;
        break;
    case PATH_FMA:
        for (int64_t j = 0; j < n; j++) o[j] = fmaf((float)s[j], g->a, g->c);
        break;
    default:
        for (int64_t j = 0; j < n; j++) o[j] = (float)((double)s[j] * g->scale + g->shift);
        break;
    }
}

/* Rows [b0, b1): gathered, then the same positions of the next batch prefetched,
 * so that a thread prefetches what it will gather next time (the split is by the
 * batch size alone), into its own core's cache. */
static void gather_range(void *ctx, int64_t b0, int64_t b1) {
    const gather_job *g = ctx;
    const size_t rb = (size_t)g->row;
    for (int64_t b = b0; b < b1; b++) {
        if (b + PREFETCH_AHEAD < g->n) prefetch_row(g->src + g->idx[b + PREFETCH_AHEAD] * g->row, rb);
        gather_row(g, b);
    }
    for (int64_t b = b0; b < b1 && b < g->n_next; b++)
        prefetch_row_for_later(g->src + g->next[b] * g->row, rb);
}

static int cpu_data_gather_scaled(const ml_tensor *src, const ml_tensor *indices, double scale,
                             double shift, ml_tensor *out, const ml_tensor *next) {
    gather_job g = {.src = ml_data(src), .idx = ml_data(indices),
                    .next = next ? ml_data(next) : NULL, .n_next = next ? ml_numel(next) : 0,
                    .n = ml_numel(indices), .row = row_len(src), .out = ml_data(out),
                    .scale = scale, .shift = shift};
    const int64_t b_n = g.n;
    for (int64_t b = 0; b < PREFETCH_AHEAD && b < b_n; b++)
        prefetch_row(g.src + g.idx[b] * g.row, (size_t)g.row);
    if (out->dtype == ML_F32) g.path = float_path(scale, shift, &g.div, &g.rcp, &g.a, &g.c);
    else if (out->dtype == ML_F64) g.path = -1;
    else
        return ml_error_set("gather_scaled: output must be float32 or float64, got %s",
                            ml_dtype_name(out->dtype));
    ml_parallel_for(b_n, ML_PAR_MIN_GATHER / (g.row > 0 ? g.row : 1) + 1, gather_range, &g);
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

typedef struct {
    const char *src;
    char *out;
    const int64_t *idx;
    int64_t n;  /* rows */
    size_t rb;  /* bytes a row */
} copy_rows_job;

static void copy_rows_range(void *ctx, int64_t b0, int64_t b1) {
    const copy_rows_job *j = ctx;
    for (int64_t b = b0; b < b1; b++) {
        if (b + PREFETCH_AHEAD < j->n) prefetch_row(j->src + (size_t)j->idx[b + PREFETCH_AHEAD] * j->rb, j->rb);
        memcpy(j->out + (size_t)b * j->rb, j->src + (size_t)j->idx[b] * j->rb, j->rb);
    }
}

static int cpu_data_gather_rows(const ml_tensor *src, const ml_tensor *indices, ml_tensor *out) {
    copy_rows_job j = {ml_data(src), ml_data(out), ml_data(indices), ml_numel(indices),
                       (size_t)row_len(src) * ml_dtype_size(src->dtype)};
    ml_parallel_for(j.n, ML_PAR_MIN_COPY_BYTES / (int64_t)(j.rb > 0 ? j.rb : 1) + 1,
                    copy_rows_range, &j);
    return 0;
}

const ml_data_ops ml_cpu_data = {ML_DATA_ENTRIES(ML_BACKEND_ENTRY, cpu_data_)};
