/* The batchnorm family's CPU kernels for one float type, included once per type
 * by batchnorm.c with T (the element type), SUFFIX (f32, f64) and SQRT (T's sqrt),
 * and POOL_2X2_ROW where T has a vectorised 2 x 2 pooling row (max_pool_2x2.h).
 * A job is a range of channels [c0, c1): each channel is one thread's from its
 * statistics to its last output element, so every sum has one fixed order (n, then
 * s) whatever the threads. Sums in double; the statistics by two passes (the mean,
 * then the squares about it), as PyTorch's CPU kernel. */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)
#define BN_FWD ML_CAT(bn_forward_channels, SUFFIX)
#define BN_BWD ML_CAT(bn_backward_channels, SUFFIX)
#define BN_STATS ML_CAT(bn_stats, SUFFIX)
#define BN_AFFINE ML_CAT(bn_affine, SUFFIX)
#define BN_POOL_FWD ML_CAT(bn_pool_forward_channels, SUFFIX)
#define BN_POOL_BWD ML_CAT(bn_pool_backward_channels, SUFFIX)

/* channel c's mean and invstd as the forward uses them (the batch's, then the
 * running statistics updated, when training; else the running ones), stored in
 * mean[c] and invstd[c] */
static void BN_STATS(const bn_job *j, int64_t c, T *mu_out, T *is_out) {
    const ml_bn_args *a = j->a;
    const int64_t N = a->n, C = a->c, S = a->s;
    const double M = (double)(N * S);
    const T *x = j->x;
    T *mean = j->mean, *invstd = j->invstd, *rm = j->rm, *rv = j->rv;
    T mu, is;
    if (a->training) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) {
            const T *p = x + (n * C + c) * S;
            T t = 0;
#pragma omp simd reduction(+ : t)
            for (int64_t i = 0; i < S; i++) t += p[i];
            s += (double)t;
        }
        const double m = M > 0 ? s / M : 0;
        double ss = 0;
        const T mt = (T)m;
        for (int64_t n = 0; n < N; n++) {
            const T *p = x + (n * C + c) * S;
            T t = 0;
#pragma omp simd reduction(+ : t)
            for (int64_t i = 0; i < S; i++) {
                const T d = p[i] - mt;
                t += d * d;
            }
            ss += (double)t;
        }
        const double var = M > 0 ? ss / M : 0;
        mu = (T)m;
        is = (T)(1.0 / sqrt(var + a->eps));
        if (rm) {
            rm[c] = (T)((1 - a->momentum) * (double)rm[c] + a->momentum * m);
            rv[c] = (T)((1 - a->momentum) * (double)rv[c] + a->momentum * ss / (M - 1));
        }
    } else {
        mu = rm[c];
        is = (T)1 / SQRT(rv[c] + (T)a->eps);
    }
    mean[c] = mu;
    invstd[c] = is;
    *mu_out = mu;
    *is_out = is;
}

/* channel c's statistics (BN_STATS), then y = x * alpha + beta's factors: alpha =
 * invstd * w, beta = b - mean * alpha (PyTorch's) */
static void BN_AFFINE(const bn_job *j, int64_t c, T *alpha, T *beta) {
    T mu, is;
    BN_STATS(j, c, &mu, &is);
    const T *w = j->w, *b = j->b;
    *alpha = is * (w ? w[c] : (T)1);
    *beta = (b ? b[c] : (T)0) - mu * *alpha;
}

static void BN_FWD(void *ctx, int64_t blk, int64_t c0, int64_t c1) {
    (void)blk;
    const bn_job *j = ctx;
    const ml_bn_args *a = j->a;
    const int64_t N = a->n, C = a->c, S = a->s;
    const T *x = j->x;
    T *y = j->y;
    for (int64_t c = c0; c < c1; c++) {
        T alpha, beta;
        BN_AFFINE(j, c, &alpha, &beta);
        for (int64_t n = 0; n < N; n++) {
            const T *p = x + (n * C + c) * S;
            T *q = y + (n * C + c) * S;
#pragma omp simd
            for (int64_t i = 0; i < S; i++) q[i] = p[i] * alpha + beta;
        }
    }
}

/* BN_FWD's y pooled by j->pool's tiling windows (batchnorm.h), y never stored: the
 * same values, compared in max_forward's order (pool_t.h: the first maximum, a NaN
 * wins) */
