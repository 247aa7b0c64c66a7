/* The conv family's CPU kernels for one float type, included once per type by
 * conv.c with
 *   T       the element type        SUFFIX  the names' suffix (f32, f64)
 *   GEMM    T's single-threaded row-major product (conv.c: gemm_f32 / gemm_f64)
 *
 * Per sample, as Caffe's im2col: the input's patches become the columns of
 * col [c_in kh kw, oh ow] (a group's rows are one block of it), and
 *   forward          y_n[g] [co, P]  = w[g] [co, K] @ col[g] [K, P]
 *   backward_input   gcol[g] [K, P]  = w[g]^T [K, co] @ g_n[g] [co, P], then col2im
 *   backward_weight  gw[g] [co, K]  += g_n[g] [co, P] @ col[g]^T [P, K]
 * with K = c_in / groups * kh * kw, co = c_out / groups, P = oh ow. Samples go
 * to threads in blocks fixed by the batch size (conv.c: sample_block); the weight
 * gradient sums each block's samples in order into the block's own slot and then
 * the slots in block order, so its bits do not depend on the threads. */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)
#define IM2COL ML_CAT(im2col, SUFFIX)
#define COL2IM ML_CAT(col2im, SUFFIX)
#define FWD_BLOCK ML_CAT(conv_forward_block, SUFFIX)
#define BWI_BLOCK ML_CAT(conv_backward_input_block, SUFFIX)
#define BWW_BLOCK ML_CAT(conv_backward_weight_block, SUFFIX)
#define BWW_COMBINE ML_CAT(conv_backward_weight_combine, SUFFIX)
#define BIAS_SLOT_ADD ML_CAT(bias_slot_add, SUFFIX)

/* plane [., ow]: the columns [0, lo) and [hi, ow) of the rows [oy0, oy1) set to 0.
 * Column by column: a padding column or two, down 14 or 28 rows (row by row, the
 * compiler made each row's one or two stores a memset call). */
static inline void ML_CAT(zero_columns, SUFFIX)(T *restrict plane, int64_t ow, int64_t oy0,
                                                int64_t oy1, int64_t lo, int64_t hi) {
    for (int64_t ox = 0; ox < ow; ox++) {
        if (ox == lo) ox = hi;
        if (ox >= ow) break;
        for (int64_t oy = oy0; oy < oy1; oy++) plane[oy * ow + ox] = 0;
    }
}

/* IM2COL for is_shift geometries: per plane one flat copy of its rows inside the
 * input (rows of 14 or 28 were a short copy each, more call than copy), then the
 * positions in the padding set to 0, those the flat copy filled from the
 * neighbouring row included. The same values as the general loop. */
static void ML_CAT(im2col_shift, SUFFIX)(const T *restrict x, const ml_conv_geom *g, T *restrict col) {
    const int64_t ow = g->ow, P = g->oh * ow, HW = g->h * g->w;
    for (int64_t c = 0; c < g->c_in; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                T *restrict d = col + ((c * g->kh + ki) * g->kw + kj) * P;
                int64_t oy0, oy1, lo, hi, shift;
                if (!shifted_plane(g, ki, kj, &oy0, &oy1, &lo, &hi, &shift)) {
                    for (int64_t p = 0; p < P; p++) d[p] = 0;
                    continue;
                }
                const T *restrict s = x + c * HW; /* read at p + shift, inside the plane */
                const int64_t p0 = oy0 * ow + lo, p1 = (oy1 - 1) * ow + hi;
                for (int64_t p = 0; p < oy0 * ow; p++) d[p] = 0;
#pragma omp simd
                for (int64_t p = p0; p < p1; p++) d[p] = s[p + shift];
                for (int64_t p = oy1 * ow; p < P; p++) d[p] = 0;
                ML_CAT(zero_columns, SUFFIX)(d, ow, oy0, oy1, lo, hi);
            }
}

