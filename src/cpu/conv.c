/* CPU kernels of the conv family (contract: src/backend/conv.h): im2col + one
 * product per sample and group, samples spread over the threads in blocks fixed by
 * the batch size. The per-type loops are conv_t.h; the products go to our float32
 * kernel (small_gemm.c) where it pays, else to OpenBLAS on one thread (we are
 * already inside the parallel loop, and OpenBLAS alone sums by the shape only). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "../threads.h"
#include "parallel.h"
#include "small_gemm.h"

/* One call's work. x / g_out are read; y is the forward's output or the input
 * gradient; slots hold each block's partial weight gradient. */
typedef struct {
    const ml_conv_geom *g;
    const void *x, *w, *bias, *g_out;
    void *y;
    void *slots;     /* backward_weight: [blocks, c_out * K] of T */
    double *bslots;  /* backward_weight with gb: [blocks, c_out] */
    bool direct;     /* a 1x1 kernel, stride 1, no pad: x is its own col */
    const struct shift_plan *plan; /* float32 products straight from the planes */
    int failed;      /* a block could not get its scratch (set, never cleared) */
} conv_job;

/* Scratch (im2col buffers, the weight gradient's slots) from the CPU allocator,
 * whose cache of large blocks hands the same blocks back every step: malloc and
 * free of 100 KiB-1 MiB buffers let glibc trim and map them again, page faults
 * on every call. The allocator is thread-safe. */
extern const ml_memory_ops ml_cpu_memory;
static void *scratch_alloc(size_t nbytes) { return ml_cpu_memory.alloc(nbytes ? nbytes : 1); }
static void scratch_free(void *p, size_t nbytes) {
    if (p) ml_cpu_memory.free(p, nbytes ? nbytes : 1);
}

static void conv_oom(const conv_job *j) {
    /* written by any thread that fails; only ever set to 1 */
    ((conv_job *)j)->failed = 1;
}

/* Row-major C [m, n] = op(A) @ op(B) + beta C on this thread. float32 products
 * go to our AVX-512 kernel, on a CPU that has it, up to its 32M multiply-adds
 * (else to OpenBLAS; single thread, this Zen 4, hot caches; OpenBLAS runs its
 * Haswell kernels here): the MNIST CNN's per-sample
 * products conv1 forward [16, 9] x [9, 784] 1.8 vs 3.4 us, its weight gradient
 * [16, 784] x [9, 784]^T 3.8 vs 6.2 us, conv2 forward [32, 144] x [144, 196] 10.7
 * vs 22.1 us, input gradient [144, 32]^T... 12.8 vs 19.9 us, weight gradient
 * [32, 196] x [144, 196]^T 12.4 vs 24.9 us: where OpenBLAS's own rule
 * (ml_small_sgemm_pays, tuned for nn.Linear) would keep most of them. */
static void gemm_f32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { /* an empty sum */
        for (int64_t i = 0; i < m; i++)
            for (int64_t jj = 0; jj < n; jj++) c[i * ldc + jj] = beta == 0 ? 0 : beta * c[i * ldc + jj];
        return;
    }
    if ((double)m * (double)n * (double)k <= 32e6 && /* every conv shape measured (above) */
        ml_small_sgemm_avx512(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc, NULL))
        return;
    const int saved = ml_blas_enter();
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, 1.0f, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
    ml_blas_leave(saved);
}

static void gemm_f64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double *a,
                     int64_t lda, const double *b, int64_t ldb, double beta, double *c,
                     int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t jj = 0; jj < n; jj++) c[i * ldc + jj] = beta == 0 ? 0 : beta * c[i * ldc + jj];
        return;
    }
    const int saved = ml_blas_enter();
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, 1.0, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
    ml_blas_leave(saved);
}

/* --- stride-1 same-width convolutions by shifted planes (conv_t.h) ------------
 * Stride 1 and an output as wide as the input (a 3x3 kernel with padding 1, the
 * usual case): each plane of col is the input plane shifted by one flat offset. */
