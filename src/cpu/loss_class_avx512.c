/* float32 cross_entropy with class ids, class dim last, with AVX-512 intrinsics:
 * the fast paths of the portable reference in loss_class.c (which they must match
 * to float32 rounding: tests/c/test_loss.c and tests/lua/loss_small_classes_spec.lua
 * compare them), and the inner loop of loss_class_small.c's backward. Compiled to
 * nothing without __AVX512F__ (the build compiles the CPU kernels per ISA level and
 * picks at run time; the portable code serves the others).
 *
 *  - c <= 16 (ce_block16t): 16 rows loaded as vectors and transposed by shuffles,
 *    so lane j holds row j; one kernel per class count, so the loops unroll and the
 *    16 vectors stay in registers. Each exp is taken once and kept for the
 *    gradient, which is transposed back and stored by row.
 *  - 17..31 classes (ce_block16): the 16 rows' lanes gathered; the gradient goes
 *    along the block's contiguous elements, each 16 of them getting their rows'
 *    coefficients by permutes.
 *  - 32 and more, or label smoothing (ce_rows16): one pass per row while it is in
 *    L1: its max, its exps stored into the gradient (summed in double), the
 *    logsumexp, then the exps scaled into the gradient in place: one exp per
 *    element, the input read once, the gradient written once.
 * Row maxima skip NaN logits (maxps); a row with a NaN gets a NaN loss and
 * gradient, an ignored row 0, NaN or not (the reference's behaviour). The exps of
 * the small paths are summed in float (see loss_class_small.c); the losses always
 * in double, each block of rows into its own slot (loss_cpu.h). */
#include "loss_cpu.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../error.h"
#include "vmath.h"

#define CE_LANES ML_CE_LANES
#define CE_SMALL_C ML_CE_SMALL_C
#define CE_CHUNK 16 /* 16-row blocks whose loss terms are taken together */

/* the lanes of the first n (<= 16, or all) rows or elements */
static inline __mmask16 lanes_of(int64_t n) {
    return n >= CE_LANES ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* lanes 0-7 (h = 0) or 8-15 (h = 1) of v widened to double */
static inline __m512d half_pd(__m512 v, int h) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(
        h ? _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)
          : _mm512_extractf64x4_pd(_mm512_castps_pd(v), 0)));
}

/* The class ids of a 16-row block (lanes: the rows there are): which rows are used
 * (not ignore_index), which of those are out of [0, C), and the ids of the rows
 * that are fine (0 elsewhere), as 32-bit lanes. */
typedef struct {
    __mmask16 use, oob, ok;
    __m512i tc;
} ce_ids;

static inline ce_ids ce_class_ids(const int64_t *tb, __mmask16 lanes, int64_t ignore_index,
                                  int32_t C) {
    const __m512i t_lo = _mm512_maskz_loadu_epi64((__mmask8)lanes, tb);
    const __m512i t_hi = _mm512_maskz_loadu_epi64((__mmask8)(lanes >> 8), tb + 8);
    const __m512i ignv = _mm512_set1_epi64(ignore_index), cv = _mm512_set1_epi64(C);
    const __m512i zero = _mm512_setzero_si512();
    const __mmask16 is_ign = (__mmask16)(_mm512_cmpeq_epi64_mask(t_lo, ignv) |
                                         (unsigned)_mm512_cmpeq_epi64_mask(t_hi, ignv) << 8);
    const __mmask16 oob = (__mmask16)((_mm512_cmplt_epi64_mask(t_lo, zero) |
                                       _mm512_cmpge_epi64_mask(t_lo, cv)) |
                                      (unsigned)(_mm512_cmplt_epi64_mask(t_hi, zero) |
                                                 _mm512_cmpge_epi64_mask(t_hi, cv)) << 8);
    ce_ids r;
    r.use = lanes & (__mmask16)~is_ign;
    r.oob = oob;
    r.ok = r.use & (__mmask16)~oob;
    const __m512i t32 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(t_lo)),
                                           _mm512_cvtepi64_epi32(t_hi), 1);
    r.tc = _mm512_maskz_mov_epi32(r.ok, t32);
    return r;
}

