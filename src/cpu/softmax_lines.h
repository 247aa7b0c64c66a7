/* The softmax family's portable lines for one float type, included once per type by
 * softmax.c with
 *   T       the element type        SUFFIX  the names' suffix (f32, f64)
 *   EXP     T's exp                 LOG     T's log
 * A line is the n elements x[o, :, j] (stride inner) of [outer, n, inner]; a job
 * is outer's range [o0, o1). Stable form: the row's max is subtracted first, and
 * log_softmax is (x - max) - log(sum), as PyTorch computes it (x - (max + log(sum))
 * loses the low bits of large logits). */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)
#define FWD ML_CAT(softmax_lines, SUFFIX)
#define BWD ML_CAT(softmax_lines_backward, SUFFIX)

static void FWD(void *ctx, int64_t o0, int64_t o1) {
    const softmax_job *jb = ctx;
    const int64_t n = jb->n, inner = jb->inner;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t j = 0; j < inner; j++) {
            const T *p = (const T *)jb->x + o * n * inner + j;
            T *q = (T *)jb->y + o * n * inner + j;
            T m = -INFINITY;
            for (int64_t i = 0; i < n; i++) m = p[i * inner] > m || p[i * inner] != p[i * inner] ? p[i * inner] : m;
            if (m == -INFINITY) m = 0; /* all -inf: exp gives 0s, sum 0, NaN as torch */
            T s = 0;
            for (int64_t i = 0; i < n; i++) {
                const T e = EXP(p[i * inner] - m);
                if (!jb->is_log) q[i * inner] = e;
                s += e;
            }
            if (jb->is_log) {
                const T ls = LOG(s);
                for (int64_t i = 0; i < n; i++) q[i * inner] = (p[i * inner] - m) - ls;
            } else {
                const T r = (T)1 / s;
                for (int64_t i = 0; i < n; i++) q[i * inner] *= r;
            }
        }
}

/* softmax: gx = y * (g - sum(g * y)); log_softmax: gx = g - exp(y) * sum(g) */
static void BWD(void *ctx, int64_t o0, int64_t o1) {
    const softmax_job *jb = ctx;
    const int64_t n = jb->n, inner = jb->inner;
    const T *yp = (const T *)jb->x, *gp = (const T *)jb->g;
    T *op = (T *)jb->y;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t j = 0; j < inner; j++) {
            const int64_t base = o * n * inner + j;
            T s = 0;
            if (jb->is_log) {
                for (int64_t i = 0; i < n; i++) s += gp[base + i * inner];
                for (int64_t i = 0; i < n; i++)
                    op[base + i * inner] = gp[base + i * inner] - EXP(yp[base + i * inner]) * s;
            } else {
                for (int64_t i = 0; i < n; i++) s += gp[base + i * inner] * yp[base + i * inner];
                for (int64_t i = 0; i < n; i++)
                    op[base + i * inner] = yp[base + i * inner] * (gp[base + i * inner] - s);
            }
        }
}

#undef FWD
#undef BWD
#undef ML_CAT
#undef ML_CAT2
