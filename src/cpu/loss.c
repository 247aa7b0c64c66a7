/* CPU kernels of the loss family: each loss is one fused loop forward (the
 * per-element loss and its sum, accumulated in double) and one fused loop backward
 * (the gradient, already scaled by grad_out and the mean's divisor). No
 * temporaries. The formulas follow PyTorch 1.13's (aten/src/ATen/native/Loss*.cpp)
 * so values and gradients agree with it, edge cases included. */
#include <math.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <stdint.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "vmath.h"

#define PAR_MIN 32768

/* The `for` loop given as the variadic argument runs across OpenMP threads (with
 * the clauses in the pragma string) when cond holds, else plainly: even an
 * `omp parallel ... if (0)` region goes through libgomp (a futex wake per call),
 * which cost more than a whole loss on the MLP's [128, 10]. */
#define PAR_FOR_IF(cond, pragma, ...)                                                   \
    do {                                                                               \
        if (cond) {                                                                    \
            _Pragma(pragma) __VA_ARGS__                                                \
        } else {                                                                       \
            __VA_ARGS__                                                                \
        }                                                                              \
    } while (0)

static inline double sign_of(double d) { return (d > 0) - (d < 0); }

/* exp for float32 that the compiler vectorises (libm's expf is a scalar call):
 * Cephes' polynomial on [-ln2/2, ln2/2] and an exponent built from bits, within
 * 2 ulp of expf on [-87, 88]; below that it gives 0, above it inf, NaN stays NaN. */
static inline float vexpf(float x) {
    const float hi = 88.3762626647949f, lo = -87.3365478515625f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    xc = x != x ? 0.0f : xc; /* a NaN must not reach the int conversion (UB) */
    /* round to nearest by the 1.5 * 2^23 trick (floorf does not vectorise) */
    float k = xc * 1.44269504088896341f + 12582912.0f;
    k -= 12582912.0f;
    float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
    float p = ml_exp_poly(r);
    int32_t e = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    float y = p * scale;
    y = x < lo ? 0.0f : y;
    y = x > hi ? INFINITY : y;
    return x != x ? x : y;
}

/* vexpf for x <= 0 (or NaN), what softmax's x - max and x - logsumexp are: without
 * the overflow clamp and the selects for inf and NaN (NaN propagates through the
 * arithmetic), three operations fewer on the exp that dominates small rows. */
static inline float vexpf_nonpos(float x) {
    const float lo = -87.3365478515625f;
    float xc = x < lo ? lo : x;
    xc = x != x ? 0.0f : xc; /* a NaN must not reach the int conversion (UB) */
    float k = xc * 1.44269504088896341f + 12582912.0f;
    k -= 12582912.0f;
    const float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
    float p = ml_exp_poly(r);
    const int32_t e = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    /* below lo: 0, NaN: x (a product and bit masks, not `?:`s, which kept gcc
     * from vectorising) */
    float y = p * scale * (float)(x >= lo);
    int32_t yb, xb;
    memcpy(&yb, &y, sizeof yb);
    memcpy(&xb, &x, sizeof xb);
    const int32_t nan = -(int32_t)(x != x);
    yb = (yb & ~nan) | (xb & nan);
    memcpy(&y, &yb, sizeof y);
    return y;
}

#if defined(__AVX512F__)
/* vexpf_nonpos on 16 lanes: vmath.h's ml_exp16_nonpos (the same polynomial, the
 * rounding by vrndscaleps and 2^k by vscalefps; 0 below -104, NaN kept). */
#define vexp16_nonpos ml_exp16_nonpos
#endif

/* log for float32 that vectorises: Cephes' logf (x = m 2^e, m in [sqrt(1/2), sqrt(2)),
 * a degree-9 polynomial in m - 1), about 1 ulp from logf, for finite x > 0 (the
 * callers pass row sums of exps, >= 1); NaN stays NaN. Selects are written as
 * arithmetic: a `?:` here kept gcc from vectorising the loops that call it. */
static inline float vlogf(float x) {
    int32_t ix;
    memcpy(&ix, &x, sizeof ix);
    int32_t e = ((ix >> 23) & 0xff) - 126;
    int32_t im = (ix & 0x007fffff) | 0x3f000000; /* m in [0.5, 1) */
    float m;
    memcpy(&m, &im, sizeof m);
    /* below sqrt(1/2): m -> 2m, e -> e - 1 (written as arithmetic so it vectorises) */
    const float lo = (float)(m < 0.707106781186547524f);
    m = m + m * lo - 1.0f;
    const float fe = (float)e - lo;
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    float r = m + y;
    r += 0.693359375f * fe;
    return r + (x - x); /* NaN stays NaN */
}

/* --- elementwise losses ---------------------------------------------------
 * These keep `omp parallel for if (...)` (a trip through libgomp even when small):
 * written as plain loops for small n, gcc vectorised them with masked loads and
 * stores through the pointers that are NULL when an option is absent (W, E, GE),
 * and AVX-512 masked accesses to an unmapped page take a microcode assist on this
 * CPU: mse_loss forward+backward on [128, 10] went from 3.7 to 7 us. Versioning
 * the loops per option would lift both.
 *
 * Each kind is an expression of x (input), t (target), w (weight or 1), e (extra:
 * pos_weight / var) giving the loss `l`, and one giving `gx` (dl/dx) and, for
 * gaussian_nll, `ge` (dl/dvar). `bad` flags invalid data. */

#define EW_LOSS_FWD(T, ...)                                                           \
    do {                                                                               \
        const T *X = (const T *)ml_data(a->input), *TG = (const T *)ml_data(a->target); \
        const T *W = a->weight ? (const T *)ml_data(a->weight) : NULL;                 \
        const T *E = a->extra ? (const T *)ml_data(a->extra) : NULL;                   \
        (void)W;                                                                       \
        (void)E;                                                                       \
        T *O = (T *)ml_data(out);                                                      \
        if (a->reduction == ML_REDUCTION_NONE) {                                       \
            _Pragma("omp parallel for reduction(|:bad) if (n > PAR_MIN)")              \
            for (int64_t i = 0; i < n; i++) {                                          \
                T x = X[i], t = TG[i], l;                                              \
                (void)t;                                                               \
                __VA_ARGS__;                                                           \
                if (W) l *= W[i];                                                      \
                O[i] = l;                                                              \
            }                                                                          \
        } else {                                                                       \
            double acc = 0;                                                            \
            _Pragma("omp parallel for reduction(+:acc) reduction(|:bad) if (n > PAR_MIN)") \
            for (int64_t i = 0; i < n; i++) {                                          \
                T x = X[i], t = TG[i], l;                                              \
                (void)t;                                                               \
                __VA_ARGS__;                                                           \
                if (W) l *= W[i];                                                      \
                acc += (double)l;                                                      \
            }                                                                          \
            O[0] = (T)(a->reduction == ML_REDUCTION_MEAN ? acc / a->norm : acc);        \
        }                                                                              \
    } while (0)

/* GBODY computes gx (and ge) from x, t, e; the result is scaled by w and g. */
#define EW_LOSS_BWD(T, ...)                                                          \
    do {                                                                               \
        const T *X = (const T *)ml_data(a->input), *TG = (const T *)ml_data(a->target); \
        const T *W = a->weight ? (const T *)ml_data(a->weight) : NULL;                 \
        const T *E = a->extra ? (const T *)ml_data(a->extra) : NULL;                   \
        (void)E;                                                                       \
        const T *G = (const T *)ml_data(grad_out);                                     \
        T *GX = grad_input ? (T *)ml_data(grad_input) : NULL;                          \
        T *GE = grad_extra ? (T *)ml_data(grad_extra) : NULL;                          \
        bool none = a->reduction == ML_REDUCTION_NONE;                                 \
        T s = none ? (T)0                                                              \
                   : (T)(a->reduction == ML_REDUCTION_MEAN ? (double)G[0] / a->norm    \
                                                           : (double)G[0]);           \
        _Pragma("omp parallel for if (n > PAR_MIN)")                                   \
        for (int64_t i = 0; i < n; i++) {                                              \
            T x = X[i], t = TG[i], gx, ge = 0;                                         \
            (void)x;                                                                   \
            (void)ge;                                                                  \
            __VA_ARGS__;                                                               \
            T sc = none ? G[i] : s;                                                    \
            if (W) sc *= W[i];                                                         \
            if (GX) GX[i] = sc * gx;                                                   \
            if (GE) GE[i] = sc * ge;                                                   \
        }                                                                              \
    } while (0)

