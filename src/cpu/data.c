/* CPU kernels of the data family: batch rows gathered from a dataset's storage.
 * A batch is small (128 x 784 for MNIST) and bound by the misses of its random
 * rows: ~35 us on one core. Two threads split a batch of 64k elements and more:
 * each core then has its own misses in flight, and MNIST's epoch of gathers went
 * from ~16 to ~10 ms (a fork/join to a spinning worker costs a few us). */
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "../backend/augment.h"
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

/* --- augmentation (contract: src/backend/data.h; formulas: src/backend/augment.h) ---
 * Work is split by planes (one channel of one image) across threads: a batch
 * of MNIST images is 128 planes of 784 pixels. */

typedef struct {
    const char *src;
    char *out;
    const void *params;
    int64_t c, h, w, oh, ow; /* channels, input and output plane sizes */
    ml_dtype dtype;
    int mode;                /* pad mode, or bilinear */
    double fill;
    char fill_bytes[8];      /* fill in the dtype (crop) */
} augment_job;

/* the planes per thread below which a batch stays on one thread */
static int64_t planes_min(const augment_job *j) {
    int64_t bytes = j->oh * j->ow * (int64_t)ml_dtype_size(j->dtype);
    return ML_PAR_MIN_COPY_BYTES / (bytes > 0 ? bytes : 1) + 1;
}

/* One output plane of a crop, for an element size es that the caller makes a
 * constant (inlined per size, so the copies are moves of that size). Unflipped,
 * the part of a row inside the source is one memcpy; the padding around it and
 * flipped rows go pixel by pixel. */
static inline __attribute__((always_inline)) void crop_plane(const augment_job *j, int64_t p,
                                                              size_t es) {
    const int64_t *prm = (const int64_t *)j->params + (p / j->c) * 3;
    const int64_t top = prm[0], left = prm[1], flip = prm[2], w = j->w, ow = j->ow;
    const char *src = j->src + (size_t)(p * j->h * w) * es;
    char *out = j->out + (size_t)(p * j->oh * ow) * es;
    /* the columns x whose source left + x lies inside the image */
    int64_t in_lo = -left < 0 ? 0 : -left > ow ? ow : -left;
    int64_t in_hi = w - left < in_lo ? in_lo : w - left > ow ? ow : w - left;
    if (flip) in_lo = in_hi = 0;
    for (int64_t y = 0; y < j->oh; y++) {
        const int64_t sy = ml_aug_pad_index(top + y, j->h, j->mode);
        char *o = out + (size_t)(y * ow) * es;
        const char *row = src + (size_t)(sy * w) * es;
        for (int64_t x = 0; x < ow; x++) {
            if (x == in_lo && in_hi > in_lo && sy >= 0) {
                memcpy(o + (size_t)x * es, row + (size_t)(left + x) * es, (size_t)(in_hi - in_lo) * es);
                x = in_hi - 1;
                continue;
            }
            const int64_t sx = sy < 0 ? -1 : ml_aug_pad_index(left + (flip ? ow - 1 - x : x), w, j->mode);
            memcpy(o + (size_t)x * es, sx < 0 ? j->fill_bytes : row + (size_t)sx * es, es);
        }
    }
}

static void crop_range(void *ctx, int64_t p0, int64_t p1) {
    const augment_job *j = ctx;
    const size_t es = ml_dtype_size(j->dtype);
    for (int64_t p = p0; p < p1; p++) {
        switch (es) {
        case 1: crop_plane(j, p, 1); break;
        case 4: crop_plane(j, p, 4); break;
        default: crop_plane(j, p, 8); break;
        }
    }
}

/* fill converted to dt, as bytes (a uint8 fill is rounded and clamped) */
static void fill_in_dtype(double fill, ml_dtype dt, char *bytes) {
    switch (dt) {
    case ML_F32: { float v = (float)fill; memcpy(bytes, &v, sizeof v); break; }
    case ML_F64: memcpy(bytes, &fill, sizeof fill); break;
    case ML_I64: { int64_t v = (int64_t)fill; memcpy(bytes, &v, sizeof v); break; }
    default: { uint8_t v = ml_aug_round_u8(fill); memcpy(bytes, &v, sizeof v); break; }
    }
}

static void job_shape(augment_job *j, const ml_tensor *src, const ml_tensor *params, double fill,
                      int mode, ml_tensor *out) {
    j->src = ml_data(src);
    j->out = ml_data(out);
    j->params = ml_data(params);
    j->c = src->shape[1];
    j->h = src->shape[2];
    j->w = src->shape[3];
    j->oh = out->shape[2];
    j->ow = out->shape[3];
    j->dtype = src->dtype;
    j->mode = mode;
    j->fill = fill;
}

static int cpu_data_augment_crop(const ml_tensor *src, const ml_tensor *params, int pad_mode,
                                 double fill, ml_tensor *out) {
    augment_job j;
    job_shape(&j, src, params, fill, pad_mode, out);
    fill_in_dtype(fill, src->dtype, j.fill_bytes);
    ml_parallel_for(src->shape[0] * j.c, planes_min(&j), crop_range, &j);
    return 0;
}