/* col [c_in kh kw, oh ow] from one sample's x [c_in, h, w]; outside the input, 0. */
static void IM2COL(const T *restrict x, const ml_conv_geom *g, T *restrict col) {
    if (is_shift(g)) {
        ML_CAT(im2col_shift, SUFFIX)(x, g, col);
        return;
    }
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow, P = oh * ow;
    for (int64_t c = 0; c < g->c_in; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                T *restrict dst = col + ((c * g->kh + ki) * g->kw + kj) * P;
                const int64_t ix0 = kj * g->dw - g->pw; /* ix = ox * sw + ix0 */
                /* the ox whose ix is inside [0, w): [lo, hi) */
                int64_t lo = ix0 >= 0 ? 0 : (-ix0 + g->sw - 1) / g->sw;
                int64_t hi = w - ix0 <= 0 ? 0 : (w - ix0 + g->sw - 1) / g->sw;
                if (hi > ow) hi = ow;
                if (lo > hi) lo = hi;
                for (int64_t oy = 0; oy < oh; oy++) {
                    T *restrict d = dst + oy * ow;
                    const int64_t iy = oy * g->sh - g->ph + ki * g->dh;
                    if (iy < 0 || iy >= h) {
                        for (int64_t ox = 0; ox < ow; ox++) d[ox] = 0;
                        continue;
                    }
                    const T *restrict s = x + (c * h + iy) * w + ix0;
                    for (int64_t ox = 0; ox < lo; ox++) d[ox] = 0;
                    if (g->sw == 1) /* a loop, not memcpy: rows are short (14, 28) */
#pragma omp simd
                        for (int64_t ox = lo; ox < hi; ox++) d[ox] = s[ox];
                    else
                        for (int64_t ox = lo; ox < hi; ox++) d[ox] = s[ox * g->sw];
                    for (int64_t ox = hi; ox < ow; ox++) d[ox] = 0;
                }
            }
}

/* COL2IM for is_shift geometries, gathered: each element of x is the sum of its
 * taps, added in plane order in a register and stored once (adding plane after
 * plane into x, each pass shifted by one element against the last, ran at a
 * fraction of the stores' speed). The entries of col in the padding are set to 0
 * first, so that in the middle of a plane, where every tap is inside the input,
 * the sum needs no test (a tap whose column falls outside the input reads such a
 * 0 from the neighbouring row). The same terms in the same order as the general
 * loop: the same bits. */
static void ML_CAT(col2im_shift, SUFFIX)(T *restrict col, const ml_conv_geom *g, T *restrict x) {
    const int64_t ow = g->ow, P = g->oh * ow, HW = g->h * g->w, K = g->kh * g->kw;
    shift_tap taps[ML_SHIFT_MAX_TAPS];
    int64_t mid0, mid1; /* where every tap is inside */
    const int nt = shift_taps(g, taps, &mid0, &mid1);
    const T *src[ML_SHIFT_MAX_TAPS];
    for (int64_t c = 0; c < g->c_in; c++) {
        for (int i = 0; i < nt; i++) {
            const shift_tap *tp = &taps[i];
            T *s = col + (c * K + tp->t) * P;
            ML_CAT(zero_columns, SUFFIX)(s, ow, tp->oy0, tp->oy1, tp->lo, tp->hi);
            src[i] = s;
        }
        T *restrict xc = x + c * HW;
        for (int64_t q = 0; q < HW; q++) {
            if (q == mid0) q = mid1;
            if (q >= HW) break;
            T acc = 0;
            for (int i = 0; i < nt; i++)
                if (q >= taps[i].a && q < taps[i].b) acc += src[i][q - taps[i].shift];
            xc[q] = acc;
        }
        for (int64_t q0 = mid0; q0 < mid1; q0 += ML_SHIFT_CHUNK) { /* a chunk in registers */
            const int64_t n = mid1 - q0 < ML_SHIFT_CHUNK ? mid1 - q0 : ML_SHIFT_CHUNK;
            T acc[ML_SHIFT_CHUNK] = {0};
            for (int i = 0; i < nt; i++) {
                const T *restrict si = src[i] + (q0 - taps[i].shift);
                if (n == ML_SHIFT_CHUNK) {
#pragma omp simd
                    for (int64_t k = 0; k < ML_SHIFT_CHUNK; k++) acc[k] += si[k];
                } else {
                    for (int64_t k = 0; k < n; k++) acc[k] += si[k];
                }
            }
            for (int64_t k = 0; k < n; k++) xc[q0 + k] = acc[k];
        }
    }
}