#define LN_2PI 1.8378770664093454835606594728112
#define BCE_EPS 1e-12
#define ML_2PI 6.283185307179586476925286766559

#define DEFINE_EW(T, SUF)                                                              \
    static int ew_forward_##SUF(ml_loss_args *a, ml_tensor *out) {                    \
        int64_t n = ml_numel(a->input);                                                \
        int bad = 0;                                                                   \
        const T beta = (T)a->beta, eps = (T)a->eps;                                    \
        (void)beta;                                                                    \
        (void)eps;                                                                     \
        switch (a->kind) {                                                             \
        /* mse has its own forward (mse_forward_*, with the gradient when wanted) */   \
        case ML_LOSS_L1: EW_LOSS_FWD(T, l = fabs##SUF(x - t)); break;                  \
        case ML_LOSS_SMOOTH_L1:                                                        \
            EW_LOSS_FWD(T, T z = fabs##SUF(x - t);                                     \
                        l = z < beta ? (T)0.5 * z * z / beta : z - (T)0.5 * beta);     \
            break;                                                                     \
        case ML_LOSS_BCE:                                                              \
            EW_LOSS_FWD(T, if (!(x >= 0 && x <= 1)) bad = 1;                           \
                        T l1 = log1p##SUF(-x), l0 = log##SUF(x);                       \
                        l1 = l1 < (T)-100 ? (T)-100 : l1; l0 = l0 < (T)-100 ? (T)-100 : l0; \
                        l = (t - 1) * l1 - t * l0);                                    \
            break;                                                                     \
        case ML_LOSS_BCE_LOGITS:                                                       \
            /* -log(sigmoid(x)) = max(-x, 0) + log1p(exp(-|x|)) */                     \
            EW_LOSS_FWD(T, T sp = (x < 0 ? -x : (T)0) + log1p##SUF(exp##SUF(-fabs##SUF(x))); \
                        T lw = E ? (T)1 + (E[i] - 1) * t : (T)1;                       \
                        l = (1 - t) * x + lw * sp);                                    \
            break;                                                                     \
        case ML_LOSS_KL_DIV:                                                           \
            if (a->log_target) EW_LOSS_FWD(T, l = exp##SUF(t) * (t - x));              \
            else EW_LOSS_FWD(T, T xl = t == 0 ? (T)0 : t * log##SUF(t); l = xl - t * x); \
            break;                                                                     \
        case ML_LOSS_POISSON_NLL:                                                      \
            if (a->log_input)                                                          \
                EW_LOSS_FWD(T, l = exp##SUF(x) - t * x;                                \
                            if (a->full && t > 1)                                      \
                                l += t * log##SUF(t) - t + (T)0.5 * log##SUF((T)ML_2PI * t)); \
            else                                                                       \
                EW_LOSS_FWD(T, l = x - t * log##SUF(x + eps);                          \
                            if (a->full && t > 1)                                      \
                                l += t * log##SUF(t) - t + (T)0.5 * log##SUF((T)ML_2PI * t)); \
            break;                                                                     \
        case ML_LOSS_GAUSSIAN_NLL:                                                     \
            EW_LOSS_FWD(T, T v = E[i]; if (v < 0) bad = 1; v = v < eps ? eps : v;      \
                        T d = x - t; l = (T)0.5 * (log##SUF(v) + d * d / v);           \
                        if (a->full) l += (T)(0.5 * LN_2PI));                          \
            break;                                                                     \
        default: return ml_error_set("%s: not an elementwise loss", ml_loss_name(a->kind)); \
        }                                                                              \
        if (bad && a->kind == ML_LOSS_BCE)                                             \
            return ml_error_set("binary_cross_entropy: all elements of input should be " \
                                "between 0 and 1 (probabilities; use "                 \
                                "binary_cross_entropy_with_logits for logits)");       \
        if (bad && a->kind == ML_LOSS_GAUSSIAN_NLL)                                    \
            return ml_error_set("gaussian_nll_loss: var has negative entries");        \
        return 0;                                                                      \
    }                                                                                  \
    static int ew_backward_##SUF(const ml_loss_args *a, const ml_tensor *grad_out,     \
                                 ml_tensor *grad_input, ml_tensor *grad_extra) {       \
        int64_t n = ml_numel(a->input);                                                \
        const T beta = (T)a->beta, eps = (T)a->eps;                                    \
        (void)beta;                                                                    \
        (void)eps;                                                                     \
        switch (a->kind) {                                                             \
        case ML_LOSS_MSE: EW_LOSS_BWD(T, gx = 2 * (x - t)); break;                     \
        case ML_LOSS_L1: EW_LOSS_BWD(T, gx = (T)sign_of((double)(x - t))); break;      \
        case ML_LOSS_SMOOTH_L1:                                                        \
            EW_LOSS_BWD(T, T d = x - t;                                                \
                        /* as torch: at beta = 0 a tie gets -1, not sign(0) */         \
                        gx = d <= -beta ? (T)-1 : d >= beta ? (T)1 : d / beta);        \
            break;                                                                     \
        case ML_LOSS_BCE:                                                              \
            EW_LOSS_BWD(T, T den = (1 - x) * x; den = den < (T)BCE_EPS ? (T)BCE_EPS : den; \
                        gx = (x - t) / den);                                           \
            break;                                                                     \
        case ML_LOSS_BCE_LOGITS:                                                       \
            EW_LOSS_BWD(T, T ex = exp##SUF(-fabs##SUF(x));                             \
                        T sig = x >= 0 ? 1 / (1 + ex) : ex / (1 + ex);                 \
                        if (E) { T pt = E[i] * t; gx = (pt + 1 - t) * sig - pt; }      \
                        else gx = sig - t);                                            \
            break;                                                                     \
        case ML_LOSS_KL_DIV:                                                           \
            if (a->log_target) EW_LOSS_BWD(T, gx = -exp##SUF(t));                      \
            else EW_LOSS_BWD(T, gx = -t);                                              \
            break;                                                                     \
        case ML_LOSS_POISSON_NLL:                                                      \
            if (a->log_input) EW_LOSS_BWD(T, gx = exp##SUF(x) - t);                    \
            else EW_LOSS_BWD(T, gx = 1 - t / (x + eps));                               \
            break;                                                                     \
        case ML_LOSS_GAUSSIAN_NLL:                                                     \
            EW_LOSS_BWD(T, T v = E[i]; v = v < eps ? eps : v; T d = x - t;             \
                        gx = d / v; ge = (T)0.5 * (1 / v - d * d / (v * v)));          \
            break;                                                                     \
        default: return ml_error_set("%s: not an elementwise loss", ml_loss_name(a->kind)); \
        }                                                                              \
        return 0;                                                                      \
    }

/* the double instance pastes the suffix d: fabs##d -> fabsd -> fabs */
#define fabsd fabs
#define log1pd log1p
#define logd log
#define expd exp

DEFINE_EW(float, f)
DEFINE_EW(double, d)


/* One row of c classes at stride st (the callers pass a literal 1 when the class
 * dim is the last, so the inlined copy has unit stride and vectorises). */
#define DEFINE_ROW(T, SUF, EXPF, PSUM, PMAP)                                                     \
    static inline T row_max_##SUF(const T *x, int64_t c, int64_t st) {                 \
        T m = -INFINITY;                                                               \
        _Pragma("omp simd reduction(max:m)")                                           \
        for (int64_t k = 0; k < c; k++) m = x[k * st] > m ? x[k * st] : m;              \
        return m;                                                                      \
    }                                                                                  \
    static inline double row_sumexp_##SUF(const T *x, int64_t c, int64_t st, T m) {    \
        double s = 0;                                                                  \
        _Pragma(PSUM)                                                                  \
        for (int64_t k = 0; k < c; k++) s += (double)EXPF(x[k * st] - m);              \
        return s;                                                                      \
    }                                                                                  \
    /* g = pa * softmax(x) - sub (- wsub * w[k] when w) */                             \
    static inline void row_grad_##SUF(const T *x, int64_t c, int64_t st, T lse, T pa,  \
                                      T sub, const T *w, T *g) {                       \
        if (w) {                                                                       \
            _Pragma(PMAP)                                                              \
            for (int64_t k = 0; k < c; k++) g[k * st] = pa * EXPF(x[k * st] - lse) - sub * w[k]; \
        } else {                                                                       \
            _Pragma(PMAP)                                                              \
            for (int64_t k = 0; k < c; k++) g[k * st] = pa * EXPF(x[k * st] - lse) - sub; \
        }                                                                              \
    }

/* _s: for rows shorter than a full AVX-512 vector, 8 lanes (else they run scalar) */
DEFINE_ROW(float, f, vexpf, "omp simd reduction(+:s)", "omp simd")
DEFINE_ROW(float, f_s, vexpf, "omp simd reduction(+:s) simdlen(8)", "omp simd simdlen(8)")
DEFINE_ROW(double, d, exp, "omp simd reduction(+:s)", "omp simd")
DEFINE_ROW(double, d_s, exp, "omp simd reduction(+:s)", "omp simd")

/* The error for a class id outside [0, c) that is not ignore_index: the first one
 * in row order (found again here, off the hot loop). */
static int bad_class_id(const ml_loss_args *a) {
    const int64_t *TI = (const int64_t *)ml_data(a->target), rows = a->n * a->inner;
    int64_t id = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (TI[r] != a->ignore_index && (TI[r] < 0 || TI[r] >= a->c)) {
            id = TI[r];
            break;
        }
    }
    return ml_error_set("%s: target class id %lld is out of range: expected 0 <= id < %lld "
                        "(the number of classes) or ignore_index (%lld)", ml_loss_name(a->kind),
                        (long long)id, (long long)a->c, (long long)a->ignore_index);
}

/* --- losses over a class dim ----------------------------------------------
 * The input is [n, c, inner]; row r = (i, j) has its c classes at
 * base + k * inner, base = i * c * inner + j. */

#define DEFINE_CLASS(T, SUF)                                                           \
    typedef struct {                                                                   \
        const T *X, *W, *TP;                                                           \
        const int64_t *TI;                                                             \
        int64_t C, IN, ign;                                                            \
        double ls, lsc, wtot;                                                          \
        ml_loss_kind kind;                                                             \
    } class_ctx_##SUF;                                                                 \
    static void class_ctx_##SUF##_init(class_ctx_##SUF *cx, const ml_loss_args *a) {   \
        cx->X = (const T *)ml_data(a->input);                                          \
        cx->W = a->weight ? (const T *)ml_data(a->weight) : NULL;                      \
        cx->kind = a->kind;                                                            \
        cx->TI = a->kind != ML_LOSS_CROSS_ENTROPY_PROBS ? (const int64_t *)ml_data(a->target) : NULL; \
        cx->TP = a->kind == ML_LOSS_CROSS_ENTROPY_PROBS ? (const T *)ml_data(a->target) : NULL; \
        cx->C = a->c;                                                                  \
        cx->IN = a->inner;                                                             \
        cx->ign = a->ignore_index;                                                     \
        cx->ls = a->label_smoothing;                                                   \
        cx->lsc = a->label_smoothing / (double)a->c;                                   \
        double wtot = 0;                                                               \
        if (cx->W) for (int64_t k = 0; k < a->c; k++) wtot += (double)cx->W[k];        \
        else wtot = (double)a->c;                                                      \
        cx->wtot = wtot;                                                               \
    }                                                                                  \
    /* row r's gradient for a grad_out of sc (times 1/norm for "mean"); lse: the    \
     * row's logsumexp */                                                              \
    static inline void class_row_grad_##SUF(const class_ctx_##SUF *cx, int64_t r, double sc, \
                                            double lse_d, T *GX) {                     \
        const int64_t C = cx->C, IN = cx->IN, i = r / IN, j = r % IN;                  \
        const T *x = cx->X + i * C * IN + j, *W = cx->W;                               \
        T *gx = GX + i * C * IN + j;                                                   \
        const double ls = cx->ls, lsc = cx->lsc;                                       \
        if (cx->kind == ML_LOSS_CROSS_ENTROPY_PROBS) {                                 \
            const T *t = cx->TP + i * C * IN + j;                                      \
            double swt = 0;                                                            \
            for (int64_t k = 0; k < C; k++)                                            \
                swt += (W ? (double)W[k] : 1.0) * ((double)t[k * IN] * (1 - ls) + lsc); \
            for (int64_t k = 0; k < C; k++) {                                          \
                double p = exp((double)x[k * IN] - lse_d);                             \
                double wk = (W ? (double)W[k] : 1.0) * ((double)t[k * IN] * (1 - ls) + lsc); \
                gx[k * IN] = (T)(sc * (p * swt - wk));                                 \
            }                                                                          \
            return;                                                                    \
        }                                                                              \
        const int64_t t = cx->TI[r];                                                   \
        if (t == cx->ign || t < 0 || t >= C) {                                         \
            for (int64_t k = 0; k < C; k++) gx[k * IN] = 0;                            \
            return;                                                                    \
        }                                                                              \
        const double wt = W ? (double)W[t] : 1.0;                                      \
        if (cx->kind == ML_LOSS_NLL) {                                                 \
            for (int64_t k = 0; k < C; k++) gx[k * IN] = 0;                            \
            gx[t * IN] = (T)(-sc * wt);                                                \
            return;                                                                    \
        }                                                                              \
        const T lse = (T)lse_d;                                                        \
        const T a1 = (T)(sc * (1 - ls) * wt), a2 = (T)(sc * lsc * cx->wtot);           \
        const T pa = a1 + a2;                                                          \
        const T sub = (T)(sc * lsc);                                                   \
        const T *wl = ls > 0 ? W : NULL;                                               \
        if (IN == 1 && C < 32) row_grad_##SUF##_s(x, C, 1, lse, pa, sub, wl, gx);      \
        else if (IN == 1) row_grad_##SUF(x, C, 1, lse, pa, sub, wl, gx);               \
        else row_grad_##SUF(x, C, IN, lse, pa, sub, wl, gx);                           \
        gx[t * IN] -= a1;                                                              \
    }                                                                                  \
    /* mean's divisor before the pass that needs it: the summed weight of the rows    \
     * whose class ids count; -1 for a bad class id */                                 \
    static int class_norm_##SUF(const ml_loss_args *a, double *norm) {                 \
        const int64_t rows = a->n * a->inner, C = a->c, ign = a->ignore_index;         \
        const int64_t *TI = (const int64_t *)ml_data(a->target);                       \
        const T *W = a->weight ? (const T *)ml_data(a->weight) : NULL;                 \
        double wsum = 0;                                                               \
        int bad = 0;                                                                   \
        for (int64_t r = 0; r < rows; r++) {                                           \
            const int64_t t = TI[r];                                                   \
            if (t == ign) continue;                                                    \
            if (t < 0 || t >= C) bad = 1;                                              \
            else wsum += W ? (double)W[t] : 1.0;                                       \
        }                                                                              \
        *norm = wsum;                                                                  \
        return bad ? -1 : 0;                                                           \
    }                                                                                  \
    static int class_forward_##SUF(ml_loss_args *a, ml_tensor *out) {                 \
        const int64_t N = a->n, C = a->c, IN = a->inner, rows = N * IN;                \
        const T *X = (const T *)ml_data(a->input);                                     \
        const T *W = a->weight ? (const T *)ml_data(a->weight) : NULL;                 \
        const int64_t *TI = a->kind != ML_LOSS_CROSS_ENTROPY_PROBS ? (const int64_t *)ml_data(a->target) : NULL; \
        const T *TP = a->kind == ML_LOSS_CROSS_ENTROPY_PROBS ? (const T *)ml_data(a->target) : NULL; \
        double *LSE = a->aux ? (double *)ml_data(a->aux) : NULL;                       \
        T *GC = a->grad_cache ? (T *)ml_data(a->grad_cache) : NULL;                    \
        T *O = (T *)ml_data(out);                                                      \
        const bool none = a->reduction == ML_REDUCTION_NONE;                           \
        const double ls = a->label_smoothing, lsc = ls / (double)C;                    \
        const int64_t ign = a->ignore_index;                                           \
        const ml_loss_kind kind = a->kind;                                             \
        class_ctx_##SUF cx;                                                            \
        double gsc = 1;                                                                \
        if (GC) {                                                                      \
            if (kind != ML_LOSS_CROSS_ENTROPY_PROBS && class_norm_##SUF(a, &a->norm))  \
                return bad_class_id(a);                                                \
            gsc = a->reduction == ML_REDUCTION_MEAN ? 1.0 / a->norm : 1.0;             \
            class_ctx_##SUF##_init(&cx, a);                                            \
        }                                                                              \
        double acc = 0, wsum = 0;                                                      \
        int bad = 0;                                                                   \
        PAR_FOR_IF(rows * C > PAR_MIN,                                                 \
                   "omp parallel for reduction(+:acc) reduction(+:wsum) reduction(|:bad)", \
        for (int64_t r = 0; r < rows; r++) {                                           \
            const int64_t i = r / IN, j = r % IN;                                      \
            const T *x = X + i * C * IN + j;                                           \
            double l = 0, lse = 0;                                                     \
            if (kind != ML_LOSS_NLL) {                                                 \
                T m = IN == 1 ? row_max_##SUF(x, C, 1) : row_max_##SUF(x, C, IN);      \
                double s = IN != 1  ? row_sumexp_##SUF(x, C, IN, m)                    \
                           : C < 32 ? row_sumexp_##SUF##_s(x, C, 1, m)                 \
                                    : row_sumexp_##SUF(x, C, 1, m);                    \
                lse = (double)m + log(s);                                              \
                if (LSE) LSE[r] = lse;                                                 \
                if (GC) class_row_grad_##SUF(&cx, r, gsc, lse, GC);                    \
            }                                                                          \
            if (kind == ML_LOSS_CROSS_ENTROPY_PROBS) {                                 \
                const T *t = TP + i * C * IN + j;                                      \
                for (int64_t k = 0; k < C; k++) {                                      \
                    double tk = (double)t[k * IN] * (1 - ls) + lsc;                    \
                    l -= (W ? (double)W[k] : 1.0) * tk * ((double)x[k * IN] - lse);    \
                }                                                                      \
            } else {                                                                   \
                int64_t t = TI[r];                                                     \
                if (t != ign) {                                                        \
                    if (t < 0 || t >= C) {                                             \
                        bad = 1;                                                       \
                    } else {                                                           \
                        double wt = W ? (double)W[t] : 1.0;                            \
                        wsum += wt;                                                    \
                        if (kind == ML_LOSS_NLL) l = -wt * (double)x[t * IN];          \
                        else {                                                         \
                            l = -(1 - ls) * wt * ((double)x[t * IN] - lse);            \
                            if (ls > 0) {                                              \
                                double sm = 0;                                         \
                                for (int64_t k = 0; k < C; k++)                        \
                                    sm += (W ? (double)W[k] : 1.0) * ((double)x[k * IN] - lse); \
                                l -= lsc * sm;                                         \
                            }                                                          \
                        }                                                              \
                    }                                                                  \
                }                                                                      \
            }                                                                          \
            if (none) O[r] = (T)l;                                                     \
            else acc += l;                                                             \
        });                                                                            \
        if (bad) return bad_class_id(a);                                               \
        /* with GC the divisor came from class_norm (the one the gradient used) */    \
        if (kind != ML_LOSS_CROSS_ENTROPY_PROBS && !GC) a->norm = wsum;                \
        if (!none) O[0] = (T)(a->reduction == ML_REDUCTION_MEAN ? acc / a->norm : acc); \
        return 0;                                                                      \
    }                                                                                  \
    static int class_backward_##SUF(const ml_loss_args *a, const ml_tensor *grad_out,  \
                                    ml_tensor *grad_input) {                           \
        const int64_t rows = a->n * a->inner;                                          \
        const double *LSE = a->aux ? (const double *)ml_data(a->aux) : NULL;           \
        const T *G = (const T *)ml_data(grad_out);                                     \
        T *GX = (T *)ml_data(grad_input);                                              \
        const bool none = a->reduction == ML_REDUCTION_NONE;                           \
        const double s = none ? 0 : a->reduction == ML_REDUCTION_MEAN ? (double)G[0] / a->norm \
                                                                      : (double)G[0];  \
        class_ctx_##SUF cx;                                                            \
        class_ctx_##SUF##_init(&cx, a);                                                \
        PAR_FOR_IF(rows * a->c > PAR_MIN, "omp parallel for",                          \
        for (int64_t r = 0; r < rows; r++) {                                           \
            class_row_grad_##SUF(&cx, r, none ? (double)G[r] : s, LSE ? LSE[r] : 0, GX); \
        });                                                                            \
        return 0;                                                                      \
    }

