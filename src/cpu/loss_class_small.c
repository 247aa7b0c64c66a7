/* float32 cross_entropy with class ids, fewer than 32 classes, class dim last (the
 * MLP's [128, 10]): rows 16 at a time, in portable C that gcc vectorises. With
 * c < 32 a row is shorter than a vector, and the reference's per-row code
 * (loss_class.c) spent ~40 ns a row in its short loops and its scalar log:
 *  - forward: the 16 rows of a block are the 16 lanes of a vector; row maxima, the
 *    exps, a vectorised log and the loss terms (class ids, weights, ignore_index) go
 *    down the classes of 16 rows at once. The exps are summed in float: fewer than
 *    32 terms in [0, 1], one of them 1, so the sum is within 31 ulp (2e-6) of exact
 *    at worst and far closer in practice; the losses are still summed in double
 *    (a double sum of the exps cost 15 % more time);
 *  - backward: one long loop over the block's contiguous elements, each getting its
 *    row's coefficients (logsumexp, scale, ignore mask).
 * The AVX-512 build replaces the forward by loss_class_avx512.c's (which also makes
 * the gradient) and the backward's inner loop by its permutes. Label smoothing
 * (forward) and smoothing with weights (backward) take the reference.
 * Tests: tests/lua/loss_small_classes_spec.lua and tests/c/test_loss.c compare these
 * with the reference. */
#include <math.h>
#include <string.h>

#include "../error.h"
#include "loss_cpu.h"
#include "vmath.h"

bool ml_cpu_ce_small(const ml_loss_args *a) {
    return a->input->dtype == ML_F32 && a->p.kind == ML_LOSS_CROSS_ENTROPY &&
           a->p.cls.inner == 1 && a->p.cls.c >= 1 && a->p.cls.c < ML_CE_SMALL_C;
}

/* class weights of 1 for calls without weights (so the loops load unconditionally) */
static const float ce_ones[ML_CE_SMALL_C] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

const int32_t *ml_cpu_ce_row_of(int32_t C) {
    static _Thread_local int32_t row[ML_CE_LANES * ML_CE_SMALL_C];
    static _Thread_local int32_t made_for;
    if (made_for != C) {
        for (int32_t j = 0; j < ML_CE_LANES; j++)
            for (int32_t k = 0; k < C; k++) row[j * C + k] = j;
        made_for = C;
    }
    return row;
}

#if !defined(__AVX512F__)
/* v when ok, else +0.0, by masking the bits (a `?:` on doubles kept gcc from
 * vectorising the loop below). */