static void BN_POOL_FWD(void *ctx, int64_t blk, int64_t c0, int64_t c1) {
    (void)blk;
    const bn_job *j = ctx;
    const ml_bn_args *a = j->a;
    const ml_pool_geom *g = j->pool;
    const int64_t N = a->n, C = a->c, S = a->s, W = g->w, OH = g->oh, OW = g->ow;
    const T *x = j->x;
    for (int64_t c = c0; c < c1; c++) {
        T alpha, beta;
        BN_AFFINE(j, c, &alpha, &beta);
        for (int64_t n = 0; n < N; n++) {
            const T *p = x + (n * C + c) * S;
            T *q = (T *)j->y + (n * C + c) * OH * OW;
            uint8_t *cd = j->codes ? j->codes + (n * C + c) * OH * OW : NULL;
            for (int64_t oy = 0; oy < OH; oy++) {
#ifdef POOL_2X2_ROW
                if (g->kh == 2 && g->kw == 2 && S < ((int64_t)1 << 31)) { /* the CNN's */
                    const T affine[2] = {alpha, beta};
                    POOL_2X2_ROW(p + 2 * oy * W, W, OW, 2 * oy * W, affine, q + oy * OW, NULL,
                                 cd ? cd + oy * OW : NULL);
                    continue;
                }
#endif
                if (g->kh == 2 && g->kw == 2) { /* branch-free, vectorised */
                    const T *r0 = p + 2 * oy * W, *r1 = r0 + W;
                    T *qr = q + oy * OW;
                    uint8_t *cr = cd ? cd + oy * OW : NULL;
#pragma omp simd
                    for (int64_t ox = 0; ox < OW; ox++) {
                        const T va = r0[2 * ox] * alpha + beta, vb = r0[2 * ox + 1] * alpha + beta;
                        const T vc = r1[2 * ox] * alpha + beta, vd = r1[2 * ox + 1] * alpha + beta;
                        T mv = va;
                        uint8_t mi = 0;
                        const bool tb = vb > mv || vb != vb;
                        mv = tb ? vb : mv;
                        mi = tb ? 1 : mi;
                        const bool tc = vc > mv || vc != vc;
                        mv = tc ? vc : mv;
                        mi = tc ? 2 : mi;
                        const bool td = vd > mv || vd != vd;
                        mv = td ? vd : mv;
                        mi = td ? 3 : mi;
                        qr[ox] = mv;
                        if (cr) cr[ox] = mi;
                    }
                    continue;
                }
                for (int64_t ox = 0; ox < OW; ox++) {
                    int64_t mi = 0;
                    T mv = -INFINITY;
                    for (int64_t ki = 0; ki < g->kh; ki++)
                        for (int64_t kj = 0; kj < g->kw; kj++) {
                            const T v = p[(oy * g->kh + ki) * W + ox * g->kw + kj] * alpha + beta;
                            if (v > mv || v != v) {
                                mv = v;
                                mi = ki * g->kw + kj;
                            }
                        }
                    q[oy * OW + ox] = mv;
                    if (cd) cd[oy * OW + ox] = (uint8_t)mi;
                }
            }
        }
    }
}

/* BN_BWD for the pooled gradient j->g [n, c, oh, ow] routed to the positions of
 * the window codes j->ccodes (batchnorm.h): the sums over the pooled elements (each
 * position has at most one: the windows do not overlap), then gx densely, the
 * positions' terms written over. */