DEFINE_CLASS(float, f)
DEFINE_CLASS(double, d)

/* --- float32 cross_entropy with few classes (the MLP's [128, 10]) ----------
 * With c < 32 a row is shorter than a vector, and the per-row code above spent
 * ~40 ns a row in its short loops and its scalar log. Here rows go 16 at a time:
 *  - forward: the 16 rows are the 16 lanes of a vector; row maxima, the exps, a
 *    vectorised log and the loss terms (class ids, weights, ignore_index) go down
 *    the classes of 16 rows at once. The exps are summed in float: fewer than 32
 *    terms in [0, 1], one of them 1, so the sum is within 31 ulp (2e-6) of exact at
 *    worst and far closer in practice; the losses are still summed in double, and
 *    tests/lua/loss_small_classes_spec.lua checks them against float64 at 1e-6
 *    (a double sum here cost 15 % more time);
 *  - backward: one long loop over the block's contiguous elements, each 16 of them
 *    getting their rows' coefficients by one permute of a 16-row table (AVX-512),
 *    or from per-element copies made by table lookups elsewhere.
 * With AVX-512 the exps are written with its intrinsics (vexp16_nonpos): what gcc
 * made of vexpf took twice the operations, and the exps are most of the time.
 * Label smoothing (forward) and smoothing with weights (backward) take the general
 * code. */