#define ML_SHIFT_MAX_TAPS 49 /* up to a 7x7 kernel (a stack array of taps) */
#define ML_SHIFT_CHUNK 32    /* col2im_shift's sums: two AVX-512 registers of float32 */

static bool is_shift(const ml_conv_geom *g) {
    return g->sh == 1 && g->sw == 1 && g->ow == g->w && g->kh * g->kw <= ML_SHIFT_MAX_TAPS;
}

/* For plane (c, ki, kj) the output rows [*oy0, *oy1) and columns [*lo, *hi) read
 * inside the input, at x_plane[p + *shift] for p = oy ow + ox; the other positions
 * are padding. False when none is inside. */
static bool shifted_plane(const ml_conv_geom *g, int64_t ki, int64_t kj, int64_t *oy0,
                          int64_t *oy1, int64_t *lo, int64_t *hi, int64_t *shift) {
    const int64_t iy0 = ki * g->dh - g->ph, ix0 = kj * g->dw - g->pw; /* iy = oy + iy0 */
    *oy0 = iy0 >= 0 ? 0 : -iy0;
    *oy1 = g->h - iy0 < g->oh ? g->h - iy0 : g->oh;
    *lo = ix0 >= 0 ? 0 : -ix0;
    *hi = g->w - ix0 < g->ow ? g->w - ix0 : g->ow;
    *shift = iy0 * g->w + ix0;
    return *oy0 < *oy1 && *lo < *hi;
}

/* A tap (plane t = ki kw + kj of a channel) with some output inside the input:
 * its shifted_plane values, and [a, b), the elements of x it reaches. */
typedef struct {
    int64_t t, oy0, oy1, lo, hi, shift, a, b;
} shift_tap;

/* The taps of an is_shift geometry that reach the input, into taps (at most
 * ML_SHIFT_MAX_TAPS); [*mid0, *mid1) the elements of x every one of them reaches
 * (empty: *mid1 == *mid0). The same for every channel and sample. */
static int shift_taps(const ml_conv_geom *g, shift_tap *taps, int64_t *mid0, int64_t *mid1) {
    int nt = 0;
    *mid0 = 0;
    *mid1 = g->h * g->w;
    for (int64_t t = 0; t < g->kh * g->kw; t++) {
        shift_tap *tp = &taps[nt];
        if (!shifted_plane(g, t / g->kw, t % g->kw, &tp->oy0, &tp->oy1, &tp->lo, &tp->hi, &tp->shift))
            continue;
        tp->t = t;
        tp->a = tp->oy0 * g->ow + tp->lo + tp->shift;
        tp->b = (tp->oy1 - 1) * g->ow + tp->hi + tp->shift;
        *mid0 = tp->a > *mid0 ? tp->a : *mid0;
        *mid1 = tp->b < *mid1 ? tp->b : *mid1;
        nt++;
    }
    if (*mid1 < *mid0) *mid1 = *mid0;
    return nt;
}

/* --- float32 products straight from the planes (small_gemm.h) ----------------
 * For is_shift geometries the forward reads x's planes and the input gradient
 * g's at each tap's shift, masked where the tap falls in the padding: no im2col
 * buffer, no col2im. The forward sums the same terms in the same order as im2col
 * + gemm (the same bits); the input gradient sums over (o, tap) in one chain where
 * col2im added each tap's sum over o (a different rounding). */
typedef struct shift_plan {
    int64_t taps, nvec, shift[ML_SHIFT_MAX_TAPS];
    uint16_t *mask; /* [taps][nvec] */
    size_t mask_bytes;
    float *a_buf;   /* backward_input: each group's w as [c_in / groups, c_out / groups taps] */
    size_t a_bytes;
    /* per sample and group: out [m, out_size] = a [m, planes taps] @ the planes of in
     * (forward: in x, out y, a w; backward_input: in g, out gx, a a_buf) */
    const float *in, *a, *bias;
    float *out;
    int64_t m, planes, in_channels, in_size, out_channels, out_size;
} shift_plan;

/* mask [nvec] := bit q for the positions q of a plane of `width` columns, n in all,
 * whose row is in [r0, r1) and column in [c0, c1) */