/* What a block of 16 rows leaves for its loss terms, which are taken for many
 * blocks at once (their logs then overlap instead of each block waiting on its own). */
typedef struct {
    __m512 m, s, xv, wt; /* row max, sum of exp(x - max), x[t], w[t] (0 unless ok) */
    __mmask16 ok;        /* rows whose class id counts */
} ce_stats;

/* The loss terms of nblk 16-row blocks from row r0 (rows before hi): -w[t] (x[t] -
 * lse) in double, lse = max + log(sum); "none" values into O, logsumexps into LSE.
 * Returns their sum (16 double lanes over the blocks, then added across). */
static double ce_terms16(const ce_stats *st, int nblk, int64_t r0, int64_t hi, double *LSE,
                         float *O) {
    __m512d acc = _mm512_setzero_pd();
    for (int b = 0; b < nblk; b++, r0 += CE_LANES) {
        const __mmask16 lanes = lanes_of(hi - r0);
        const __m512 lg = ml_log16(st[b].s);
        const __m512d lse_lo = _mm512_add_pd(half_pd(st[b].m, 0), half_pd(lg, 0));
        const __m512d lse_hi = _mm512_add_pd(half_pd(st[b].m, 1), half_pd(lg, 1));
        const __mmask16 ok = st[b].ok;
        const __m512d l_lo = _mm512_maskz_mul_pd((__mmask8)ok, half_pd(st[b].wt, 0),
                                                 _mm512_sub_pd(lse_lo, half_pd(st[b].xv, 0)));
        const __m512d l_hi = _mm512_maskz_mul_pd((__mmask8)(ok >> 8), half_pd(st[b].wt, 1),
                                                 _mm512_sub_pd(lse_hi, half_pd(st[b].xv, 1)));
        acc = _mm512_add_pd(acc, _mm512_add_pd(l_lo, l_hi));
        if (LSE) {
            _mm512_mask_storeu_pd(LSE + r0, (__mmask8)lanes, lse_lo);
            _mm512_mask_storeu_pd(LSE + r0 + 8, (__mmask8)(lanes >> 8), lse_hi);
        }
        if (O) {
            const __m512 l = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(l_lo)),
                                                _mm512_cvtpd_ps(l_hi), 1);
            _mm512_mask_storeu_ps(O + r0, lanes, l);
        }
    }
    return _mm512_reduce_add_pd(acc);
}

/* r[j] (16 vectors) transposed in place: r[k] lane j = old r[j] lane k. */
static inline void tr16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
            t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + i + 4], 0x88);
            t[8 * h + i + 4] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + i + 4], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

/* --- c <= 16: a block of 16 rows transposed ------------------------------------ */

/* The statistics of rows r0 .. r0 + nb - 1 (nb <= 16) into *st, and when GC is not
 * NULL their gradient for a grad_out of 1 (times gsc, 1 / norm for "mean"). Returns
 * whether a class id was out of range. */