#define CE_LANES 16
#define CE_SMALL_C 32

static inline bool ce_small(const ml_loss_args *a) {
    return a->input->dtype == ML_F32 && a->kind == ML_LOSS_CROSS_ENTROPY && a->inner == 1 &&
           a->c >= 1 && a->c < CE_SMALL_C;
}

static const float ce_ones[CE_SMALL_C] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* v when ok, else +0.0, by masking the bits (a `?:` on doubles kept gcc from
 * vectorising the loop below). */
static inline double keep_if(double v, int ok) {
    int64_t b;
    memcpy(&b, &v, sizeof b);
    b &= -(int64_t)ok;
    memcpy(&v, &b, sizeof v);
    return v;
}

#if !defined(__AVX512F__)
/* The loss terms of rows r0 .. r0 + nb - 1 (nb <= 16): logsumexp into LSE (when
 * not NULL), "none" values into O, and the block's sums. */
static void ce_fwd_block(const ml_loss_args *a, int64_t r0, int nb, double *LSE, float *O,
                         double *acc_out, double *wsum_out, int *bad_out) {
    const int32_t C = (int32_t)a->c;
    const int64_t ign = a->ignore_index;
    const float *xb = (const float *)ml_data(a->input) + r0 * C;
    const int64_t *tb = (const int64_t *)ml_data(a->target) + r0;
    const float *W = a->weight ? (const float *)ml_data(a->weight) : ce_ones;
    int32_t off[CE_LANES]; /* lane -> its row's offset (lanes past nb repeat row 0) */
    int64_t t[CE_LANES];
    float m[CE_LANES], lg[CE_LANES], xt[CE_SMALL_C][CE_LANES]; /* xt: the block transposed */
    float s[CE_LANES]; double lse[CE_LANES], l[CE_LANES];
    for (int j = 0; j < CE_LANES; j++) {
        off[j] = j < nb ? j * C : 0;
        t[j] = tb[j < nb ? j : 0];
        m[j] = -INFINITY;
        s[j] = 0;
    }
    for (int32_t k = 0; k < C; k++) {
        const float *xk = xb + k;
        _Pragma("omp simd")
        for (int j = 0; j < CE_LANES; j++) {
            const float v = xk[off[j]];
            xt[k][j] = v;
            m[j] = v > m[j] ? v : m[j];
        }
    }
#if defined(__AVX512F__)
    {
        const __m512 mv = _mm512_loadu_ps(m);
        __m512 sv = _mm512_setzero_ps();
        for (int32_t k = 0; k < C; k++)
            sv = _mm512_add_ps(sv, vexp16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(xt[k]), mv)));
        _mm512_storeu_ps(s, sv);
    }
#else
    for (int32_t k = 0; k < C; k++) {
        _Pragma("omp simd")
        for (int j = 0; j < CE_LANES; j++) s[j] += vexpf_nonpos(xt[k][j] - m[j]);
    }
