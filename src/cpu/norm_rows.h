/* The norm family's row kernels for one float type, included once per type by
 * norm.c with
 *   T       the element type        SUFFIX  the names' suffix (f32, f64)
 * A row is x[r, :] of the contiguous [rows, n]; its sums run in double, in
 * index order within each vector lane (the ISA level fixes the lanes), so a row's
 * result never depends on the thread that computes it. The affine layout (groups,
 * segs, seg_len) is src/backend/norm.h's: seg_len 1 is layer_norm (one weight per
 * element, unit-stride loops), longer segments are group_norm (one weight per
 * channel, constant over the segment). */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)
#define FWD ML_CAT(norm_forward_rows, SUFFIX)
#define BWD ML_CAT(norm_backward_block, SUFFIX)

/* Rows [r0, r1): mean, rstd (two passes: the mean, then the centred squares, which
 * loses nothing to cancellation), then y = (x - mean) * rstd * w + b. */
static void FWD(void *ctx, int64_t r0, int64_t r1) {
    const norm_job *jb = ctx;
    const ml_norm_geom *geo = jb->geo;
    const int64_t n = geo->n, segs = geo->segs, len = geo->seg_len, groups = geo->groups;
    const T *w = jb->w, *b = jb->b;
    for (int64_t r = r0; r < r1; r++) {
        const T *restrict xr = (const T *)jb->x + r * n;
        T *restrict yr = (T *)jb->y + r * n;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; i++) s += xr[i];
        const double mean = s / (double)n;
        double v = 0;
#pragma omp simd reduction(+ : v)
        for (int64_t i = 0; i < n; i++) {
            const double d = (double)xr[i] - mean;
            v += d * d;
        }
        const double rstd = 1.0 / sqrt(v / (double)n + geo->eps);
        ((T *)jb->mean)[r] = (T)mean;
        ((T *)jb->rstd)[r] = (T)rstd;
        const T m = (T)mean, rs = (T)rstd;
        const int64_t wo = (r % groups) * segs; /* the row's first weight */
        if (len == 1) {
            const T *restrict wr = w ? w + wo : NULL, *restrict br = b ? b + wo : NULL;
            if (wr && br) {
#pragma omp simd
                for (int64_t i = 0; i < n; i++) yr[i] = (xr[i] - m) * rs * wr[i] + br[i];
            } else if (wr) {
#pragma omp simd
                for (int64_t i = 0; i < n; i++) yr[i] = (xr[i] - m) * rs * wr[i];
            } else if (br) {
#pragma omp simd
                for (int64_t i = 0; i < n; i++) yr[i] = (xr[i] - m) * rs + br[i];
            } else {
#pragma omp simd
                for (int64_t i = 0; i < n; i++) yr[i] = (xr[i] - m) * rs;
            }
        } else {
            for (int64_t sg = 0; sg < segs; sg++) {
                /* y = x * a + c with a = rstd * w, c = b - mean * a: one FMA an element */
                const T a = rs * (w ? w[wo + sg] : (T)1);
                const T c = (b ? b[wo + sg] : (T)0) - m * a;
                const T *restrict xs = xr + sg * len;
                T *restrict ys = yr + sg * len;
#pragma omp simd
                for (int64_t i = 0; i < len; i++) ys[i] = xs[i] * a + c;
            }
        }
    }
}

/* One block of rows [r0, r1): the input gradient of each row,
 *   gx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat)),  dy = g * w,
 *   xhat = (x - mean) * rstd,
 * and, when slots are given, the block's partial sums of g * xhat (weight) and g
 * (bias) per affine value, in slot blk (added in block order by norm.c). */