static inline __attribute__((always_inline)) int
ce_block16t(const ml_loss_args *a, int64_t r0, int nb, float *GC, double gsc, ce_stats *st,
            const int32_t C) {
    const float *xb = (const float *)ml_data(a->input) + r0 * C;
    const int64_t *tb = (const int64_t *)ml_data(a->target) + r0;
    const __mmask16 lanes = lanes_of(nb);
    const __mmask16 cm = (__mmask16)((1u << C) - 1);
    __m512 v[16];
    for (int j = 0; j < 16; j++) v[j] = _mm512_maskz_loadu_ps(j < nb ? cm : 0, xb + j * C);
    tr16x16(v);
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int32_t k = 0; k < C; k++) m = _mm512_max_ps(v[k], m); /* NaN logits are not the max */
    const ce_ids ids = ce_class_ids(tb, lanes, a->p.cls.ignore_index, C);
    const __mmask16 use = ids.use, oob = ids.oob, ok = ids.ok;
    const __m512i tc = ids.tc;
    __m512 s = _mm512_setzero_ps(), xv = _mm512_setzero_ps();
    for (int32_t k = 0; k < C; k++) {
        xv = _mm512_mask_mov_ps(xv, _mm512_cmpeq_epi32_mask(tc, _mm512_set1_epi32(k)), v[k]);
        v[k] = ml_exp16_nonpos(_mm512_sub_ps(v[k], m));
        s = _mm512_add_ps(s, v[k]);
    }
    const __m512 wt = a->weight
        ? _mm512_maskz_permutexvar_ps(ok, tc, _mm512_maskz_loadu_ps(cm, ml_data(a->weight)))
        : _mm512_maskz_mov_ps(ok, _mm512_set1_ps(1.0f));
    st->m = m;
    st->s = s;
    st->xv = xv;
    st->wt = wt;
    st->ok = ok;
    if (GC) {
        /* g[k] = pa * exp(x[k] - m) / s with pa = gsc * w[t], g[t] -= pa; rows not
         * used: 0, even for NaN logits */
        const __m512 pa = _mm512_mul_ps(wt, _mm512_set1_ps((float)gsc));
        const __m512 q = _mm512_div_ps(pa, s);
        for (int32_t k = 0; k < C; k++) {
            const __mmask16 at_t = ok & _mm512_cmpeq_epi32_mask(tc, _mm512_set1_epi32(k));
            const __m512 g = _mm512_maskz_mul_ps(ok, v[k], q);
            v[k] = _mm512_mask_sub_ps(g, at_t, g, pa);
        }
        for (int32_t k = C; k < 16; k++) v[k] = _mm512_setzero_ps();
        tr16x16(v);
        float *gb = GC + r0 * C;
        for (int j = 0; j < nb; j++) _mm512_mask_storeu_ps(gb + j * C, cm, v[j]);
    }
    return (use & oob) != 0;
}

/* ce_block16t made for each c: with c a constant the loops over the classes unroll,
 * the 16 vectors stay in registers and the transposes lose the shuffles of zeros */
typedef int (*ce_block16t_fn)(const ml_loss_args *, int64_t, int, float *, double, ce_stats *);
#define CE_BLOCK16T_FOR(N)                                                             \
    static int ce_block16t_##N(const ml_loss_args *a, int64_t r0, int nb, float *GC,   \
                               double gsc, ce_stats *st) {                             \
        return ce_block16t(a, r0, nb, GC, gsc, st, N);                                 \
    }
CE_BLOCK16T_FOR(1) CE_BLOCK16T_FOR(2) CE_BLOCK16T_FOR(3) CE_BLOCK16T_FOR(4)
CE_BLOCK16T_FOR(5) CE_BLOCK16T_FOR(6) CE_BLOCK16T_FOR(7) CE_BLOCK16T_FOR(8)
CE_BLOCK16T_FOR(9) CE_BLOCK16T_FOR(10) CE_BLOCK16T_FOR(11) CE_BLOCK16T_FOR(12)
CE_BLOCK16T_FOR(13) CE_BLOCK16T_FOR(14) CE_BLOCK16T_FOR(15) CE_BLOCK16T_FOR(16)
#undef CE_BLOCK16T_FOR
static const ce_block16t_fn ce_block16t_of[17] = {
    NULL, ce_block16t_1, ce_block16t_2, ce_block16t_3, ce_block16t_4, ce_block16t_5,
    ce_block16t_6, ce_block16t_7, ce_block16t_8, ce_block16t_9, ce_block16t_10,
    ce_block16t_11, ce_block16t_12, ce_block16t_13, ce_block16t_14, ce_block16t_15,
    ce_block16t_16};

/* --- 17..31 classes: a block of 16 rows by gathers ------------------------------- */