#endif
    _Pragma("omp simd")
    for (int j = 0; j < CE_LANES; j++) lg[j] = vlogf((float)s[j]);
    double acc = 0, wsum = 0;
    int bad = 0;
    _Pragma("omp simd reduction(+:acc) reduction(+:wsum) reduction(|:bad)")
    for (int j = 0; j < CE_LANES; j++) {
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
        wsum += keep_if(wt, ok);
        bad |= oob;
    }
    if (LSE) memcpy(LSE + r0, lse, sizeof(double) * (size_t)nb);
    if (a->reduction == ML_REDUCTION_NONE)
        for (int j = 0; j < nb; j++) O[r0 + j] = (float)l[j];
    *acc_out = acc;
    *wsum_out = wsum;
    *bad_out = bad;
}

#endif

static const int32_t *ce_row_of(int32_t C);
static int class_norm_f(const ml_loss_args *a, double *norm);
#if defined(__AVX512F__)
static void ce_block16(const ml_loss_args *a, int64_t r0, int nb, double *LSE, float *O,
                       float *GC, double gsc, double *acc_out, double *wsum_out, int *bad_out);
static void ce_forward16(ml_loss_args *a, double *LSE, float *O, float *GC, double gsc,
                         double *acc_out, double *wsum_out, int *bad_out);
static int ce_norm16(const ml_loss_args *a, double *norm);
#endif

static int ce_forward_small(ml_loss_args *a, ml_tensor *out) {
    const int64_t rows = a->n, nblk = (rows + CE_LANES - 1) / CE_LANES;
    double *LSE = a->aux ? (double *)ml_data(a->aux) : NULL;
    float *O = (float *)ml_data(out);
    float *GC = a->grad_cache ? (float *)ml_data(a->grad_cache) : NULL;
    double gsc = 1;
    /* the gradient's divisor is wanted before the pass */
#if defined(__AVX512F__)
    if (GC && ce_norm16(a, &a->norm)) return bad_class_id(a);
#else
    if (GC && class_norm_f(a, &a->norm)) return bad_class_id(a);
#endif
    if (GC && a->reduction == ML_REDUCTION_MEAN) gsc = 1.0 / a->norm;
    double acc = 0, wsum = 0;
    int bad = 0;
#if defined(__AVX512F__)
    if (a->c <= 16) ce_forward16(a, LSE, O, GC, gsc, &acc, &wsum, &bad);
    else
#endif
    PAR_FOR_IF(rows * a->c > PAR_MIN,
               "omp parallel for reduction(+:acc) reduction(+:wsum) reduction(|:bad)",
    for (int64_t b = 0; b < nblk; b++) {
        const int64_t r0 = b * CE_LANES;
        const int nb = rows - r0 < CE_LANES ? (int)(rows - r0) : CE_LANES;
        double ab, wb;
        int bb;
#if defined(__AVX512F__)
        ce_block16(a, r0, nb, LSE, O, GC, gsc, &ab, &wb, &bb);
#else
        (void)gsc; /* GC is NULL here: cpu_loss_forward sends the gradient elsewhere */
        ce_fwd_block(a, r0, nb, LSE, O, &ab, &wb, &bb);
#endif
        acc += ab;
        wsum += wb;
        bad |= bb;
    });
    if (bad) return bad_class_id(a);
    if (!GC) a->norm = wsum;
    if (a->reduction != ML_REDUCTION_NONE)
        O[0] = (float)(a->reduction == ML_REDUCTION_MEAN ? acc / a->norm : acc);
    return 0;
}

/* The element -> row table of a block of 16 rows of c classes, per thread, made
 * again only when c changes. */
static const int32_t *ce_row_of(int32_t C) {
    static _Thread_local int32_t row[CE_LANES * CE_SMALL_C];
    static _Thread_local int32_t made_for;
    if (made_for != C) {
        for (int32_t j = 0; j < CE_LANES; j++)
            for (int32_t k = 0; k < C; k++) row[j * C + k] = j;
        made_for = C;
    }
    return row;
}

#if !defined(__AVX512F__)
/* out[e] = coef[row[e]] for e < ne: each element gets its row's coefficient. */
static inline void ce_expand(const float *coef, const int32_t *row, int32_t ne, float *out) {
    for (int32_t e = 0; e < ne; e++) out[e] = coef[row[e]];
}
#endif

#if defined(__AVX512F__)
/* vlogf on 16 lanes (getexp / getmant for the split, the same polynomial), for
 * finite x > 0; NaN stays NaN. */
static inline __m512 vlog16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = _mm512_add_ps(_mm512_getexp_ps(x), one);
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_src); /* [0.5, 1) */
    const __mmask16 lo = _mm512_cmp_ps_mask(m, _mm512_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
    m = _mm512_mask_add_ps(m, lo, m, m);
    e = _mm512_mask_sub_ps(e, lo, e, one);
    m = _mm512_sub_ps(m, one);
    const __m512 z = _mm512_mul_ps(m, m);
    __m512 y = _mm512_set1_ps(7.0376836292e-2f);
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(-1.1514610310e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(1.1676998740e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(-1.2420140846e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(1.4249322787e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(-1.6668057665e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(2.0000714765e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(-2.4999993993e-1f));
    y = _mm512_fmadd_ps(y, m, _mm512_set1_ps(3.3333331174e-1f));
    y = _mm512_mul_ps(_mm512_mul_ps(y, m), z);
    y = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), y);
    y = _mm512_fmadd_ps(z, _mm512_set1_ps(-0.5f), y);
    __m512 r = _mm512_add_ps(m, y);
    return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), r);
}

static inline double hsum_pd(__m512d lo, __m512d hi) { return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi)); }

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

/* ce_fwd_block in AVX-512 terms, and when GC is not NULL the rows' gradient for a
 * grad_out of 1 (times gsc, 1/norm for "mean") written into GC in the same pass:
 * the 16 rows are the lanes (the block transposed by gathers) for the maxima, the
 * exps' sums, the logs and the loss terms; the gradient goes along the block's
 * contiguous elements, each 16 of them getting their rows' coefficients by
 * permutes (as ce_bwd_block). Label smoothing is not handled here. */
static void ce_block16(const ml_loss_args *a, int64_t r0, int nb, double *LSE, float *O,
                       float *GC, double gsc, double *acc_out, double *wsum_out, int *bad_out) {
    const int32_t C = (int32_t)a->c;
    const float *xb = (const float *)ml_data(a->input) + r0 * C;
    const int64_t *tb = (const int64_t *)ml_data(a->target) + r0;
    const float *W = a->weight ? (const float *)ml_data(a->weight) : NULL;
    const __mmask16 lanes = nb >= CE_LANES ? (__mmask16)0xffff : (__mmask16)((1u << nb) - 1);
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
    for (int32_t k = 0; k < C; k++) s = _mm512_add_ps(s, vexp16_nonpos(_mm512_sub_ps(xt[k], m)));
    const __m512 lg = vlog16(s);
    const ce_ids ids = ce_class_ids(tb, lanes, a->ignore_index, C);
    const __mmask16 use = ids.use, oob = ids.oob, ok = ids.ok;
    const __m512i tc = ids.tc;
    const __m512 xv = _mm512_i32gather_ps(_mm512_add_epi32(off, tc), xb, 4);
    const __m512 wt = W ? _mm512_maskz_mov_ps(ok, _mm512_i32gather_ps(tc, W, 4))
                        : _mm512_maskz_mov_ps(ok, _mm512_set1_ps(1.0f));
    /* the loss terms in double: -wt * (x[t] - (max + log(sum))) */
#define CE_HALF(v, h) _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), h)))
    const __m512d lse_lo = _mm512_add_pd(CE_HALF(m, 0), CE_HALF(lg, 0));
    const __m512d lse_hi = _mm512_add_pd(CE_HALF(m, 1), CE_HALF(lg, 1));
    const __m512d l_lo = _mm512_maskz_mul_pd((__mmask8)ok, CE_HALF(wt, 0),
                                             _mm512_sub_pd(lse_lo, CE_HALF(xv, 0)));
    const __m512d l_hi = _mm512_maskz_mul_pd((__mmask8)(ok >> 8), CE_HALF(wt, 1),
                                             _mm512_sub_pd(lse_hi, CE_HALF(xv, 1)));
#undef CE_HALF
    *acc_out = hsum_pd(l_lo, l_hi);
    *wsum_out = hsum_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(wt)),
                        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(wt), 1))));
    *bad_out = (use & oob) != 0;
    if (LSE) {
        _mm512_mask_storeu_pd(LSE + r0, (__mmask8)lanes, lse_lo);
        _mm512_mask_storeu_pd(LSE + r0 + 8, (__mmask8)(lanes >> 8), lse_hi);
    }
    if (a->reduction == ML_REDUCTION_NONE) {
        const __m512 l = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(l_lo)),
                                            _mm512_cvtpd_ps(l_hi), 1);
        _mm512_mask_storeu_ps(O + r0, lanes, l);
    }
    if (!GC) return;
    /* g[k] = pa * exp(x[k] - lse) with pa = gsc * w[t], and g[t] -= pa; ignored rows 0 */
    const __m512 lsev = _mm512_add_ps(m, lg);
    const __m512 pav = _mm512_mul_ps(wt, _mm512_set1_ps((float)gsc));
    /* each row's target as an element of the block (-1: none) */
    const __m512i tpos = _mm512_mask_add_epi32(_mm512_set1_epi32(-1), ok, off, tc);
    const int32_t *row = ce_row_of(C);
    float *gb = GC + r0 * C;
    const int32_t ne = nb * C;
    __m512i ev = iota; /* the elements' positions in the block */
    for (int32_t e = 0; e < ne; e += 16) {
        const __mmask16 mk = ne - e >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (ne - e)) - 1);
        const __m512i idx = _mm512_maskz_loadu_epi32(mk, row + e);
        const __m512 x = _mm512_maskz_loadu_ps(mk, xb + e);
        const __m512 pe = _mm512_permutexvar_ps(idx, pav);
        const __m512i te = _mm512_permutexvar_epi32(idx, tpos);
        __m512 g = _mm512_mul_ps(pe, vexp16_nonpos(_mm512_sub_ps(x, _mm512_permutexvar_ps(idx, lsev))));
        g = _mm512_mask_sub_ps(g, _mm512_cmpeq_epi32_mask(te, ev), g, pe);
        /* rows ignored (tpos -1): 0, even for NaN logits */
        g = _mm512_maskz_mov_ps(_mm512_cmpge_epi32_mask(te, _mm512_setzero_si512()), g);
        _mm512_mask_storeu_ps(gb + e, mk, g);
        ev = _mm512_add_epi32(ev, _mm512_set1_epi32(16));
    }
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

