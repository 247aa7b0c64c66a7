/* CPU kernels of the batchnorm family (contract: src/backend/batchnorm.h): channels
 * spread over the threads, each channel's statistics and outputs in one pass of
 * its thread (batchnorm_t.h per float type), so the bits do not depend on the
 * threads. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"

typedef struct {
    const ml_bn_args *a;
    const void *x, *g, *w, *b;
    void *y;                 /* y (forward) or gx (backward; may be NULL) */
    void *mean, *invstd, *rm, *rv, *gw, *gb;
    const ml_pool_geom *pool; /* the max_pool entries' windows */
    uint8_t *codes;           /* max_pool_forward's window codes */
    const uint8_t *ccodes;    /* max_pool_backward's */
} bn_job;

static void *data_or_null(const ml_tensor *t) { return t ? ml_data(t) : NULL; }

#if defined(__AVX512F__)
#include "max_pool_2x2.h"
#define POOL_2X2_ROW ml_max_pool_2x2_row
#endif
#define T float
#define SUFFIX f32
#define SQRT sqrtf
#include "batchnorm_t.h"
#undef T
#undef SUFFIX
#undef SQRT
#undef POOL_2X2_ROW

#define T double
#define SUFFIX f64
#define SQRT sqrt
#include "batchnorm_t.h"
#undef T
#undef SUFFIX
#undef SQRT

static int check(const ml_tensor *x) {
    if (x->dtype == ML_F32 || x->dtype == ML_F64) return 0;
    return ml_error_set("batch_norm: needs float32 or float64 tensors, got %s", ml_dtype_name(x->dtype));
}

/* a channel is worth a thread once its elements reach this many (channels go to
 * threads in contiguous runs of one-channel blocks: ml_parallel_for would align its
 * ranges to 16 channels and give BatchNorm2d(16) to one thread) */
static int64_t min_channels(const ml_bn_args *a) {
    const int64_t per = a->n * a->s;
    return ML_PAR_MIN / (per > 0 ? per : 1) + 1;
}

static int cpu_batchnorm_forward(const ml_tensor *x, ml_bn_args *a, ml_tensor *y) {
    if (check(x)) return -1;
    bn_job j = {.a = a, .x = ml_data(x), .w = data_or_null(a->weight), .b = data_or_null(a->bias),
                .y = ml_data(y), .mean = ml_data(a->mean), .invstd = ml_data(a->invstd),
                .rm = data_or_null(a->running_mean), .rv = data_or_null(a->running_var)};
    ml_parallel_blocks(a->c, 1, min_channels(a), x->dtype == ML_F32 ? bn_forward_channels_f32
                                                              : bn_forward_channels_f64, &j);
    return 0;
}

static int cpu_batchnorm_backward(const ml_tensor *g, const ml_tensor *x, const ml_bn_args *a,
                                  ml_tensor *gx, ml_tensor *gw, ml_tensor *gb) {
    if (check(x)) return -1;
    bn_job j = {.a = a, .x = ml_data(x), .g = ml_data(g), .w = data_or_null(a->weight),
                .y = data_or_null(gx), .mean = ml_data(a->mean), .invstd = ml_data(a->invstd),
                .gw = data_or_null(gw), .gb = data_or_null(gb)};
    ml_parallel_blocks(a->c, 1, min_channels(a), x->dtype == ML_F32 ? bn_backward_channels_f32
                                                              : bn_backward_channels_f64, &j);
    return 0;
}

static int cpu_batchnorm_max_pool_forward(const ml_tensor *x, ml_bn_args *a,
                                          const ml_pool_geom *geom, ml_tensor *y_pool,
                                          ml_tensor *codes) {
    if (check(x)) return -1;
    bn_job j = {.a = a, .x = ml_data(x), .w = data_or_null(a->weight), .b = data_or_null(a->bias),
                .y = ml_data(y_pool), .mean = ml_data(a->mean), .invstd = ml_data(a->invstd),
                .rm = data_or_null(a->running_mean), .rv = data_or_null(a->running_var),
                .pool = geom, .codes = codes ? ml_data(codes) : NULL};
    ml_parallel_blocks(a->c, 1, min_channels(a), x->dtype == ML_F32 ? bn_pool_forward_channels_f32
                                                              : bn_pool_forward_channels_f64, &j);
    return 0;
}

static int cpu_batchnorm_max_pool_backward(const ml_tensor *g_pool, const ml_tensor *codes,
                                           const ml_tensor *x, const ml_bn_args *a,
                                           const ml_pool_geom *geom, ml_tensor *gx,
                                           ml_tensor *gw, ml_tensor *gb) {
    if (check(x)) return -1;
    bn_job j = {.a = a, .x = ml_data(x), .g = ml_data(g_pool), .w = data_or_null(a->weight),
                .y = data_or_null(gx), .mean = ml_data(a->mean), .invstd = ml_data(a->invstd),
                .gw = data_or_null(gw), .gb = data_or_null(gb), .pool = geom,
                .ccodes = ml_data(codes)};
    ml_parallel_blocks(a->c, 1, min_channels(a), x->dtype == ML_F32 ? bn_pool_backward_channels_f32
                                                              : bn_pool_backward_channels_f64, &j);
    return 0;
}

const ml_batchnorm_ops ml_cpu_batchnorm = {ML_BATCHNORM_ENTRIES(ML_BACKEND_ENTRY, cpu_batchnorm_)};
