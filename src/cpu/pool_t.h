/* The pool family's CPU kernels for one float type, included once per type by
 * pool.c with T (the element type) and SUFFIX (f32, f64). A job is a range of
 * planes [p0, p1) of the n * c planes; each plane is one thread's, so gradients
 * that overlapping windows add into one input element are added in a fixed order.
 * The window arithmetic is PyTorch's CPU kernels': max pooling starts from the
 * first position inside the input and keeps a NaN; average pooling's divisor
 * counts the pads up to the padded edge with count_include_pad. */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)
#define MAX_FWD ML_CAT(max_forward_planes, SUFFIX)
#define MAX_FWD_2X2 ML_CAT(max_forward_2x2, SUFFIX)
#define MAX_BWD ML_CAT(max_backward_planes, SUFFIX)
#define AVG_FWD ML_CAT(avg_forward_planes, SUFFIX)
#define AVG_BWD ML_CAT(avg_backward_planes, SUFFIX)
#define ADA_FWD ML_CAT(adaptive_forward_planes, SUFFIX)
#define ADA_BWD ML_CAT(adaptive_backward_planes, SUFFIX)

static void MAX_FWD(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    for (int64_t p = p0; p < p1; p++) {
        const T *x = (const T *)j->in + p * H * W;
        T *y = (T *)j->out + p * OH * OW;
        int64_t *idx = j->idx ? j->idx + p * OH * OW : NULL;
        for (int64_t oy = 0; oy < OH; oy++) {
            int64_t ih0 = oy * g->sh - g->ph;
            const int64_t ih1 = ih0 + (g->kh - 1) * g->dh + 1 < H ? ih0 + (g->kh - 1) * g->dh + 1 : H;
            while (ih0 < 0) ih0 += g->dh;
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t iw0 = ox * g->sw - g->pw;
                const int64_t iw1 = iw0 + (g->kw - 1) * g->dw + 1 < W ? iw0 + (g->kw - 1) * g->dw + 1 : W;
                while (iw0 < 0) iw0 += g->dw;
                /* a dilated window can lie wholly in the padding: -inf, no position */
                int64_t mi = ih0 < ih1 && iw0 < iw1 ? ih0 * W + iw0 : -1;
                T mv = -INFINITY;
                for (int64_t ih = ih0; ih < ih1; ih += g->dh)
                    for (int64_t iw = iw0; iw < iw1; iw += g->dw) {
                        const T v = x[ih * W + iw];
                        if (v > mv || v != v) {
                            mv = v;
                            mi = ih * W + iw;
                        }
                    }
                y[oy * OW + ox] = mv;
                if (idx) idx[oy * OW + ox] = mi;
            }
        }
    }
}

/* The CNN's MaxPool2d(2): kernel 2, stride 2, no pad, dilation 1, whole windows
 * (oh = h / 2, ow = w / 2). The same comparisons in the same order as MAX_FWD, with
 * no bounds to test, so the compiler vectorises over ox. */
static void MAX_FWD_2X2(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    for (int64_t p = p0; p < p1; p++) {
        const T *x = (const T *)j->in + p * H * W;
        T *y = (T *)j->out + p * OH * OW;
        int64_t *idx = j->idx ? j->idx + p * OH * OW : NULL;
        for (int64_t oy = 0; oy < OH; oy++) {
            const T *r0 = x + 2 * oy * W, *r1 = r0 + W;
            T *yr = y + oy * OW;
            int64_t *ir = idx ? idx + oy * OW : NULL;
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++) {
                /* branch-free: with random data each comparison is a coin toss, and
                 * branches mispredicted half the time (13 ns an output) */
                const int64_t base = 2 * oy * W + 2 * ox;
                const T a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
                T mv = a; /* a > -inf, or a NaN, or a == -inf: mv = a, position 0 */
                int64_t mi = base;
                const bool tb = b > mv || b != b;
                mv = tb ? b : mv;
                mi = tb ? base + 1 : mi;
                const bool tc = c > mv || c != c;
                mv = tc ? c : mv;
                mi = tc ? base + W : mi;
                const bool td = d > mv || d != d;
                mv = td ? d : mv;
                mi = td ? base + W + 1 : mi;
                yr[ox] = mv;
                if (ir) ir[ox] = mi;
            }
        }
    }
}