/* What a block of 16 rows leaves for the loss terms, which are taken for many
 * blocks at once (their logs then overlap instead of each block waiting on its own). */
typedef struct {
    __m512 m, s, xv, wt; /* row max, sum of exp(x - max), x[t], w[t] (0 unless ok) */
    __mmask16 ok;        /* rows whose class id counts */
} ce_stats;

/* ce_block16 for c <= 16 without gathers: the 16 rows loaded as vectors (masked to
 * c lanes) and transposed by shuffles, so lane j holds row j; each exp is taken
 * once and kept for the gradient, which is transposed back and stored by row.
 * Returns whether a class id was out of range. */
static inline __attribute__((always_inline)) int
ce_block16t(const ml_loss_args *a, int64_t r0, int nb, float *GC, double gsc, ce_stats *st,
            const int32_t C) {
    const float *xb = (const float *)ml_data(a->input) + r0 * C;
    const int64_t *tb = (const int64_t *)ml_data(a->target) + r0;
    const __mmask16 lanes = nb >= CE_LANES ? (__mmask16)0xffff : (__mmask16)((1u << nb) - 1);
    const __mmask16 cm = (__mmask16)((1u << C) - 1);
    __m512 v[16];
    for (int j = 0; j < 16; j++) v[j] = _mm512_maskz_loadu_ps(j < nb ? cm : 0, xb + j * C);
    tr16x16(v);
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int32_t k = 0; k < C; k++) m = _mm512_max_ps(v[k], m); /* NaN logits are not the max */
    const ce_ids ids = ce_class_ids(tb, lanes, a->ignore_index, C);
    const __mmask16 use = ids.use, oob = ids.oob, ok = ids.ok;
    const __m512i tc = ids.tc;
    __m512 s = _mm512_setzero_ps(), xv = _mm512_setzero_ps();
    for (int32_t k = 0; k < C; k++) {
        xv = _mm512_mask_mov_ps(xv, _mm512_cmpeq_epi32_mask(tc, _mm512_set1_epi32(k)), v[k]);
        v[k] = vexp16_nonpos(_mm512_sub_ps(v[k], m));
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
static const ce_block16t_fn ce_block16t_of[17] = {
    NULL, ce_block16t_1, ce_block16t_2, ce_block16t_3, ce_block16t_4, ce_block16t_5,
    ce_block16t_6, ce_block16t_7, ce_block16t_8, ce_block16t_9, ce_block16t_10,
    ce_block16t_11, ce_block16t_12, ce_block16t_13, ce_block16t_14, ce_block16t_15,
    ce_block16t_16};

/* The loss terms of nblk blocks from row r0 (as ce_block16's): -w[t] (x[t] - lse)
 * in double, lse = max + log(sum); "none" values into O, logsumexps into LSE. */
static void ce_terms16(const ce_stats *st, int nblk, int64_t r0, int64_t rows, double *LSE,
                       float *O, double *acc_out, double *wsum_out) {
    __m512d acc = _mm512_setzero_pd(), wsum = _mm512_setzero_pd();
    for (int b = 0; b < nblk; b++, r0 += CE_LANES) {
        const int64_t left = rows - r0;
        const __mmask16 lanes = left >= CE_LANES ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        const __m512 lg = vlog16(st[b].s);
#define CE_HALF(v, h) _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), h)))
        const __m512d lse_lo = _mm512_add_pd(CE_HALF(st[b].m, 0), CE_HALF(lg, 0));
        const __m512d lse_hi = _mm512_add_pd(CE_HALF(st[b].m, 1), CE_HALF(lg, 1));
        const __mmask16 ok = st[b].ok;
        const __m512d l_lo = _mm512_maskz_mul_pd((__mmask8)ok, CE_HALF(st[b].wt, 0),
                                                 _mm512_sub_pd(lse_lo, CE_HALF(st[b].xv, 0)));
        const __m512d l_hi = _mm512_maskz_mul_pd((__mmask8)(ok >> 8), CE_HALF(st[b].wt, 1),
                                                 _mm512_sub_pd(lse_hi, CE_HALF(st[b].xv, 1)));
        acc = _mm512_add_pd(acc, _mm512_add_pd(l_lo, l_hi));
        wsum = _mm512_add_pd(wsum, _mm512_add_pd(CE_HALF(st[b].wt, 0), CE_HALF(st[b].wt, 1)));
#undef CE_HALF
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
    *acc_out = _mm512_reduce_add_pd(acc);
    *wsum_out = _mm512_reduce_add_pd(wsum);
}

#define CE_CHUNK 16 /* blocks whose loss terms are taken together */

/* ce_forward_small's loop for c <= 16 */
static void ce_forward16(ml_loss_args *a, double *LSE, float *O, float *GC, double gsc,
                         double *acc_out, double *wsum_out, int *bad_out) {
    const int64_t rows = a->n, nblk = (rows + CE_LANES - 1) / CE_LANES;
    const int64_t nch = (nblk + CE_CHUNK - 1) / CE_CHUNK;
    float *ON = a->reduction == ML_REDUCTION_NONE ? O : NULL;
    const ce_block16t_fn block = ce_block16t_of[a->c];
    double acc = 0, wsum = 0;
    int bad = 0;
    PAR_FOR_IF(rows * a->c > PAR_MIN,
               "omp parallel for reduction(+:acc) reduction(+:wsum) reduction(|:bad)",
    for (int64_t ch = 0; ch < nch; ch++) {
        ce_stats st[CE_CHUNK];
        const int64_t b0 = ch * CE_CHUNK;
        const int nb_ch = nblk - b0 < CE_CHUNK ? (int)(nblk - b0) : CE_CHUNK;
        for (int b = 0; b < nb_ch; b++) {
            const int64_t r0 = (b0 + b) * CE_LANES;
            const int nb = rows - r0 < CE_LANES ? (int)(rows - r0) : CE_LANES;
            bad |= block(a, r0, nb, GC, gsc, &st[b]);
        }
        double ab, wb;
        ce_terms16(st, nb_ch, b0 * CE_LANES, rows, LSE, ON, &ab, &wb);
        acc += ab;
        wsum += wb;
    });
    *acc_out = acc;
    *wsum_out = wsum;
    *bad_out = bad;
}

/* class_norm_f for the blocks' class ids, 16 rows at a time */
static int ce_norm16(const ml_loss_args *a, double *norm) {
    const int64_t rows = a->n, *TI = (const int64_t *)ml_data(a->target);
    const float *W = a->weight ? (const float *)ml_data(a->weight) : NULL;
    const __m512i ignv = _mm512_set1_epi64(a->ignore_index), cv = _mm512_set1_epi64(a->c);
    const __m512i zero = _mm512_setzero_si512();
    __m512d ws = _mm512_setzero_pd();
    __mmask8 bad = 0;
    for (int64_t r = 0; r < rows; r += 8) {
        const __mmask8 lanes = rows - r >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (rows - r)) - 1);
        const __m512i t = _mm512_maskz_loadu_epi64(lanes, TI + r);
        const __mmask8 use = lanes & (__mmask8)~_mm512_cmpeq_epi64_mask(t, ignv);
        const __mmask8 oob = _mm512_cmplt_epi64_mask(t, zero) | _mm512_cmpge_epi64_mask(t, cv);
        const __mmask8 ok = use & (__mmask8)~oob;
        bad |= use & oob;
        if (W) {
            const __m256 w = _mm512_mask_i64gather_ps(_mm256_setzero_ps(), ok,
                                                      _mm512_maskz_mov_epi64(ok, t), W, 4);
            ws = _mm512_add_pd(ws, _mm512_cvtps_pd(w));
        } else {
            ws = _mm512_add_pd(ws, _mm512_maskz_mov_pd(ok, _mm512_set1_pd(1.0)));
        }
    }
    *norm = _mm512_reduce_add_pd(ws);
    return bad ? -1 : 0;
}
#endif