/* The loss terms of rows r0 .. r0 + nb - 1 (nb <= 16): logsumexps into LSE, "none"
 * values into O (each when not NULL), and with GC the rows' gradient (times gsc);
 * returns their sum and raises *bad for an id out of range. */
static double ce_block16(const ml_loss_args *a, int64_t r0, int nb, double *LSE, float *O,
                         float *GC, double gsc, int *bad) {
    const int32_t C = (int32_t)a->p.cls.c;
    const float *xb = (const float *)ml_data(a->input) + r0 * C;
    const int64_t *tb = (const int64_t *)ml_data(a->target) + r0;
    const float *W = a->weight ? (const float *)ml_data(a->weight) : NULL;
    const __mmask16 lanes = lanes_of(nb);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* lane j -> its row's offset; lanes past nb read row 0 */
    const __m512i off = _mm512_maskz_mullo_epi32(lanes, iota, _mm512_set1_epi32(C));
    __m512 xt[CE_SMALL_C];
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int32_t k = 0; k < C; k++) {
        xt[k] = _mm512_i32gather_ps(off, xb + k, 4);
        m = _mm512_max_ps(xt[k], m); /* a NaN logit does not become the max */
    }
    __m512 s = _mm512_setzero_ps();
    for (int32_t k = 0; k < C; k++) s = _mm512_add_ps(s, ml_exp16_nonpos(_mm512_sub_ps(xt[k], m)));
    const __m512 lg = ml_log16(s);
    const ce_ids ids = ce_class_ids(tb, lanes, a->p.cls.ignore_index, C);
    const __mmask16 ok = ids.ok;
    const __m512i tc = ids.tc;
    const __m512 xv = _mm512_i32gather_ps(_mm512_add_epi32(off, tc), xb, 4);
    const __m512 wt = W ? _mm512_maskz_mov_ps(ok, _mm512_i32gather_ps(tc, W, 4))
                        : _mm512_maskz_mov_ps(ok, _mm512_set1_ps(1.0f));
    /* the loss terms in double: -wt * (x[t] - (max + log(sum))) */
    const __m512d lse_lo = _mm512_add_pd(half_pd(m, 0), half_pd(lg, 0));
    const __m512d lse_hi = _mm512_add_pd(half_pd(m, 1), half_pd(lg, 1));
    const __m512d l_lo = _mm512_maskz_mul_pd((__mmask8)ok, half_pd(wt, 0),
                                             _mm512_sub_pd(lse_lo, half_pd(xv, 0)));
    const __m512d l_hi = _mm512_maskz_mul_pd((__mmask8)(ok >> 8), half_pd(wt, 1),
                                             _mm512_sub_pd(lse_hi, half_pd(xv, 1)));
    *bad |= (ids.use & ids.oob) != 0;
    if (LSE) {
        _mm512_mask_storeu_pd(LSE + r0, (__mmask8)lanes, lse_lo);
        _mm512_mask_storeu_pd(LSE + r0 + 8, (__mmask8)(lanes >> 8), lse_hi);
    }
    if (O) {
        const __m512 l = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(l_lo)),
                                            _mm512_cvtpd_ps(l_hi), 1);
        _mm512_mask_storeu_ps(O + r0, lanes, l);
    }
    if (GC) {
        /* g[k] = pa * exp(x[k] - lse) with pa = gsc * w[t], and g[t] -= pa; ignored
         * rows 0 */
        const __m512 lsev = _mm512_add_ps(m, lg);
        const __m512 pav = _mm512_mul_ps(wt, _mm512_set1_ps((float)gsc));
        /* each row's target as an element of the block (-1: none) */
        const __m512i tpos = _mm512_mask_add_epi32(_mm512_set1_epi32(-1), ok, off, tc);
        const int32_t *row = ml_cpu_ce_row_of(C);
        float *gb = GC + r0 * C;
        const int32_t ne = nb * C;
        __m512i ev = iota; /* the elements' positions in the block */
        for (int32_t e = 0; e < ne; e += 16) {
            const __mmask16 mk = lanes_of(ne - e);
            const __m512i idx = _mm512_maskz_loadu_epi32(mk, row + e);
            const __m512 x = _mm512_maskz_loadu_ps(mk, xb + e);
            const __m512 pe = _mm512_permutexvar_ps(idx, pav);
            const __m512i te = _mm512_permutexvar_epi32(idx, tpos);
            __m512 g = _mm512_mul_ps(pe, ml_exp16_nonpos(_mm512_sub_ps(x, _mm512_permutexvar_ps(idx, lsev))));
            g = _mm512_mask_sub_ps(g, _mm512_cmpeq_epi32_mask(te, ev), g, pe);
            /* rows ignored (tpos -1): 0, even for NaN logits */
            g = _mm512_maskz_mov_ps(_mm512_cmpge_epi32_mask(te, _mm512_setzero_si512()), g);
            _mm512_mask_storeu_ps(gb + e, mk, g);
            ev = _mm512_add_epi32(ev, _mm512_set1_epi32(16));
        }
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(l_lo, l_hi));
}