static inline double keep_if(double v, int ok) {
    int64_t b;
    memcpy(&b, &v, sizeof b);
    b &= -(int64_t)ok;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* The loss terms of rows r0 .. r0 + nb - 1 (nb <= 16): logsumexps into LSE (when
 * not NULL), "none" values into O (when not NULL); returns their sum (ignored
 * rows add 0) and raises *bad for an id out of range. */
static double ce_fwd_block(const ml_loss_args *a, int64_t r0, int nb, double *LSE, float *O,
                           int *bad_out) {
    const int32_t C = (int32_t)a->p.cls.c;
    const int64_t ign = a->p.cls.ignore_index;
    const float *xb = (const float *)ml_data(a->input) + r0 * C;
    const int64_t *tb = (const int64_t *)ml_data(a->target) + r0;
    const float *W = a->weight ? (const float *)ml_data(a->weight) : ce_ones;
    int32_t off[ML_CE_LANES]; /* lane -> its row's offset (lanes past nb repeat row 0) */
    int64_t t[ML_CE_LANES];
    float m[ML_CE_LANES], lg[ML_CE_LANES], xt[ML_CE_SMALL_C][ML_CE_LANES]; /* xt: transposed */
    float s[ML_CE_LANES];
    double lse[ML_CE_LANES], l[ML_CE_LANES];
    for (int j = 0; j < ML_CE_LANES; j++) {
        off[j] = j < nb ? j * C : 0;
        t[j] = tb[j < nb ? j : 0];
        m[j] = -INFINITY;
        s[j] = 0;
    }
    for (int32_t k = 0; k < C; k++) {
        const float *xk = xb + k;
        _Pragma("omp simd")
        for (int j = 0; j < ML_CE_LANES; j++) {
            const float v = xk[off[j]];
            xt[k][j] = v;
            m[j] = v > m[j] ? v : m[j];
        }
    }
    for (int32_t k = 0; k < C; k++) {
        _Pragma("omp simd")
        for (int j = 0; j < ML_CE_LANES; j++) s[j] += ml_expf_nonpos(xt[k][j] - m[j]);
    }
    _Pragma("omp simd")
    for (int j = 0; j < ML_CE_LANES; j++) lg[j] = ml_logf(s[j]);
    double acc = 0;
    int bad = 0;
    _Pragma("omp simd reduction(+:acc) reduction(|:bad)")
    for (int j = 0; j < ML_CE_LANES; j++) {
        const int64_t tj = t[j];
        const int use = (j < nb) & (tj != ign);
        const int oob = use & ((tj < 0) | (tj >= C));
        const int ok = use & !oob;
        const int32_t tc = ok ? (int32_t)tj : 0;
        /* loads outside the selects (tc is in range either way), so gcc can
         * vectorise: a load under a condition is control flow to it */
        const double wt = (double)W[tc], xv = (double)xb[off[j] + tc];
        lse[j] = (double)m[j] + (double)lg[j];
        l[j] = keep_if(-wt * (xv - lse[j]), ok); /* ignored rows add 0, NaN or not */
        acc += l[j];
        bad |= oob;
    }
    if (LSE) memcpy(LSE + r0, lse, sizeof(double) * (size_t)nb);
    if (O)
        for (int j = 0; j < nb; j++) O[r0 + j] = (float)l[j];
    *bad_out |= bad;
    return acc;
}

/* What the blocks of one ml_cpu_ce_small_forward call share. */
typedef struct {
    const ml_loss_args *a;
    double *LSE;
    float *O;
    ml_loss_slots *slots;
} ce_small_job;

/* Rows [lo, hi) of block blk (a multiple of 16 rows but for the last), its 16-row
 * blocks' sums added in order into the block's slot. */
static void ce_small_fwd_block(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    const ce_small_job *j = ctx;
    double acc = 0;
    int bad = 0;
    for (int64_t r0 = lo; r0 < hi; r0 += ML_CE_LANES) {
        const int nb = hi - r0 < ML_CE_LANES ? (int)(hi - r0) : ML_CE_LANES;
        acc += ce_fwd_block(j->a, r0, nb, j->LSE, j->O, &bad);
    }
    j->slots->sum[blk] = acc;
    j->slots->bad[blk] = (unsigned char)bad;
}

int ml_cpu_ce_small_forward(ml_loss_args *a, ml_tensor *out) {
    const int64_t rows = a->p.cls.n, R = ml_cpu_class_block_rows(a->p.cls.c);
    const bool none = a->p.reduction == ML_REDUCTION_NONE;
    ml_loss_slots slots;
    if (ml_loss_slots_init(&slots, ml_nblocks(rows, R), ML_LOSS_CROSS_ENTROPY)) return -1;
    ce_small_job j = {a, a->aux ? (double *)ml_data(a->aux) : NULL,
                      none ? (float *)ml_data(out) : NULL, &slots};
    ml_parallel_blocks(rows, R, ml_cpu_class_min_parallel(a->p.cls.c), ce_small_fwd_block, &j);
    const bool bad = ml_loss_slots_bad(&slots);
    const double sum = ml_loss_slots_sum(&slots);
    ml_loss_slots_free(&slots);
    if (bad) return ml_cpu_bad_class_id(a);
    if (!none) *(float *)ml_data(out) = (float)ml_loss_reduce(&a->p, sum);
    return 0;
}

/* out[e] = coef[row[e]] for e < ne: each element gets its row's coefficient. */
static inline void ce_expand(const float *coef, const int32_t *row, int32_t ne, float *out) {
    for (int32_t e = 0; e < ne; e++) out[e] = coef[row[e]];
}
#endif

/* The gradient of rows r0 .. r0 + nb - 1 (nb <= 16), each row's grad_out G[r] (gstride
 * 1, "none") or s, from the saved logsumexps. */
static void ce_bwd_block(const ml_loss_args *a, int64_t r0, int nb, const float *G,
                         int64_t gstride, double s, double wtot, float *GX) {
    const int32_t C = (int32_t)a->p.cls.c;
    const int64_t ign = a->p.cls.ignore_index;
    const float *xb = (const float *)ml_data(a->input) + r0 * C;
    const int64_t *tb = (const int64_t *)ml_data(a->target) + r0;
    const float *W = a->weight ? (const float *)ml_data(a->weight) : ce_ones;
    const double *LSE = (const double *)ml_data(a->aux) + r0;
    const double ls = a->p.cls.label_smoothing, lsc = ls / (double)C;
    float *gb = GX + r0 * C;
    /* per row, as the reference's row_grad: g[k] = pa * softmax(x)[k] - sub, then
     * g[t] -= a1; rows that are ignored (or past nb) get keep = 0 and zeros */
    float lse[ML_CE_LANES], pa[ML_CE_LANES], sub[ML_CE_LANES], a1[ML_CE_LANES];
    float keep[ML_CE_LANES];
    int32_t tt[ML_CE_LANES];
    int64_t t[ML_CE_LANES];
    double sc[ML_CE_LANES], lsed[ML_CE_LANES];
    for (int j = 0; j < ML_CE_LANES; j++) {
        const int jj = j < nb ? j : 0;
        t[j] = tb[jj];
        sc[j] = gstride ? (double)G[(r0 + jj) * gstride] : s;
        lsed[j] = LSE[jj];
    }
    _Pragma("omp simd")
    for (int j = 0; j < ML_CE_LANES; j++) {
        const int64_t tj = t[j];
        const int ok = (j < nb) & (tj != ign) & (tj >= 0) & (tj < C);
        const int32_t tc = ok ? (int32_t)tj : 0;
        const double wt = (double)W[tc]; /* an unconditional load (see ce_fwd_block) */
        const float a1j = (float)(sc[j] * (1 - ls) * wt), a2j = (float)(sc[j] * lsc * wtot);
        lse[j] = (float)lsed[j];
        pa[j] = a1j + a2j;
        sub[j] = (float)(sc[j] * lsc);
        keep[j] = ok ? 1.0f : 0.0f;
        a1[j] = ok ? a1j : 0.0f;
        tt[j] = ok ? tc : -1;
    }
    const int32_t ne = nb * C;
    const int32_t *row = ml_cpu_ce_row_of(C);
#if defined(__AVX512F__)
    ml_cpu_ce16_backward_block(xb, ne, row, lse, pa, sub, keep, gb);
#else
    float e_lse[ML_CE_LANES * ML_CE_SMALL_C], e_pa[ML_CE_LANES * ML_CE_SMALL_C];
    float e_sub[ML_CE_LANES * ML_CE_SMALL_C], e_keep[ML_CE_LANES * ML_CE_SMALL_C];
    ce_expand(lse, row, ne, e_lse);
    ce_expand(pa, row, ne, e_pa);
    ce_expand(sub, row, ne, e_sub);
    ce_expand(keep, row, ne, e_keep);
    _Pragma("omp simd")
    for (int32_t e = 0; e < ne; e++) {
        const float p = e_pa[e] * ml_expf_nonpos(xb[e] - e_lse[e]) - e_sub[e];
        gb[e] = e_keep[e] != 0.0f ? p : 0.0f; /* ignored rows: 0, even for NaN logits */
    }
#endif
    for (int j = 0; j < nb; j++)
        if (tt[j] >= 0) gb[j * C + tt[j]] -= a1[j];
}

/* What the blocks of one ml_cpu_ce_small_backward call share. */
typedef struct {
    const ml_loss_args *a;
    const float *G;
    float *GX;
    double s, wtot;
    bool none;
} ce_small_bwd_job;

/* 16-row blocks [lo, hi) (independent: any split gives the same values) */
static void ce_small_bwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ce_small_bwd_job *j = ctx;
    const int64_t rows = j->a->p.cls.n;
    for (int64_t b = lo; b < hi; b++) {
        const int64_t r0 = b * ML_CE_LANES;
        const int nb = rows - r0 < ML_CE_LANES ? (int)(rows - r0) : ML_CE_LANES;
        ce_bwd_block(j->a, r0, nb, j->G, j->none ? 1 : 0, j->s, j->wtot, j->GX);
    }
}

int ml_cpu_ce_small_backward(const ml_loss_args *a, const ml_tensor *grad_out,
                             ml_tensor *grad_input) {
    const int64_t rows = a->p.cls.n, nblk = ml_nblocks(rows, ML_CE_LANES);
    ce_small_bwd_job j = {.a = a, .G = (const float *)ml_data(grad_out),
                          .GX = (float *)ml_data(grad_input),
                          .none = a->p.reduction == ML_REDUCTION_NONE};
    j.s = j.none ? 0 : ml_loss_grad_scale(&a->p, (double)j.G[0]);
    double wtot = 0;
    if (a->weight) {
        const float *W = (const float *)ml_data(a->weight);
        for (int64_t k = 0; k < a->p.cls.c; k++) wtot += (double)W[k];
    } else {
        wtot = (double)a->p.cls.c;
    }
    j.wtot = wtot;
    ml_parallel_for(nblk, ml_cpu_class_min_parallel(a->p.cls.c * ML_CE_LANES), ce_small_bwd_range,
                    &j);
    return 0;
}