static void ce_bwd_block(const ml_loss_args *a, int64_t r0, int nb, const float *G,
                         int64_t gstride, double s, double wtot, float *GX) {
    const int32_t C = (int32_t)a->c;
    const int64_t ign = a->ignore_index;
    const float *xb = (const float *)ml_data(a->input) + r0 * C;
    const int64_t *tb = (const int64_t *)ml_data(a->target) + r0;
    const float *W = a->weight ? (const float *)ml_data(a->weight) : ce_ones;
    const double *LSE = (const double *)ml_data(a->aux) + r0;
    const double ls = a->label_smoothing, lsc = ls / (double)C;
    float *gb = GX + r0 * C;
    /* per row, as row_grad: g[k] = pa * softmax(x)[k] - sub, then g[t] -= a1;
     * rows that are ignored (or past nb) get keep = 0 and zero gradients */
    float lse[CE_LANES], pa[CE_LANES], sub[CE_LANES], a1[CE_LANES], keep[CE_LANES];
    int32_t tt[CE_LANES];
    int64_t t[CE_LANES];
    double sc[CE_LANES], lsed[CE_LANES];
    for (int j = 0; j < CE_LANES; j++) {
        const int jj = j < nb ? j : 0;
        t[j] = tb[jj];
        sc[j] = gstride ? (double)G[(r0 + jj) * gstride] : s;
        lsed[j] = LSE[jj];
    }
    _Pragma("omp simd")
    for (int j = 0; j < CE_LANES; j++) {
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
    const int32_t *row = ce_row_of(C);
#if defined(__AVX512F__)
    /* each 16 elements' row coefficients: one permute of the 16-row table each */
    const __m512 lv = _mm512_loadu_ps(lse), pv = _mm512_loadu_ps(pa), sv = _mm512_loadu_ps(sub);
    const __m512 kv = _mm512_loadu_ps(keep);
    for (int32_t e = 0; e < ne; e += 16) {
        const __mmask16 mk = ne - e >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (ne - e)) - 1);
        const __m512i idx = _mm512_maskz_loadu_epi32(mk, row + e);
        const __m512 x = _mm512_maskz_loadu_ps(mk, xb + e);
        const __m512 ex = vexp16_nonpos(_mm512_sub_ps(x, _mm512_permutexvar_ps(idx, lv)));
        const __m512 p = _mm512_fmsub_ps(_mm512_permutexvar_ps(idx, pv), ex,
                                         _mm512_permutexvar_ps(idx, sv));
        /* ignored rows: 0, even for NaN logits */
        const __mmask16 kept = _mm512_cmp_ps_mask(_mm512_permutexvar_ps(idx, kv),
                                                  _mm512_setzero_ps(), _CMP_NEQ_OQ);
        _mm512_mask_storeu_ps(gb + e, mk, _mm512_maskz_mov_ps(kept, p));
    }
#else
    float e_lse[CE_LANES * CE_SMALL_C], e_pa[CE_LANES * CE_SMALL_C];
    float e_sub[CE_LANES * CE_SMALL_C], e_keep[CE_LANES * CE_SMALL_C];
    ce_expand(lse, row, ne, e_lse);
    ce_expand(pa, row, ne, e_pa);
    ce_expand(sub, row, ne, e_sub);
    ce_expand(keep, row, ne, e_keep);
    _Pragma("omp simd")
    for (int32_t e = 0; e < ne; e++) {
        const float p = e_pa[e] * vexpf_nonpos(xb[e] - e_lse[e]) - e_sub[e];
        gb[e] = e_keep[e] != 0.0f ? p : 0.0f; /* ignored rows: 0, even for NaN logits */
    }
#endif
    for (int j = 0; j < nb; j++)
        if (tt[j] >= 0) gb[j * C + tt[j]] -= a1[j];
}

static int ce_backward_small(const ml_loss_args *a, const ml_tensor *grad_out,
                             ml_tensor *grad_input) {
    const int64_t rows = a->n, nblk = (rows + CE_LANES - 1) / CE_LANES;
    const float *G = (const float *)ml_data(grad_out);
    float *GX = (float *)ml_data(grad_input);
    const bool none = a->reduction == ML_REDUCTION_NONE;
    const double s = none ? 0 : a->reduction == ML_REDUCTION_MEAN ? (double)G[0] / a->norm
                                                                  : (double)G[0];
    double wtot = 0;
    if (a->weight) {
        const float *W = (const float *)ml_data(a->weight);
        for (int64_t k = 0; k < a->c; k++) wtot += (double)W[k];
    } else {
        wtot = (double)a->c;
    }
    PAR_FOR_IF(rows * a->c > PAR_MIN, "omp parallel for",
    for (int64_t b = 0; b < nblk; b++) {
        const int64_t r0 = b * CE_LANES;
        const int nb = rows - r0 < CE_LANES ? (int)(rows - r0) : CE_LANES;
        ce_bwd_block(a, r0, nb, G, none ? 1 : 0, s, wtot, GX);
    });
    return 0;
}