/* --- c < 32: the summed blocks -------------------------------------------------- */

/* What the blocks of one ml_cpu_ce16_forward call share. */
typedef struct {
    const ml_loss_args *a;
    double *LSE;
    float *O, *GC;
    double gsc;
    ml_loss_slots *slots;
} ce16_job;

/* Rows [lo, hi) of block blk (lo a multiple of 16): with c <= 16 in chunks of 16
 * 16-row blocks (their loss terms together), else 16 rows at a time; the partial
 * sums added in order into the block's slot. */
static void ce16_fwd_block(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    const ce16_job *j = ctx;
    const ml_loss_args *a = j->a;
    double acc = 0;
    int bad = 0;
    if (a->p.cls.c <= 16) {
        const ce_block16t_fn block = ce_block16t_of[a->p.cls.c];
        for (int64_t c0 = lo; c0 < hi; c0 += CE_CHUNK * CE_LANES) {
            ce_stats st[CE_CHUNK];
            int nbl = 0;
            for (int64_t r0 = c0; r0 < hi && nbl < CE_CHUNK; r0 += CE_LANES, nbl++) {
                const int nb = hi - r0 < CE_LANES ? (int)(hi - r0) : CE_LANES;
                bad |= block(a, r0, nb, j->GC, j->gsc, &st[nbl]);
            }
            acc += ce_terms16(st, nbl, c0, hi, j->LSE, j->O);
        }
    } else {
        for (int64_t r0 = lo; r0 < hi; r0 += CE_LANES) {
            const int nb = hi - r0 < CE_LANES ? (int)(hi - r0) : CE_LANES;
            acc += ce_block16(a, r0, nb, j->LSE, j->O, j->GC, j->gsc, &bad);
        }
    }
    j->slots->sum[blk] = acc;
    j->slots->bad[blk] = (unsigned char)bad;
}

int ml_cpu_ce16_forward(ml_loss_args *a, ml_tensor *out) {
    const int64_t rows = a->p.cls.n, R = ml_cpu_class_block_rows(a->p.cls.c);
    const bool none = a->p.reduction == ML_REDUCTION_NONE;
    ml_loss_slots slots;
    if (ml_loss_slots_init(&slots, ml_nblocks(rows, R), ML_LOSS_CROSS_ENTROPY)) return -1;
    ce16_job j = {
        .a = a,
        .LSE = a->aux ? (double *)ml_data(a->aux) : NULL,
        .O = none ? (float *)ml_data(out) : NULL,
        .GC = a->grad_cache ? (float *)ml_data(a->grad_cache) : NULL,
        .gsc = a->p.reduction == ML_REDUCTION_MEAN ? 1.0 / a->p.norm : 1.0,
        .slots = &slots,
    };
    ml_parallel_blocks(rows, R, ml_cpu_class_min_parallel(a->p.cls.c), ce16_fwd_block, &j);
    const bool bad = ml_loss_slots_bad(&slots);
    const double sum = ml_loss_slots_sum(&slots);
    ml_loss_slots_free(&slots);
    if (bad) return ml_cpu_bad_class_id(a);
    if (!none) *(float *)ml_data(out) = (float)ml_loss_reduce(&a->p, sum);
    return 0;
}

