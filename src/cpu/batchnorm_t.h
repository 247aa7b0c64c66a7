/* The batchnorm family's CPU kernels for one float type, included once per type
 * by batchnorm.c with T (the element type), SUFFIX (f32, f64) and SQRT (T's sqrt).
 * A job is a range of channels [c0, c1): each channel is one thread's from its
 * statistics to its last output element, so every sum has one fixed order (n, then
 * s) whatever the threads. Sums in double; the statistics by two passes (the mean,
 * then the squares about it), as PyTorch's CPU kernel. */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)
#define BN_FWD ML_CAT(bn_forward_channels, SUFFIX)
#define BN_BWD ML_CAT(bn_backward_channels, SUFFIX)

static void BN_FWD(void *ctx, int64_t blk, int64_t c0, int64_t c1) {
    (void)blk;
    const bn_job *j = ctx;
    const ml_bn_args *a = j->a;
    const int64_t N = a->n, C = a->c, S = a->s;
    const double M = (double)(N * S);
    const T *x = j->x, *w = j->w, *b = j->b;
    T *y = j->y, *mean = j->mean, *invstd = j->invstd, *rm = j->rm, *rv = j->rv;
    for (int64_t c = c0; c < c1; c++) {
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
        /* y = x * alpha + beta, alpha = invstd * w, beta = b - mean * alpha (PyTorch's) */
        const T alpha = is * (w ? w[c] : (T)1);
        const T beta = (b ? b[c] : (T)0) - mu * alpha;
        for (int64_t n = 0; n < N; n++) {
            const T *p = x + (n * C + c) * S;
            T *q = y + (n * C + c) * S;
#pragma omp simd
            for (int64_t i = 0; i < S; i++) q[i] = p[i] * alpha + beta;
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
#undef ML_CAT
#undef ML_CAT2
