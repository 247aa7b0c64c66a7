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

/* col [c_in kh kw, oh ow] from one sample's x [c_in, h, w]; outside the input, 0. */
static void IM2COL(const T *restrict x, const ml_conv_geom *g, T *restrict col) {
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

/* x [c_in, h, w] += the patches of col [c_in kh kw, oh ow] put back in place (the
 * adjoint of IM2COL); x zeroed by the caller. One thread per sample: a fixed order. */
static void COL2IM(const T *restrict col, const ml_conv_geom *g, T *restrict x) {
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow, P = oh * ow;
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
            memset(xn, 0, (size_t)(g->c_in * HW) * sizeof(T));
            COL2IM(col, g, xn);
        }
        if (bias)
            for (int64_t c = 0; c < g->c_in; c++)
                for (int64_t p = 0; p < HW; p++) xn[c * HW + p] += bias[c];
    }
    scratch_free(col, col_bytes);
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
        if (bslot)
            for (int64_t o = 0; o < g->c_out; o++) {
                const T *r = gn + o * P;
                T s = 0; /* a row in T (16 lanes), the rows in double */
#pragma omp simd reduction(+ : s)
                for (int64_t p = 0; p < P; p++) s += r[p];
                bslot[o] += (double)s;
            }
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
#undef ML_CAT
#undef ML_CAT2