static void rect_mask(uint16_t *mask, int64_t nvec, int64_t n, int64_t width, int64_t r0,
                      int64_t r1, int64_t c0, int64_t c1) {
    memset(mask, 0, (size_t)nvec * sizeof *mask);
    for (int64_t r = r0 < 0 ? 0 : r0; r < r1 && r * width < n; r++)
        for (int64_t col = c0 < 0 ? 0 : c0; col < c1 && col < width; col++) {
            const int64_t q = r * width + col;
            if (q < n) mask[q / 16] |= (uint16_t)(1u << (q % 16));
        }
}

static void plan_free(shift_plan *sp) {
    scratch_free(sp->mask, sp->mask_bytes);
    scratch_free(sp->a_buf, sp->a_bytes);
}

/* Used for is_shift geometries whose per-sample product (c_out / groups x c_in /
 * groups x taps x n positions, forward or input gradient alike) stays under the
 * small kernel's 32M multiply-adds: gemm_f32's rule (beyond, OpenBLAS's cache
 * blocking of an im2col buffer wins). */
static bool shifted_pays(const ml_conv_geom *g, int64_t n) {
    const double macs = (double)(g->c_out / g->groups) * (double)(g->c_in / g->groups) *
                        (double)(g->kh * g->kw) * (double)n;
    return is_shift(g) && ml_small_sgemm_available() && macs <= 32e6;
}

/* The forward's plan: output positions oy ow + ox, tap (ki, kj) inside where
 * shifted_plane says; out y [co, P] per group from x's planes. 0 when it cannot be
 * used. */
static int plan_forward(const conv_job *j, shift_plan *sp) {
    const ml_conv_geom *g = j->g;
    const int64_t P = g->oh * g->ow;
    sp->taps = g->kh * g->kw;
    sp->nvec = (P + 15) / 16;
    sp->mask_bytes = (size_t)(sp->taps * sp->nvec) * sizeof *sp->mask;
    sp->mask = scratch_alloc(sp->mask_bytes);
    if (!sp->mask) return 0;
    for (int64_t t = 0; t < sp->taps; t++) {
        int64_t oy0, oy1, lo, hi, shift;
        if (!shifted_plane(g, t / g->kw, t % g->kw, &oy0, &oy1, &lo, &hi, &shift)) oy1 = oy0;
        sp->shift[t] = shift;
        rect_mask(sp->mask + t * sp->nvec, sp->nvec, P, g->ow, oy0, oy1, lo, hi);
    }
    sp->in = j->x;
    sp->a = j->w;
    sp->bias = j->bias;
    sp->out = j->y;
    sp->m = g->c_out / g->groups;
    sp->planes = g->c_in / g->groups;
    sp->in_channels = g->c_in;
    sp->in_size = g->h * g->w;
    sp->out_channels = g->c_out;
    sp->out_size = P;
    return 1;
}

/* The input gradient's plan: positions iy w + ix of gx, tap (ki, kj) reading g at
 * (iy - iy0, ix - ix0) (iy0 = ki dh - ph, ix0 = kj dw - pw; g's rows are as wide
 * as x's); w regrouped so that row c of a group reads (o, tap) in order. */
