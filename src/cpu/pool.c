/* CPU kernels of the pool family (contract: src/backend/pool.h): planes spread over
 * the threads, each plane's loops in pool_t.h per float type. MaxPool2d(2) (kernel
 * 2, stride 2, whole windows) has its own loop, and in float32 an AVX-512 path
 * beside it (tests/lua/nn_cnn_spec.lua compares the paths with a reference). */
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"

typedef struct {
    const ml_pool_geom *g;
    const void *in;   /* x, or g for backward */
    void *out;        /* y, or gx */
    int64_t *idx;     /* max pooling's positions */
} pool_job;

#define T float
#define SUFFIX f32
#include "pool_t.h"
#undef T
#undef SUFFIX

#define T double
#define SUFFIX f64
#include "pool_t.h"
#undef T
#undef SUFFIX

#if defined(__AVX512F__)
#include "max_pool_2x2.h"

/* MaxPool2d(2) in float32 with AVX-512, a row at a time (max_pool_2x2.h). Needs
 * h * w < 2^31 (the int32 positions). */
static void max_forward_2x2_avx512(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    for (int64_t p = p0; p < p1; p++) {
        const float *x = (const float *)j->in + p * H * W;
        float *y = (float *)j->out + p * OH * OW;
        int64_t *idx = j->idx ? j->idx + p * OH * OW : NULL;
        for (int64_t oy = 0; oy < OH; oy++)
            ml_max_pool_2x2_row(x + 2 * oy * W, W, OW, 2 * oy * W, NULL, y + oy * OW,
                                idx ? idx + oy * OW : NULL, NULL);
    }
}
#define MAX_2X2_F32 max_forward_2x2_avx512
#define MAX_2X2_F32_FITS(g) ((g)->h * (g)->w < ((int64_t)1 << 31))
#else
#define MAX_2X2_F32 max_forward_2x2_f32
#define MAX_2X2_F32_FITS(g) true
#endif

/* fn over the planes (one-plane blocks, contiguous runs per thread: balanced for
 * a few planes too), on several threads once the elements touched reach ML_PAR_MIN */
static int run_planes(const ml_tensor *t, const ml_pool_geom *g, ml_block_fn f32,
                      ml_block_fn f64, pool_job *j) {
    if (t->dtype != ML_F32 && t->dtype != ML_F64)
        return ml_error_set("pool: needs float32 or float64 tensors, got %s", ml_dtype_name(t->dtype));
    const int64_t planes = g->n * g->c, per = g->h * g->w + g->oh * g->ow;
    ml_parallel_blocks(planes, 1, ML_PAR_MIN / (per > 0 ? per : 1) + 1, t->dtype == ML_F32 ? f32 : f64, j);
    return 0;
}

static bool is_2x2(const ml_pool_geom *g) {
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
           g->dh == 1 && g->dw == 1 && g->oh == g->h / 2 && g->ow == g->w / 2;
}

static int cpu_pool_max_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y,
                                ml_tensor *idx) {
    pool_job j = {g, ml_data(x), ml_data(y), idx ? ml_data(idx) : NULL};
    if (is_2x2(g) && MAX_2X2_F32_FITS(g)) return run_planes(x, g, MAX_2X2_F32, max_forward_2x2_f64, &j);
    if (is_2x2(g)) return run_planes(x, g, max_forward_2x2_f32, max_forward_2x2_f64, &j);
    return run_planes(x, g, max_forward_planes_f32, max_forward_planes_f64, &j);
}

static int cpu_pool_max_backward(const ml_tensor *gy, const ml_tensor *idx, const ml_pool_geom *g,
                                 ml_tensor *gx) {
    pool_job j = {g, ml_data(gy), ml_data(gx), ml_data(idx)};
    return run_planes(gy, g, max_backward_planes_f32, max_backward_planes_f64, &j);
}

static int cpu_pool_avg_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y) {
    pool_job j = {g, ml_data(x), ml_data(y), NULL};
    return run_planes(x, g, avg_forward_planes_f32, avg_forward_planes_f64, &j);
}

static int cpu_pool_avg_backward(const ml_tensor *gy, const ml_pool_geom *g, ml_tensor *gx) {
    pool_job j = {g, ml_data(gy), ml_data(gx), NULL};
    return run_planes(gy, g, avg_backward_planes_f32, avg_backward_planes_f64, &j);
}

static int cpu_pool_adaptive_avg_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y) {
    pool_job j = {g, ml_data(x), ml_data(y), NULL};
    return run_planes(x, g, adaptive_forward_planes_f32, adaptive_forward_planes_f64, &j);
}

static int cpu_pool_adaptive_avg_backward(const ml_tensor *gy, const ml_pool_geom *g,
                                          ml_tensor *gx) {
    pool_job j = {g, ml_data(gy), ml_data(gx), NULL};
    return run_planes(gy, g, adaptive_backward_planes_f32, adaptive_backward_planes_f64, &j);
}

const ml_pool_ops ml_cpu_pool = {ML_POOL_ENTRIES(ML_BACKEND_ENTRY, cpu_pool_)};