static void BN_POOL_BWD(void *ctx, int64_t blk, int64_t c0, int64_t c1) {
    (void)blk;
    const bn_job *j = ctx;
    const ml_bn_args *a = j->a;
    const int64_t N = a->n, C = a->c, S = a->s, O = j->pool->oh * j->pool->ow;
    const double M = (double)(N * S);
    const T *x = j->x, *gp = j->g, *w = j->w, *mean = j->mean, *invstd = j->invstd;
    const ml_pool_geom *g = j->pool;
    const int64_t W = g->w, OW = g->ow, KH = g->kh, KW = g->kw;
    const uint8_t *codes = j->ccodes;
    T *gx = j->y, *gw = j->gw, *gb = j->gb;
    int64_t off[256]; /* a code's position in the plane from its window's first */
    for (int64_t i = 0; i < KH * KW; i++) off[i] = i / KW * W + i % KW;
    for (int64_t c = c0; c < c1; c++) {
        const T mu = mean[c], is = invstd[c];
        double sg = 0, sgx = 0;
        for (int64_t n = 0; n < N; n++) {
            const T *p = x + (n * C + c) * S, *q = gp + (n * C + c) * O;
            const uint8_t *cd = codes + (n * C + c) * O;
            /* eight partial sums (added pairwise at the end): one sum's chain of
             * dependent adds waited on each add's latency. A row's windows go by
             * chunks of 64: their elements' positions first, then the sums over the
             * chunk in lanes k % 8, the lanes indexed by constants (kept in registers) */
            T t8[8] = {0}, u8[8] = {0};
            for (int64_t oy = 0; oy < g->oh; oy++)
                for (int64_t ox0 = 0; ox0 < OW; ox0 += 64) {
                    const int64_t m = OW - ox0 < 64 ? OW - ox0 : 64, o0 = oy * OW + ox0;
                    int64_t pos[64];
                    for (int64_t k = 0; k < m; k++)
                        pos[k] = oy * KH * W + (ox0 + k) * KW + off[cd[o0 + k]];
                    int64_t k = 0;
                    for (; k + 8 <= m; k += 8)
                        for (int l = 0; l < 8; l++) {
                            t8[l] += q[o0 + k + l];
                            u8[l] += q[o0 + k + l] * (p[pos[k + l]] - mu);
                        }
                    for (; k < m; k++) {
                        t8[0] += q[o0 + k];
                        u8[0] += q[o0 + k] * (p[pos[k]] - mu);
                    }
                }
            for (int h = 4; h >= 1; h /= 2)
                for (int l = 0; l < h; l++) {
                    t8[l] += t8[l + h];
                    u8[l] += u8[l + h];
                }
            sg += (double)t8[0];
            sgx += (double)u8[0];
        }
        if (gw) gw[c] = (T)(sgx * (double)is);
        if (gb) gb[c] = (T)sg;
        if (!gx) continue;
        const T wc = w ? w[c] : (T)1, sc = is * wc;
        /* as BN_BWD's, with g 0 off the positions */
        const T k = a->training && M > 0 ? (T)(sgx * (double)is * (double)is / M) : 0;
        const T gm = a->training && M > 0 ? (T)(sg / M) : 0;
        for (int64_t n = 0; n < N; n++) {
            const T *p = x + (n * C + c) * S, *q = gp + (n * C + c) * O;
            const uint8_t *cd = codes + (n * C + c) * O;
            T *r = gx + (n * C + c) * S;
            if (a->training) {
#pragma omp simd
                for (int64_t i = 0; i < S; i++) r[i] = ((T)0 - gm - (p[i] - mu) * k) * sc;
            } else {
#pragma omp simd
                for (int64_t i = 0; i < S; i++) r[i] = (T)0 * sc;
            }
            for (int64_t oy = 0, o = 0; oy < g->oh; oy++)
                for (int64_t ox = 0; ox < OW; ox++, o++) {
                    const int64_t i = oy * KH * W + ox * KW + off[cd[o]];
                    r[i] = a->training ? (q[o] - gm - (p[i] - mu) * k) * sc : q[o] * sc;
                }
        }
    }
}

static void BN_BWD(void *ctx, int64_t blk, int64_t c0, int64_t c1) {
    (void)blk;
    const bn_job *j = ctx;
    const ml_bn_args *a = j->a;
    const int64_t N = a->n, C = a->c, S = a->s;
    const double M = (double)(N * S);
    const T *x = j->x, *g = j->g, *w = j->w, *mean = j->mean, *invstd = j->invstd;
    T *gx = j->y, *gw = j->gw, *gb = j->gb;
    for (int64_t c = c0; c < c1; c++) {
        const T mu = mean[c], is = invstd[c];
        double sg = 0, sgx = 0;
        for (int64_t n = 0; n < N; n++) {
            const T *p = x + (n * C + c) * S, *q = g + (n * C + c) * S;
            T t = 0, u = 0;
#pragma omp simd reduction(+ : t, u)
            for (int64_t i = 0; i < S; i++) {
                t += q[i];
                u += q[i] * (p[i] - mu);
            }
            sg += (double)t;
            sgx += (double)u;
        }
        if (gw) gw[c] = (T)(sgx * (double)is);
        if (gb) gb[c] = (T)sg;
        if (!gx) continue;
        const T wc = w ? w[c] : (T)1;
        if (a->training) {
            /* gx = (g - mean(g) - (x - mean) * k) * invstd * w, k = sum(g xhat) invstd / m */
            const T k = M > 0 ? (T)(sgx * (double)is * (double)is / M) : 0;
            const T gm = M > 0 ? (T)(sg / M) : 0, sc = is * wc;
            for (int64_t n = 0; n < N; n++) {
                const T *p = x + (n * C + c) * S, *q = g + (n * C + c) * S;
                T *r = gx + (n * C + c) * S;
#pragma omp simd
                for (int64_t i = 0; i < S; i++) r[i] = (q[i] - gm - (p[i] - mu) * k) * sc;
            }
        } else {
            const T sc = is * wc;
            for (int64_t n = 0; n < N; n++) {
                const T *q = g + (n * C + c) * S;
                T *r = gx + (n * C + c) * S;
#pragma omp simd
                for (int64_t i = 0; i < S; i++) r[i] = q[i] * sc;
            }
        }
    }
}

#undef BN_FWD
#undef BN_BWD
#undef BN_STATS
#undef BN_AFFINE
#undef BN_POOL_FWD
#undef BN_POOL_BWD
#undef ML_CAT
#undef ML_CAT2