static int plan_backward_input(const conv_job *j, shift_plan *sp) {
    const ml_conv_geom *g = j->g;
    const float *w = j->w;
    const int64_t HW = g->h * g->w, G = g->groups, co = g->c_out / G, cpg = g->c_in / G;
    const int64_t taps = g->kh * g->kw;
    sp->taps = taps;
    sp->nvec = (HW + 15) / 16;
    sp->mask_bytes = (size_t)(taps * sp->nvec) * sizeof *sp->mask;
    sp->a_bytes = (size_t)(g->c_out * cpg * taps) * sizeof(float);
    sp->mask = scratch_alloc(sp->mask_bytes);
    sp->a_buf = scratch_alloc(sp->a_bytes);
    if (!sp->mask || !sp->a_buf) return 0;
    for (int64_t t = 0; t < taps; t++) {
        const int64_t iy0 = (t / g->kw) * g->dh - g->ph, ix0 = (t % g->kw) * g->dw - g->pw;
        sp->shift[t] = -(iy0 * g->w + ix0);
        rect_mask(sp->mask + t * sp->nvec, sp->nvec, HW, g->w, iy0, iy0 + g->oh, ix0, ix0 + g->ow);
    }
    /* a[gi][c][o taps + t] = w[gi co + o][c][t] */
    for (int64_t gi = 0; gi < G; gi++)
        for (int64_t c = 0; c < cpg; c++)
            for (int64_t o = 0; o < co; o++)
                for (int64_t t = 0; t < taps; t++)
                    sp->a_buf[((gi * cpg + c) * co + o) * taps + t] = w[((gi * co + o) * cpg + c) * taps + t];
    sp->in = j->g_out;
    sp->a = sp->a_buf;
    sp->bias = j->bias;
    sp->out = j->y;
    sp->m = cpg;
    sp->planes = co;
    sp->in_channels = g->c_out;
    sp->in_size = g->oh * g->ow;
    sp->out_channels = g->c_in;
    sp->out_size = HW;
    return 1;
}

/* The block below runs only where shifted_pays said yes, which asked
 * ml_small_sgemm_available(): the kernel it calls does not refuse. */

/* forward or backward_input (the plan says which) for the samples [lo, hi) of one
 * block: per sample and group one product from the input's planes */
static void shifted_block(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    (void)blk;
    const shift_plan *sp = ((const conv_job *)ctx)->plan;
    const int64_t G = ((const conv_job *)ctx)->g->groups, K = sp->planes * sp->taps;
    for (int64_t n = lo; n < hi; n++)
        for (int64_t gi = 0; gi < G; gi++) {
            const ml_shifted_planes b = {
                .x = sp->in + (n * sp->in_channels + gi * sp->planes) * sp->in_size,
                .planes = sp->planes, .plane_stride = sp->in_size, .taps = sp->taps,
                .nvec = sp->nvec, .shift = sp->shift, .mask = sp->mask};
            ml_small_sgemm_shifted(sp->m, sp->out_size, sp->a + gi * sp->m * K, K, &b,
                                   sp->out + (n * sp->out_channels + gi * sp->m) * sp->out_size,
                                   sp->out_size, sp->bias ? sp->bias + gi * sp->m : NULL);
        }
}

#define T float
#define SUFFIX f32
#define GEMM gemm_f32
#include "conv_t.h"
#undef T
#undef SUFFIX
#undef GEMM

/* backward_weight for the samples [lo, hi) of block blk without im2col: each
 * sample's x copied into zero-padded planes once (the taps' windows of them are
 * col's rows) and its g transposed to g^T [P, c_out], then per group
 *   gw^T [K, co] (+)= col [K, P] @ g^T [P, co]       (ml_small_sgemm_windows)
 * summed in sample order into a transposed slot, given back as [co, K] at the end.
 * A stored col's B^T would be transposed 16 x 16 block by block, per sample. */