static void BWD(void *ctx, int64_t blk, int64_t r0, int64_t r1) {
    const norm_job *jb = ctx;
    const ml_norm_geom *geo = jb->geo;
    const int64_t n = geo->n, segs = geo->segs, len = geo->seg_len, groups = geo->groups;
    const int64_t naff = groups * segs;
    const T *w = jb->w;
    double *sw = jb->slot_w ? jb->slot_w + blk * naff : NULL;
    double *sb = jb->slot_b ? jb->slot_b + blk * naff : NULL;
    for (int64_t r = r0; r < r1; r++) {
        const T *restrict xr = (const T *)jb->x + r * n;
        const T *restrict gr = (const T *)jb->g + r * n;
        const T m = ((const T *)jb->mean)[r], rs = ((const T *)jb->rstd)[r];
        const int64_t wo = (r % groups) * segs;
        if (sw || sb) {
            if (len == 1) {
                double *restrict pw = sw ? sw + wo : NULL, *restrict pb = sb ? sb + wo : NULL;
                if (pw) {
#pragma omp simd
                    for (int64_t i = 0; i < n; i++) pw[i] += (double)gr[i] * (double)((xr[i] - m) * rs);
                }
                if (pb) {
#pragma omp simd
                    for (int64_t i = 0; i < n; i++) pb[i] += (double)gr[i];
                }
            } else {
                for (int64_t sg = 0; sg < segs; sg++) {
                    const T *restrict xs = xr + sg * len, *restrict gs = gr + sg * len;
                    double a = 0, c = 0;
#pragma omp simd reduction(+ : a, c)
                    for (int64_t i = 0; i < len; i++) {
                        a += (double)gs[i] * (double)((xs[i] - m) * rs);
                        c += (double)gs[i];
                    }
                    if (sw) sw[wo + sg] += a;
                    if (sb) sb[wo + sg] += c;
                }
            }
        }
        if (!jb->gx) continue;
        T *restrict gxr = (T *)jb->gx + r * n;
        /* the row's two sums: of dy and of dy * xhat */
        double s1 = 0, s2 = 0;
        if (len == 1) {
            const T *restrict wr = w ? w + wo : NULL;
            if (wr) {
#pragma omp simd reduction(+ : s1, s2)
                for (int64_t i = 0; i < n; i++) {
                    const double dy = (double)(gr[i] * wr[i]);
                    s1 += dy;
                    s2 += dy * (double)((xr[i] - m) * rs);
                }
            } else {
#pragma omp simd reduction(+ : s1, s2)
                for (int64_t i = 0; i < n; i++) {
                    s1 += (double)gr[i];
                    s2 += (double)gr[i] * (double)((xr[i] - m) * rs);
                }
            }
        } else {
            for (int64_t sg = 0; sg < segs; sg++) {
                const T wv = w ? w[wo + sg] : (T)1;
                const T *restrict xs = xr + sg * len, *restrict gs = gr + sg * len;
                double a = 0, c = 0;
#pragma omp simd reduction(+ : a, c)
                for (int64_t i = 0; i < len; i++) {
                    a += (double)gs[i];
                    c += (double)gs[i] * (double)((xs[i] - m) * rs);
                }
                s1 += a * (double)wv;
                s2 += c * (double)wv;
            }
        }
        const T k1 = (T)(s1 / (double)n), k2 = (T)(s2 / (double)n);
        if (len == 1) {
            const T *restrict wr = w ? w + wo : NULL;
            if (wr) {
#pragma omp simd
                for (int64_t i = 0; i < n; i++)
                    gxr[i] = rs * (gr[i] * wr[i] - k1 - (xr[i] - m) * rs * k2);
            } else {
#pragma omp simd
                for (int64_t i = 0; i < n; i++) gxr[i] = rs * (gr[i] - k1 - (xr[i] - m) * rs * k2);
            }
        } else {
            for (int64_t sg = 0; sg < segs; sg++) {
                const T wv = w ? w[wo + sg] : (T)1;
                const T *restrict xs = xr + sg * len, *restrict gs = gr + sg * len;
                T *restrict gxs = gxr + sg * len;
#pragma omp simd
                for (int64_t i = 0; i < len; i++) gxs[i] = rs * (gs[i] * wv - k1 - (xs[i] - m) * rs * k2);
            }
        }
    }
}

#undef FWD
#undef BWD
#undef ML_CAT
#undef ML_CAT2