/* x [c_in, h, w] = the patches of col [c_in kh kw, oh ow] put back in place and
 * added (the adjoint of IM2COL); col is scratch (is_shift geometries zero its
 * padding entries). One thread per sample: a fixed order. */
static void COL2IM(T *restrict col, const ml_conv_geom *g, T *restrict x) {
    if (is_shift(g)) {
        ML_CAT(col2im_shift, SUFFIX)(col, g, x);
        return;
    }
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow, P = oh * ow;
    memset(x, 0, (size_t)(g->c_in * h * w) * sizeof(T));
    for (int64_t c = 0; c < g->c_in; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                const T *restrict src = col + ((c * g->kh + ki) * g->kw + kj) * P;
                const int64_t ix0 = kj * g->dw - g->pw;
                int64_t lo = ix0 >= 0 ? 0 : (-ix0 + g->sw - 1) / g->sw;
                int64_t hi = w - ix0 <= 0 ? 0 : (w - ix0 + g->sw - 1) / g->sw;
                if (hi > ow) hi = ow;
                if (lo > hi) lo = hi;
                for (int64_t oy = 0; oy < oh; oy++) {
                    const int64_t iy = oy * g->sh - g->ph + ki * g->dh;
                    if (iy < 0 || iy >= h) continue;
                    const T *restrict s = src + oy * ow;
                    T *restrict d = x + (c * h + iy) * w + ix0;
                    if (g->sw == 1) {
#pragma omp simd
                        for (int64_t ox = lo; ox < hi; ox++) d[ox] += s[ox];
                    } else {
                        for (int64_t ox = lo; ox < hi; ox++) d[ox * g->sw] += s[ox];
                    }
                }
            }
}

/* forward for the samples [lo, hi) of one block */
static void FWD_BLOCK(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    (void)blk;
    const conv_job *j = ctx;
    const ml_conv_geom *g = j->g;
    const int64_t P = g->oh * g->ow, G = g->groups, co = g->c_out / G;
    const int64_t K = g->c_in / G * g->kh * g->kw;
    const T *w = j->w, *bias = j->bias;
    const size_t col_bytes = (size_t)(K * G * P) * sizeof(T);
    T *col = j->direct ? NULL : scratch_alloc(col_bytes);
    if (!j->direct && !col) {
        conv_oom(j);
        return;
    }
    for (int64_t n = lo; n < hi; n++) {
        const T *xn = (const T *)j->x + n * g->c_in * g->h * g->w;
        T *yn = (T *)j->y + n * g->c_out * P;
        const T *cn = xn; /* 1x1, stride 1, no pad: x already is col */
        if (!j->direct) {
            IM2COL(xn, g, col);
            cn = col;
        }
        for (int64_t gi = 0; gi < G; gi++) {
            T *c = yn + gi * co * P;
            if (bias)
                for (int64_t o = 0; o < co; o++) {
                    const T b = bias[gi * co + o];
                    for (int64_t p = 0; p < P; p++) c[o * P + p] = b;
                }
            GEMM(false, false, co, P, K, w + gi * co * K, K, cn + gi * K * P, P, bias ? 1 : 0,
                 c, P);
        }
    }
    scratch_free(col, col_bytes);
}