static void backward_weight_windows_block(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const ml_conv_geom *g = j->g;
    const int64_t P = g->oh * g->ow, HW = g->h * g->w, G = g->groups, taps = g->kh * g->kw;
    const int64_t co = g->c_out / G, cpg = g->c_in / G, K = cpg * taps, WN = g->c_out * K;
    /* the padded plane: every tap's window inside it (stride 1) */
    const int64_t Hp = g->oh + (g->kh - 1) * g->dh, Wp = g->ow + (g->kw - 1) * g->dw;
    const size_t xp_bytes = (size_t)(g->c_in * Hp * Wp) * sizeof(float);
    const size_t gt_bytes = (size_t)(P * g->c_out) * sizeof(float);
    const size_t ct_bytes = (size_t)WN * sizeof(float);
    float *xp = scratch_alloc(xp_bytes), *gt = scratch_alloc(gt_bytes), *ct = scratch_alloc(ct_bytes);
    if (!xp || !gt || !ct) {
        conv_oom(j);
        goto done;
    }
    int64_t offset[ML_SHIFT_MAX_TAPS];
    for (int64_t t = 0; t < taps; t++) offset[t] = (t / g->kw) * g->dh * Wp + (t % g->kw) * g->dw;
    float *slot = (float *)j->slots + blk * WN;
    double *bslot = j->bslots ? j->bslots + blk * g->c_out : NULL;
    if (bslot)
        for (int64_t o = 0; o < g->c_out; o++) bslot[o] = 0;
    memset(xp, 0, xp_bytes); /* the padding, written once; the insides each sample */
    const int64_t rows = g->h < Hp - g->ph ? g->h : Hp - g->ph;
    const int64_t cols = g->w < Wp - g->pw ? g->w : Wp - g->pw;
    for (int64_t n = lo; n < hi; n++) {
        const float *xn = (const float *)j->x + n * g->c_in * HW;
        const float *gn = (const float *)j->g_out + n * g->c_out * P;
        for (int64_t c = 0; c < g->c_in; c++)
            for (int64_t iy = 0; iy < rows; iy++)
                memcpy(xp + (c * Hp + iy + g->ph) * Wp + g->pw, xn + c * HW + iy * g->w,
                       (size_t)cols * sizeof(float));
        ml_transpose_f32(gn, g->c_out, P, P, gt, g->c_out);
        for (int64_t gi = 0; gi < G; gi++) {
            const ml_window_rows a = {.x = xp + gi * cpg * Hp * Wp, .plane_stride = Hp * Wp,
                                      .taps = taps, .rows = g->oh, .cols = g->ow,
                                      .row_stride = Wp, .offset = offset};
            ml_small_sgemm_windows(K, co, &a, gt + gi * co, g->c_out, n > lo ? 1.0f : 0.0f,
                                   ct + gi * K * co, co);
        }
        if (bslot) bias_slot_add_f32(gn, g->c_out, P, bslot);
    }
    for (int64_t gi = 0; gi < G; gi++) /* slot [co, K] of each group from ct [K, co] */
        ml_transpose_f32(ct + gi * K * co, K, co, co, slot + gi * co * K, K);
done:
    scratch_free(xp, xp_bytes);
    scratch_free(gt, gt_bytes);
    scratch_free(ct, ct_bytes);
}

#define T double
#define SUFFIX f64
#define GEMM gemm_f64
#include "conv_t.h"
#undef T
#undef SUFFIX
#undef GEMM

/* Samples per block: the batch cut into at most 16 blocks by its size alone (the
 * weight gradient's partial sums are per block, so the cut must not depend on the
 * threads). 16 blocks keep two to eight threads busy; the slots stay small. */
static int64_t sample_block(int64_t n) { return n <= 16 ? 1 : (n + 15) / 16; }

/* Fork only when the work is worth a few microseconds of fork/join. */
static int64_t min_parallel(const ml_conv_geom *g) {
    const double macs = (double)g->n * (double)g->c_out * (double)(g->c_in / g->groups) *
                        (double)(g->kh * g->kw) * (double)(g->oh * g->ow);
    return macs < 2e5 ? g->n + 1 : 2;
}

static bool is_direct(const ml_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
           g->oh == g->h && g->ow == g->w;
}

static int check_dtype(const ml_tensor *t, const char *op) {
    if (t->dtype == ML_F32 || t->dtype == ML_F64) return 0;
    return ml_error_set("%s: needs float32 or float64 tensors, got %s", op, ml_dtype_name(t->dtype));
}

static int cpu_conv_forward(const ml_tensor *x, const ml_tensor *w, const ml_tensor *bias,
                            const ml_conv_geom *geom, ml_tensor *y) {
    if (check_dtype(x, "conv2d")) return -1;
    conv_job j = {.g = geom, .x = ml_data(x), .w = ml_data(w), .bias = bias ? ml_data(bias) : NULL,
                  .y = ml_data(y), .direct = is_direct(geom)};
    const int64_t blk = sample_block(geom->n);
    ml_block_fn fn = x->dtype == ML_F32 ? conv_forward_block_f32 : conv_forward_block_f64;
    shift_plan sp = {0};
    if (x->dtype == ML_F32 && shifted_pays(geom, geom->oh * geom->ow)) {
        if (!plan_forward(&j, &sp)) j.failed = 1;
        j.plan = &sp;
        fn = shifted_block;
    }
    if (!j.failed) ml_parallel_blocks(geom->n, blk, min_parallel(geom) * blk, fn, &j);
    plan_free(&sp);
    return j.failed ? ml_error_set("conv2d: out of memory for the im2col buffer") : 0;
}