/* --- any c, one pass per row ------------------------------------------------------ */

/* A row's largest logit (NaN logits skipped: a row of NaNs gives -inf). */
static inline float row_max16(const float *x, int64_t C) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int64_t k = 0; k < C; k += 16) {
        const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), ml_mask16(C - k), x + k);
        mv = _mm512_max_ps(v, mv); /* NaN logits are not the max (as row_max) */
    }
    return _mm512_reduce_max_ps(mv);
}

/* The sum of exp(x - m) over a row, in double; the exps stored into g when g is not
 * NULL (the gradient's first pass). */
static inline double row_sumexp16(const float *x, int64_t C, float m, float *g) {
    const __m512 mv = _mm512_set1_ps(m);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t k = 0; k < C; k += 16) {
        const __mmask16 mk = ml_mask16(C - k);
        const __m512 e = _mm512_maskz_mov_ps(
            mk, ml_exp16_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + k), mv)));
        if (g) _mm512_mask_storeu_ps(g + k, mk, e);
        s0 = _mm512_add_pd(s0, half_pd(e, 0));
        s1 = _mm512_add_pd(s1, half_pd(e, 1));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

/* What the rows of one ml_cpu_ce_rows16_forward call share (as the reference's
 * class_job): O for "none", GC and LSE when wanted, gsc the gradient's scale. */
typedef struct {
    const float *X, *W;
    const int64_t *TI;
    float *O, *GC;
    double *LSE;
    int64_t C, ign;
    double ls, lsc, wtot, gsc;
    ml_loss_slots *slots;
} rows16_job;

/* Rows [lo, hi) of block blk, the row losses summed in row order into its slot. */
static void rows16_fwd_block(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    const rows16_job *j = ctx;
    const int64_t C = j->C;
    const float *W = j->W;
    const double ls = j->ls, lsc = j->lsc;
    double acc = 0;
    int bad = 0;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = j->X + r * C;
        float *g = j->GC ? j->GC + r * C : NULL;
        const int64_t t = j->TI[r];
        double l = 0;
        if (t == j->ign || t < 0 || t >= C) {
            bad |= t != j->ign;
            if (g) memset(g, 0, sizeof(float) * (size_t)C);
            if (j->LSE) j->LSE[r] = 0; /* not read: backward gives such a row 0 */
        } else {
            const float m = row_max16(x, C);
            const double s = row_sumexp16(x, C, m, g);
            const double lse = (double)m + log(s);
            if (j->LSE) j->LSE[r] = lse;
            const double wt = W ? (double)W[t] : 1.0;
            l = -(1 - ls) * wt * ((double)x[t] - lse);
            if (ls > 0) {
                double sm = 0;
                for (int64_t k = 0; k < C; k++) sm += (W ? (double)W[k] : 1.0) * ((double)x[k] - lse);
                l -= lsc * sm;
            }
            if (g) {
                /* as the reference's row_grad: g = pa * softmax(x) - sub (* w[k] with
                 * weights), g[t] -= a1 */
                const float a1 = (float)(j->gsc * (1 - ls) * wt), a2 = (float)(j->gsc * lsc * j->wtot);
                const __m512 q = _mm512_set1_ps((float)((double)(a1 + a2) / s));
                const __m512 sub = _mm512_set1_ps((float)(j->gsc * lsc));
                for (int64_t k = 0; k < C; k += 16) {
                    const __mmask16 mk = ml_mask16(C - k);
                    const __m512 e = _mm512_maskz_loadu_ps(mk, g + k);
                    const __m512 wk = ls > 0 && W ? _mm512_maskz_loadu_ps(mk, W + k) : _mm512_set1_ps(1.0f);
                    _mm512_mask_storeu_ps(g + k, mk, _mm512_fnmadd_ps(sub, wk, _mm512_mul_ps(e, q)));
                }
                g[t] -= a1;
            }
        }
        if (j->O) j->O[r] = (float)l;
        else acc += l;
    }
    j->slots->sum[blk] = acc;
    j->slots->bad[blk] = (unsigned char)bad;
}