/* One output plane of an affine warp, for a dtype the caller makes a constant. */
static inline __attribute__((always_inline)) void affine_plane(const augment_job *j, int64_t p,
                                                                ml_dtype dt) {
    const double *m = (const double *)j->params + (p / j->c) * 6;
    const int64_t w = j->w, h = j->h, n = w * h;
    for (int64_t y = 0; y < h; y++) {
        for (int64_t x = 0; x < w; x++) {
            double px, py, v;
            ml_aug_affine_source(m, x, y, w, h, &px, &py);
            if (j->mode) {
                ml_aug_taps t;
                ml_aug_bilinear_taps(px, py, w, h, &t);
                double acc = 0.0;
                for (int k = 0; k < t.n; k++) {
                    double s = dt == ML_F32   ? ((const float *)j->src)[p * n + t.idx[k]]
                               : dt == ML_F64 ? ((const double *)j->src)[p * n + t.idx[k]]
                                              : ((const uint8_t *)j->src)[p * n + t.idx[k]];
                    acc = fma(t.wt[k], s, acc);
                }
                v = ml_aug_bilinear_value(acc, t.mask, j->fill);
            } else {
                int64_t ix = ml_aug_nearest(px, w), iy = ml_aug_nearest(py, h);
                int64_t k = ix < 0 || iy < 0 ? -1 : iy * w + ix;
                v = k < 0                ? j->fill
                    : dt == ML_F32 ? ((const float *)j->src)[p * n + k]
                    : dt == ML_F64 ? ((const double *)j->src)[p * n + k]
                                   : ((const uint8_t *)j->src)[p * n + k];
            }
            const int64_t o = p * n + y * w + x;
            if (dt == ML_F32) ((float *)j->out)[o] = (float)v;
            else if (dt == ML_F64) ((double *)j->out)[o] = v;
            else ((uint8_t *)j->out)[o] = ml_aug_round_u8(v);
        }
    }
}

static void affine_range(void *ctx, int64_t p0, int64_t p1) {
    const augment_job *j = ctx;
    for (int64_t p = p0; p < p1; p++) {
        switch (j->dtype) {
        case ML_F32: affine_plane(j, p, ML_F32); break;
        case ML_F64: affine_plane(j, p, ML_F64); break;
        default: affine_plane(j, p, ML_U8); break;
        }
    }
}

static int cpu_data_augment_affine(const ml_tensor *src, const ml_tensor *params, int bilinear,
                                   double fill, ml_tensor *out) {
    if (src->dtype == ML_I64)
        return ml_error_set("affine: images must be float32, float64 or uint8, got int64");
    augment_job j;
    job_shape(&j, src, params, fill, bilinear, out);
    /* a warp costs more per pixel than a copy: split sooner */
    ml_parallel_for(src->shape[0] * j.c, planes_min(&j) / 8 + 1, affine_range, &j);
    return 0;
}

/* One image's brightness/contrast steps, in place on out (C == 1: the image is
 * one plane of n pixels). */
static void jitter_image(const augment_job *j, int64_t b) {
    const double *prm = (const double *)j->params + b * 3;
    const int64_t n = j->h * j->w;
    const bool contrast_first = prm[2] != 0;
    for (int step = 0; step < 2; step++) {
        const bool contrast = (step == 0) == contrast_first;
        const double f = contrast ? prm[1] : prm[0];
        if (f < 0) continue;
        if (j->dtype == ML_F64) {
            double *o = (double *)j->out + b * n, mean = 0.0;
            if (contrast) {
                for (int64_t i = 0; i < n; i++) mean += o[i];
                mean /= (double)n;
            }
            for (int64_t i = 0; i < n; i++) o[i] = ml_aug_blend_d(o[i], mean, f, 1.0 - f);
        } else if (j->dtype == ML_F32) {
            float *o = (float *)j->out + b * n;
            double sum = 0.0;
            if (contrast)
                for (int64_t i = 0; i < n; i++) sum += o[i];
            const float mean = (float)(sum / (double)n);
            for (int64_t i = 0; i < n; i++) o[i] = ml_aug_blend_f(o[i], mean, (float)f, (float)(1.0 - f), 1.0f);
        } else {
            uint8_t *o = (uint8_t *)j->out + b * n;
            double sum = 0.0;
            if (contrast)
                for (int64_t i = 0; i < n; i++) sum += o[i];
            const float mean = (float)(sum / (double)n);
            for (int64_t i = 0; i < n; i++)
                o[i] = (uint8_t)ml_aug_blend_f((float)o[i], mean, (float)f, (float)(1.0 - f), 255.0f);
        }
    }
}

static void jitter_range(void *ctx, int64_t b0, int64_t b1) {
    const augment_job *j = ctx;
    for (int64_t b = b0; b < b1; b++) jitter_image(j, b);
}

static int cpu_data_augment_jitter(const ml_tensor *src, const ml_tensor *params, ml_tensor *out) {
    if (src->dtype == ML_I64)
        return ml_error_set("color_jitter: images must be float32, float64 or uint8, got int64");
    augment_job j;
    job_shape(&j, src, params, 0, 0, out);
    memcpy(j.out, j.src, (size_t)ml_numel(src) * ml_dtype_size(src->dtype));
    ml_parallel_for(src->shape[0], planes_min(&j), jitter_range, &j);
    return 0;
}

const ml_data_ops ml_cpu_data = {ML_DATA_ENTRIES(ML_BACKEND_ENTRY, cpu_data_)};