/* backward_input for the samples [lo, hi) of one block */
static void BWI_BLOCK(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    (void)blk;
    const conv_job *j = ctx;
    const ml_conv_geom *g = j->g;
    const int64_t P = g->oh * g->ow, G = g->groups, co = g->c_out / G;
    const int64_t K = g->c_in / G * g->kh * g->kw, HW = g->h * g->w;
    const T *w = j->w, *bias = j->bias;
    const size_t col_bytes = (size_t)(K * G * P) * sizeof(T);
    T *col = j->direct ? NULL : scratch_alloc(col_bytes);
    if (!j->direct && !col) {
        conv_oom(j);
        return;
    }
    for (int64_t n = lo; n < hi; n++) {
        const T *gn = (const T *)j->g_out + n * g->c_out * P;
        T *xn = (T *)j->y + n * g->c_in * HW;
        T *cn = j->direct ? xn : col; /* 1x1, stride 1, no pad: gcol is gx */
        for (int64_t gi = 0; gi < G; gi++)
            GEMM(true, false, K, P, co, w + gi * co * K, K, gn + gi * co * P, P, 0,
                 cn + gi * K * P, P);
        if (!j->direct) {
            COL2IM(col, g, xn);
        }
        if (bias)
            for (int64_t c = 0; c < g->c_in; c++)
                for (int64_t p = 0; p < HW; p++) xn[c * HW + p] += bias[c];
    }
    scratch_free(col, col_bytes);
}

/* bslot [c_out] += the rows of one sample's g [c_out, P] summed (the bias gradient) */
static void BIAS_SLOT_ADD(const T *gn, int64_t c_out, int64_t P, double *bslot) {
    for (int64_t o = 0; o < c_out; o++) {
        const T *r = gn + o * P;
        T s = 0; /* a row in T (16 lanes), the rows in double */
#pragma omp simd reduction(+ : s)
        for (int64_t p = 0; p < P; p++) s += r[p];
        bslot[o] += (double)s;
    }
}

/* backward_weight: block blk's samples [lo, hi) summed, in order, into slot blk
 * (and their bias gradient into bslot blk, in double) */
static void BWW_BLOCK(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const ml_conv_geom *g = j->g;
    const int64_t P = g->oh * g->ow, G = g->groups, co = g->c_out / G;
    const int64_t K = g->c_in / G * g->kh * g->kw, WN = g->c_out * K;
    T *slot = (T *)j->slots + blk * WN;
    double *bslot = j->bslots ? j->bslots + blk * g->c_out : NULL;
    const size_t col_bytes = (size_t)(K * G * P) * sizeof(T);
    T *col = j->direct ? NULL : scratch_alloc(col_bytes);
    if (!j->direct && !col) {
        conv_oom(j);
        return;
    }
    if (bslot)
        for (int64_t o = 0; o < g->c_out; o++) bslot[o] = 0;
    for (int64_t n = lo; n < hi; n++) {
        const T *xn = (const T *)j->x + n * g->c_in * g->h * g->w;
        const T *gn = (const T *)j->g_out + n * g->c_out * P;
        const T *cn = xn;
        if (!j->direct) {
            IM2COL(xn, g, col);
            cn = col;
        }
        for (int64_t gi = 0; gi < G; gi++)
            GEMM(false, true, co, K, P, gn + gi * co * P, P, cn + gi * K * P, P, n > lo ? 1 : 0,
                 slot + gi * co * K, K);
        if (bslot) BIAS_SLOT_ADD(gn, g->c_out, P, bslot);
    }
    scratch_free(col, col_bytes);
}

/* gw = the slots added in block order; gb likewise from the bias slots */
static void BWW_COMBINE(const conv_job *j, int64_t nb, T *restrict gw, T *restrict gb) {
    const ml_conv_geom *g = j->g;
    const int64_t WN = g->c_out * (g->c_in / g->groups) * g->kh * g->kw;
    const T *slots = j->slots;
    for (int64_t i = 0; i < WN; i++) gw[i] = nb ? slots[i] : 0;
    for (int64_t b = 1; b < nb; b++)
#pragma omp simd
        for (int64_t i = 0; i < WN; i++) gw[i] += slots[b * WN + i];
    if (gb)
        for (int64_t o = 0; o < g->c_out; o++) {
            double s = 0;
            for (int64_t b = 0; b < nb; b++) s += j->bslots[b * g->c_out + o];
            gb[o] = (T)s;
        }
}

#undef IM2COL
#undef COL2IM
#undef FWD_BLOCK
#undef BWI_BLOCK
#undef BWW_BLOCK
#undef BWW_COMBINE
#undef BIAS_SLOT_ADD
#undef ML_CAT
#undef ML_CAT2