int ml_cpu_ce_rows16_forward(ml_loss_args *a, ml_tensor *out) {
    const int64_t rows = a->p.cls.n, C = a->p.cls.c, R = ml_cpu_class_block_rows(C);
    const bool none = a->p.reduction == ML_REDUCTION_NONE;
    ml_loss_slots slots;
    if (ml_loss_slots_init(&slots, ml_nblocks(rows, R), ML_LOSS_CROSS_ENTROPY)) return -1;
    rows16_job j = {
        .X = (const float *)ml_data(a->input),
        .W = a->weight ? (const float *)ml_data(a->weight) : NULL,
        .TI = (const int64_t *)ml_data(a->target),
        .O = none ? (float *)ml_data(out) : NULL,
        .GC = a->grad_cache ? (float *)ml_data(a->grad_cache) : NULL,
        .LSE = a->aux ? (double *)ml_data(a->aux) : NULL,
        .C = C,
        .ign = a->p.cls.ignore_index,
        .ls = a->p.cls.label_smoothing,
        .lsc = a->p.cls.label_smoothing / (double)C,
        .gsc = a->p.reduction == ML_REDUCTION_MEAN ? 1.0 / a->p.norm : 1.0,
        .slots = &slots,
    };
    double wtot = 0;
    if (j.W) for (int64_t k = 0; k < C; k++) wtot += (double)j.W[k];
    else wtot = (double)C;
    j.wtot = wtot;
    ml_parallel_blocks(rows, R, ml_cpu_class_min_parallel(C), rows16_fwd_block, &j);
    const bool bad = ml_loss_slots_bad(&slots);
    const double sum = ml_loss_slots_sum(&slots);
    ml_loss_slots_free(&slots);
    if (bad) return ml_cpu_bad_class_id(a);
    if (!none) *(float *)ml_data(out) = (float)ml_loss_reduce(&a->p, sum);
    return 0;
}

/* --- backward's inner loop (loss_class_small.c) ----------------------------------- */

void ml_cpu_ce16_backward_block(const float *xb, int32_t ne, const int32_t *row,
                                const float *lse, const float *pa, const float *sub,
                                const float *keep, float *gb) {
    /* each 16 elements' row coefficients: one permute of the 16-row table each */
    const __m512 lv = _mm512_loadu_ps(lse), pv = _mm512_loadu_ps(pa), sv = _mm512_loadu_ps(sub);
    const __m512 kv = _mm512_loadu_ps(keep);
    for (int32_t e = 0; e < ne; e += 16) {
        const __mmask16 mk = lanes_of(ne - e);
        const __m512i idx = _mm512_maskz_loadu_epi32(mk, row + e);
        const __m512 x = _mm512_maskz_loadu_ps(mk, xb + e);
        const __m512 ex = ml_exp16_nonpos(_mm512_sub_ps(x, _mm512_permutexvar_ps(idx, lv)));
        const __m512 p = _mm512_fmsub_ps(_mm512_permutexvar_ps(idx, pv), ex,
                                         _mm512_permutexvar_ps(idx, sv));
        /* ignored rows: 0, even for NaN logits */
        const __mmask16 kept = _mm512_cmp_ps_mask(_mm512_permutexvar_ps(idx, kv),
                                                  _mm512_setzero_ps(), _CMP_NEQ_OQ);
        _mm512_mask_storeu_ps(gb + e, mk, _mm512_maskz_mov_ps(kept, p));
    }
}

#endif /* __AVX512F__ */