#if defined(__AVX512F__)
/* --- float32 cross_entropy with class ids, class dim last, gradient wanted ---
 * One pass per row while it is in L1: its max, its exps stored into the gradient
 * (summed in double), the logsumexp, then the exps scaled into the gradient in
 * place: one exp per element, the input read once and the gradient written once
 * (the forward and backward kernels above take an exp each and read the input
 * twice). */
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
            mk, vexp16_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + k), mv)));
        if (g) _mm512_mask_storeu_ps(g + k, mk, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

/* also without GC (no gradient wanted): the loss alone, the same arithmetic */
static int ce_rows_f(ml_loss_args *a, ml_tensor *out) {
    const int64_t N = a->n, C = a->c, ign = a->ignore_index;
    const float *X = (const float *)ml_data(a->input);
    const float *W = a->weight ? (const float *)ml_data(a->weight) : NULL;
    const int64_t *TI = (const int64_t *)ml_data(a->target);
    float *O = (float *)ml_data(out);
    float *GC = a->grad_cache ? (float *)ml_data(a->grad_cache) : NULL;
    double *LSE = a->aux ? (double *)ml_data(a->aux) : NULL;
    if (class_norm_f(a, &a->norm)) return bad_class_id(a);
    const bool none = a->reduction == ML_REDUCTION_NONE, mean = a->reduction == ML_REDUCTION_MEAN;
    const double gsc = mean ? 1.0 / a->norm : 1.0;
    const double ls = a->label_smoothing, lsc = ls / (double)C;
    double wtot = 0;
    if (W) for (int64_t k = 0; k < C; k++) wtot += (double)W[k];
    else wtot = (double)C;
    double acc = 0;
    PAR_FOR_IF(N * C > PAR_MIN, "omp parallel for reduction(+:acc)",
    for (int64_t r = 0; r < N; r++) {
        const float *x = X + r * C;
        float *g = GC ? GC + r * C : NULL;
        const int64_t t = TI[r];
        double l = 0;
        if (t == ign) { /* class_norm let only ignore_index and ids in [0, C) through */
            if (GC) memset(g, 0, sizeof(float) * (size_t)C);
            if (LSE) LSE[r] = 0; /* not read: backward gives an ignored row 0 */
        } else {
            const float m = row_max16(x, C);
            const double s = row_sumexp16(x, C, m, g);
            const double lse = (double)m + log(s);
            if (LSE) LSE[r] = lse;
            const double wt = W ? (double)W[t] : 1.0;
            l = -(1 - ls) * wt * ((double)x[t] - lse);
            if (ls > 0) {
                double sm = 0;
                for (int64_t k = 0; k < C; k++) sm += (W ? (double)W[k] : 1.0) * ((double)x[k] - lse);
                l -= lsc * sm;
            }
            if (GC) {
                /* as row_grad: g = pa * softmax(x) - sub (* w[k] with weights), g[t] -= a1 */
                const float a1 = (float)(gsc * (1 - ls) * wt), a2 = (float)(gsc * lsc * wtot);
                const __m512 q = _mm512_set1_ps((float)((double)(a1 + a2) / s));
                const __m512 sub = _mm512_set1_ps((float)(gsc * lsc));
                for (int64_t k = 0; k < C; k += 16) {
                    const __mmask16 mk = ml_mask16(C - k);
                    const __m512 e = _mm512_maskz_loadu_ps(mk, g + k);
                    const __m512 wk = ls > 0 && W ? _mm512_maskz_loadu_ps(mk, W + k) : _mm512_set1_ps(1.0f);
                    _mm512_mask_storeu_ps(g + k, mk, _mm512_fnmadd_ps(sub, wk, _mm512_mul_ps(e, q)));
                }
                g[t] -= a1;
            }
        }
        if (none) O[r] = (float)l;
        else acc += l;
    });
    if (!none) O[0] = (float)(mean ? acc / a->norm : acc);
    return 0;
}
#endif

static bool is_class_kind(ml_loss_kind k) { return k >= ML_LOSS_NLL && k < ML_LOSS_COUNT; }

/* mse_loss, and its gradient (for a grad_out of 1) in the same pass when GC is
 * given; threads only for large n (an `omp parallel ... if` region is a libgomp
 * trip even when small), simd for the sum (a plain loop adds one element at a time) */
/* acc += every (x - t)^2 (and the gradient stored): the loop of the reduced mse,
 * under a parallel or a plain simd pragma (an "if (0)" region still enters libgomp) */
#define MSE_SUM(T, STORE_G)                                                            \
    for (int64_t i = 0; i < n; i++) {                                                  \
        const T d = X[i] - TG[i];                                                      \
        acc += (double)(d * d);                                                        \
        if (STORE_G) GC[i] = two_s * d;                                                \
    }

#define MSE_LOOP(T, STORE_G)                                                           \
    do {                                                                               \
        if (a->reduction == ML_REDUCTION_NONE) {                                       \
            PAR_FOR_IF(n > PAR_MIN, "omp parallel for",                                \
            for (int64_t i = 0; i < n; i++) {                                          \
                const T d = X[i] - TG[i];                                              \
                O[i] = d * d;                                                          \
                if (STORE_G) GC[i] = two_s * d;                                        \
            });                                                                        \
            return 0;                                                                  \
        }                                                                              \
        if (n > PAR_MIN) {                                                             \
            _Pragma("omp parallel for simd reduction(+:acc)") MSE_SUM(T, STORE_G)      \
        } else {                                                                       \
            _Pragma("omp simd reduction(+:acc)") MSE_SUM(T, STORE_G)                   \
        }                                                                              \
    } while (0)

#define DEFINE_MSE_GRAD(T, SUF)                                                        \
    static int mse_forward_##SUF(ml_loss_args *a, ml_tensor *out) {                   \
        const int64_t n = ml_numel(a->input);                                          \
        const T *X = (const T *)ml_data(a->input), *TG = (const T *)ml_data(a->target); \
        T *O = (T *)ml_data(out);                                                      \
        T *GC = a->grad_cache ? (T *)ml_data(a->grad_cache) : NULL;                    \
        const bool mean = a->reduction == ML_REDUCTION_MEAN;                           \
        const T two_s = (T)(mean ? 2.0 / a->norm : 2.0);                               \
        double acc = 0;                                                                \
        if (GC) MSE_LOOP(T, 1);                                                        \
        else MSE_LOOP(T, 0);                                                           \
        O[0] = (T)(mean ? acc / a->norm : acc);                                        \
        return 0;                                                                      \
    }                                                                                  \
    /* grad_input holds the forward's gradient for a grad_out of 1: times grad_out;  \
     * for a class loss's "none", row r's classes times G[r], rows that were zero      \
     * (ignored) staying zero */                                                       \
    static int scale_cached_##SUF(const ml_loss_args *a, const ml_tensor *grad_out,    \
                                  ml_tensor *grad_input) {                             \
        const T *G = (const T *)ml_data(grad_out);                                     \
        T *GX = (T *)ml_data(grad_input);                                              \
        const int64_t n = ml_numel(grad_input);                                        \
        if (a->reduction != ML_REDUCTION_NONE) {                                       \
            const T g = G[0];                                                          \
            if (g == (T)1) return 0;                                                   \
            PAR_FOR_IF(n > PAR_MIN, "omp parallel for",                                \
            for (int64_t i = 0; i < n; i++) GX[i] *= g;);                              \
            return 0;                                                                  \
        }                                                                              \
        if (!is_class_kind(a->kind)) {                                                 \
            PAR_FOR_IF(n > PAR_MIN, "omp parallel for",                                \
            for (int64_t i = 0; i < n; i++) GX[i] *= G[i];);                           \
            return 0;                                                                  \
        }                                                                              \
        const int64_t N = a->n, C = a->c, IN = a->inner;                               \
        PAR_FOR_IF(n > PAR_MIN, "omp parallel for",                                    \
        for (int64_t i = 0; i < N; i++) {                                              \
            for (int64_t k = 0; k < C; k++) {                                          \
                T *gx = GX + (i * C + k) * IN;                                         \
                const T *g = G + i * IN;                                               \
                for (int64_t j = 0; j < IN; j++) gx[j] = gx[j] != 0 ? gx[j] * g[j] : gx[j]; \
            }                                                                          \
        });                                                                            \
        return 0;                                                                      \
    }

DEFINE_MSE_GRAD(float, f)
DEFINE_MSE_GRAD(double, d)

static int cpu_loss_forward(ml_loss_args *a, ml_tensor *out) {
    bool f32 = a->input->dtype == ML_F32;
    if (!f32 && a->input->dtype != ML_F64)
        return ml_error_set("%s: needs a floating point input, got %s", ml_loss_name(a->kind),
                            ml_dtype_name(a->input->dtype));
    if (a->kind == ML_LOSS_MSE) return f32 ? mse_forward_f(a, out) : mse_forward_d(a, out);
#if defined(__AVX512F__)
    if (ce_small(a) && a->label_smoothing == 0) return ce_forward_small(a, out);
    if (f32 && a->kind == ML_LOSS_CROSS_ENTROPY && a->inner == 1) return ce_rows_f(a, out);
#else
    if (ce_small(a) && a->label_smoothing == 0 && !a->grad_cache) return ce_forward_small(a, out);
#endif
    if (is_class_kind(a->kind)) return f32 ? class_forward_f(a, out) : class_forward_d(a, out);
    return f32 ? ew_forward_f(a, out) : ew_forward_d(a, out);
}

static int cpu_loss_backward(const ml_loss_args *a, const ml_tensor *grad_out,
                             ml_tensor *grad_input, ml_tensor *grad_extra) {
    bool f32 = a->input->dtype == ML_F32;
    if (!f32 && a->input->dtype != ML_F64)
        return ml_error_set("%s: needs a floating point input, got %s", ml_loss_name(a->kind),
                            ml_dtype_name(a->input->dtype));
    if (a->grad_cached)
        return f32 ? scale_cached_f(a, grad_out, grad_input) : scale_cached_d(a, grad_out, grad_input);
    if (is_class_kind(a->kind)) {
        if (!grad_input) return 0;
        if (ce_small(a) && !(a->label_smoothing > 0 && a->weight))
            return ce_backward_small(a, grad_out, grad_input);
        return f32 ? class_backward_f(a, grad_out, grad_input) : class_backward_d(a, grad_out, grad_input);
    }
    return f32 ? ew_backward_f(a, grad_out, grad_input, grad_extra)
               : ew_backward_d(a, grad_out, grad_input, grad_extra);
}

const ml_loss_ops ml_cpu_loss = {.forward = cpu_loss_forward, .backward = cpu_loss_backward,
                                 .grad_in_forward = true};