static void MAX_BWD(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t HW = g->h * g->w, O = g->oh * g->ow;
    for (int64_t p = p0; p < p1; p++) {
        const T *gy = (const T *)j->in + p * O;
        const int64_t *idx = j->idx + p * O;
        T *gx = (T *)j->out + p * HW;
        memset(gx, 0, (size_t)HW * sizeof(T));
        for (int64_t o = 0; o < O; o++)
            if (idx[o] >= 0) gx[idx[o]] += gy[o]; /* -1: a window wholly in the padding */
    }
}

/* the window of output (oy, ox) clipped to the input, and its divisor */
static inline T ML_CAT(avg_window, SUFFIX)(const ml_pool_geom *g, int64_t oy, int64_t ox,
                                           int64_t *h0, int64_t *h1, int64_t *w0, int64_t *w1) {
    int64_t ih0 = oy * g->sh - g->ph, iw0 = ox * g->sw - g->pw;
    int64_t ih1 = ih0 + g->kh < g->h + g->ph ? ih0 + g->kh : g->h + g->ph;
    int64_t iw1 = iw0 + g->kw < g->w + g->pw ? iw0 + g->kw : g->w + g->pw;
    const int64_t pool_size = (ih1 - ih0) * (iw1 - iw0);
    ih0 = ih0 > 0 ? ih0 : 0;
    iw0 = iw0 > 0 ? iw0 : 0;
    ih1 = ih1 < g->h ? ih1 : g->h;
    iw1 = iw1 < g->w ? iw1 : g->w;
    *h0 = ih0, *h1 = ih1, *w0 = iw0, *w1 = iw1;
    return (T)(g->count_include_pad ? pool_size : (ih1 - ih0) * (iw1 - iw0));
}

static void AVG_FWD(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    for (int64_t p = p0; p < p1; p++) {
        const T *x = (const T *)j->in + p * H * W;
        T *y = (T *)j->out + p * OH * OW;
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t h0, h1, w0, w1;
                const T div = ML_CAT(avg_window, SUFFIX)(g, oy, ox, &h0, &h1, &w0, &w1);
                if (h0 >= h1 || w0 >= w1) {
                    y[oy * OW + ox] = 0;
                    continue;
                }
                T s = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) s += x[ih * W + iw];
                y[oy * OW + ox] = s / div;
            }
    }
}

static void AVG_BWD(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    for (int64_t p = p0; p < p1; p++) {
        const T *gy = (const T *)j->in + p * OH * OW;
        T *gx = (T *)j->out + p * H * W;
        memset(gx, 0, (size_t)(H * W) * sizeof(T));
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t h0, h1, w0, w1;
                const T div = ML_CAT(avg_window, SUFFIX)(g, oy, ox, &h0, &h1, &w0, &w1);
                const T v = gy[oy * OW + ox] / div;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) gx[ih * W + iw] += v;
            }
    }
}

static void ADA_FWD(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    for (int64_t p = p0; p < p1; p++) {
        const T *x = (const T *)j->in + p * H * W;
        T *y = (T *)j->out + p * OH * OW;
        for (int64_t oy = 0; oy < OH; oy++) {
            const int64_t h0 = oy * H / OH, h1 = ((oy + 1) * H + OH - 1) / OH;
            for (int64_t ox = 0; ox < OW; ox++) {
                const int64_t w0 = ox * W / OW, w1 = ((ox + 1) * W + OW - 1) / OW;
                T s = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) s += x[ih * W + iw];
                y[oy * OW + ox] = s / (T)((h1 - h0) * (w1 - w0));
            }
        }
    }
}

static void ADA_BWD(void *ctx, int64_t blk, int64_t p0, int64_t p1) {
    (void)blk;
    const pool_job *j = ctx;
    const ml_pool_geom *g = j->g;
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    for (int64_t p = p0; p < p1; p++) {
        const T *gy = (const T *)j->in + p * OH * OW;
        T *gx = (T *)j->out + p * H * W;
        memset(gx, 0, (size_t)(H * W) * sizeof(T));
        for (int64_t oy = 0; oy < OH; oy++) {
            const int64_t h0 = oy * H / OH, h1 = ((oy + 1) * H + OH - 1) / OH;
            for (int64_t ox = 0; ox < OW; ox++) {
                const int64_t w0 = ox * W / OW, w1 = ((ox + 1) * W + OW - 1) / OW;
                const T v = gy[oy * OW + ox] / (T)((h1 - h0) * (w1 - w0));
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) gx[ih * W + iw] += v;
            }
        }
    }
}

#undef MAX_FWD
#undef MAX_FWD_2X2
#undef MAX_BWD
#undef AVG_FWD
#undef AVG_BWD
#undef ADA_FWD
#undef ADA_BWD
#undef ML_CAT
#undef ML_CAT2