static int cpu_conv_backward_input(const ml_tensor *g, const ml_tensor *w, const ml_tensor *bias,
                                   const ml_conv_geom *geom, ml_tensor *gx) {
    if (check_dtype(g, "conv2d")) return -1;
    conv_job j = {.g = geom, .w = ml_data(w), .bias = bias ? ml_data(bias) : NULL,
                  .g_out = ml_data(g), .y = ml_data(gx), .direct = is_direct(geom)};
    const int64_t blk = sample_block(geom->n);
    ml_block_fn fn = g->dtype == ML_F32 ? conv_backward_input_block_f32
                                        : conv_backward_input_block_f64;
    shift_plan sp = {0};
    if (g->dtype == ML_F32 && shifted_pays(geom, geom->h * geom->w)) {
        if (!plan_backward_input(&j, &sp)) j.failed = 1;
        j.plan = &sp;
        fn = shifted_block;
    }
    if (!j.failed) ml_parallel_blocks(geom->n, blk, min_parallel(geom) * blk, fn, &j);
    plan_free(&sp);
    return j.failed ? ml_error_set("conv2d backward: out of memory for the im2col buffer") : 0;
}

static int cpu_conv_backward_weight(const ml_tensor *x, const ml_tensor *g,
                                    const ml_conv_geom *geom, ml_tensor *gw, ml_tensor *gb) {
    if (check_dtype(g, "conv2d")) return -1;
    const int64_t blk = sample_block(geom->n), nb = ml_nblocks(geom->n, blk);
    const int64_t wn = ml_numel(gw);
    const size_t es = ml_dtype_size(g->dtype);
    conv_job j = {.g = geom, .x = ml_data(x), .g_out = ml_data(g), .direct = is_direct(geom)};
    const size_t slot_bytes = (size_t)(nb * wn) * es, bslot_bytes = (size_t)(nb * geom->c_out) * sizeof(double);
    j.slots = scratch_alloc(slot_bytes);
    j.bslots = gb ? scratch_alloc(bslot_bytes) : NULL;
    ml_block_fn fn = g->dtype == ML_F32 ? conv_backward_weight_block_f32
                                        : conv_backward_weight_block_f64;
    /* the windows product sums each row over all of P in one chain per vector: with
     * fewer than 16 rows of col (conv1's 9) a tile of one row or a few waits on its
     * chain's latency (conv1's gradient 0.46 -> 0.68 ms) */
    if (g->dtype == ML_F32 && shifted_pays(geom, geom->oh * geom->ow) &&
        geom->c_in / geom->groups * geom->kh * geom->kw >= 16)
        fn = backward_weight_windows_block;
    if (!j.slots || (gb && !j.bslots)) j.failed = 1;
    else ml_parallel_blocks(geom->n, blk, min_parallel(geom) * blk, fn, &j);
    if (!j.failed) {
        if (g->dtype == ML_F32)
            conv_backward_weight_combine_f32(&j, nb, ml_data(gw), gb ? ml_data(gb) : NULL);
        else
            conv_backward_weight_combine_f64(&j, nb, ml_data(gw), gb ? ml_data(gb) : NULL);
    }
    scratch_free(j.slots, slot_bytes);
    if (gb) scratch_free(j.bslots, bslot_bytes);
    return j.failed ? ml_error_set("conv2d backward: out of memory for the weight gradient") : 0;
}

const ml_conv_ops ml_cpu_conv = {ML_CONV_ENTRIES(ML_BACKEND_ENTRY, cpu_conv_)};
