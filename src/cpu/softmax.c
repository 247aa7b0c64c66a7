/* CPU kernels of the softmax family: the stable form (subtract the max), over n of
 * [outer, n, inner]; rows are independent and split across threads. The portable
 * lines per float type are softmax_lines.h; float32 rows over the last dim have an
 * AVX-512 path (the MLP's 10 classes are one masked vector) that
 * tests/lua/softmax_rows_spec.lua compares with them. */
#include <math.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"
#include "vmath.h"

/* One call's work: x (or y for backward), y (or grad_x), g for backward. */
typedef struct {
    const void *x, *g;
    void *y;
    int64_t n, inner;
    bool is_log;
} softmax_job;

#define T float
#define SUFFIX f32
#define EXP ml_expf
#define LOG logf
#include "softmax_lines.h"
#undef T
#undef SUFFIX
#undef EXP
#undef LOG

#define T double
#define SUFFIX f64
#define EXP exp
#define LOG log
#include "softmax_lines.h"
#undef T
#undef SUFFIX
#undef EXP
#undef LOG

#if defined(__AVX512F__)
/* float32 over the last dim (inner = 1, the common case) with AVX-512: each row in
 * 16-lane chunks, the tail by a mask, so a short row (the MLP's 10 classes) is one
 * masked vector and costs a few dozen instructions, where the plain loops below
 * spent ~100 ns a row in their vector prologues and scalar tails. A NaN anywhere
 * makes the row NaN, as in torch; a row of -inf gives NaN (0 / 0) as torch does. */
static void softmax_row_avx512(const float *restrict p, float *restrict q, int64_t n,
                               bool is_log) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 mv = ninf;
    __mmask16 nan = 0;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        const __m512 v = _mm512_mask_loadu_ps(ninf, mk, p + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        mv = _mm512_max_ps(mv, v);
    }
    float m = nan ? NAN : _mm512_reduce_max_ps(mv);
    if (m == -INFINITY) m = 0;
    const __m512 mb = _mm512_set1_ps(m);
    __m512 sv = _mm512_setzero_ps();
    if (n <= 16) { /* one vector: the exps stay in a register */
        const __mmask16 mk = ml_mask16(n);
        const __m512 v = _mm512_maskz_loadu_ps(mk, p);
        const __m512 e = _mm512_maskz_mov_ps(mk, ml_exp16_nonpos(_mm512_sub_ps(v, mb)));
        const float s = _mm512_reduce_add_ps(e);
        if (is_log) _mm512_mask_storeu_ps(q, mk, _mm512_sub_ps(_mm512_sub_ps(v, mb), _mm512_set1_ps(logf(s))));
        else _mm512_mask_storeu_ps(q, mk, _mm512_mul_ps(e, _mm512_set1_ps(1.0f / s)));
        return;
    }
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        const __m512 e = _mm512_maskz_mov_ps(
            mk, ml_exp16_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, p + i), mb)));
        sv = _mm512_add_ps(sv, e);
        if (!is_log) _mm512_mask_storeu_ps(q + i, mk, e);
    }
    const float s = _mm512_reduce_add_ps(sv);
    const __m512 c = _mm512_set1_ps(is_log ? logf(s) : 1.0f / s);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        if (is_log)
            _mm512_mask_storeu_ps(q + i, mk, _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, p + i), mb), c));
        else _mm512_mask_storeu_ps(q + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, q + i), c));
    }
}

/* The backward of one row: softmax gx = y * (g - sum(g * y)); log_softmax
 * gx = g - exp(y) * sum(g) (y <= 0 there, so the non-positive exp serves). */
static void softmax_row_backward_avx512(const float *restrict y, const float *restrict g,
                                        float *restrict gx, int64_t n, bool is_log) {
    __m512 sv = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(mk, g + i);
        sv = is_log ? _mm512_add_ps(sv, gv) : _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(mk, y + i), sv);
    }
    const __m512 s = _mm512_set1_ps(_mm512_reduce_add_ps(sv));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = ml_mask16(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(mk, g + i), yv = _mm512_maskz_loadu_ps(mk, y + i);
        const __m512 r = is_log ? _mm512_fnmadd_ps(ml_exp16_nonpos(yv), s, gv)
                                : _mm512_mul_ps(yv, _mm512_sub_ps(gv, s));
        _mm512_mask_storeu_ps(gx + i, mk, r);
    }
}

static void softmax_rows_avx512(void *ctx, int64_t o0, int64_t o1) {
    const softmax_job *jb = ctx;
    const float *xp = jb->x;
    float *yp = jb->y;
    for (int64_t o = o0; o < o1; o++) softmax_row_avx512(xp + o * jb->n, yp + o * jb->n, jb->n, jb->is_log);
}

static void softmax_rows_backward_avx512(void *ctx, int64_t o0, int64_t o1) {
    const softmax_job *jb = ctx;
    const float *yp = jb->x, *gp = jb->g;
    float *op = jb->y;
    for (int64_t o = o0; o < o1; o++)
        softmax_row_backward_avx512(yp + o * jb->n, gp + o * jb->n, op + o * jb->n, jb->n, jb->is_log);
}
#define ROWS_F32 softmax_rows_avx512
#define ROWS_BACKWARD_F32 softmax_rows_backward_avx512
#else
/* float32 over the last dim without AVX-512: each row's three passes are
 * unit-stride loops the compiler vectorises, ml_expf included. */
static void softmax_rows_plain(void *ctx, int64_t o0, int64_t o1) {
    const softmax_job *jb = ctx;
    const int64_t n = jb->n;
    for (int64_t o = o0; o < o1; o++) {
        const float *restrict p = (const float *)jb->x + o * n;
        float *restrict q = (float *)jb->y + o * n;
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (int64_t i = 0; i < n; i++) m = p[i] > m ? p[i] : m;
        for (int64_t i = 0; i < n; i++) /* a NaN anywhere makes the row NaN, as torch */
            if (p[i] != p[i]) m = p[i];
        if (m == -INFINITY) m = 0;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; i++) {
            const float e = ml_expf(p[i] - m);
            q[i] = e;
            s += e;
        }
        if (jb->is_log) {
            const float ls = logf(s);
#pragma omp simd
            for (int64_t i = 0; i < n; i++) q[i] = (p[i] - m) - ls;
        } else {
            const float r = 1.0f / s;
#pragma omp simd
            for (int64_t i = 0; i < n; i++) q[i] *= r;
        }
    }
}
#define ROWS_F32 softmax_rows_plain
#define ROWS_BACKWARD_F32 softmax_lines_backward_f32
#endif

/* Rows are independent: split over outer (any split gives the same bits). */
static int cpu_softmax_forward(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                               bool is_log, ml_tensor *y) {
    softmax_job jb = {ml_data(x), NULL, ml_data(y), n, inner, is_log};
    ml_range_fn fn;
    if (x->dtype == ML_F32) fn = inner == 1 ? ROWS_F32 : softmax_lines_f32;
    else if (x->dtype == ML_F64) fn = softmax_lines_f64;
    else return ml_error_set("softmax: needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
    ml_parallel_for(outer, ML_PAR_MIN / (n * inner > 0 ? n * inner : 1) + 1, fn, &jb);
    return 0;
}

static int cpu_softmax_backward(const ml_tensor *y, const ml_tensor *g, int64_t outer,
                                int64_t n, int64_t inner, bool is_log, ml_tensor *grad_x) {
    softmax_job jb = {ml_data(y), ml_data(g), ml_data(grad_x), n, inner, is_log};
    ml_range_fn fn;
    if (y->dtype == ML_F32) fn = inner == 1 ? ROWS_BACKWARD_F32 : softmax_lines_backward_f32;
    else if (y->dtype == ML_F64) fn = softmax_lines_backward_f64;
    else return ml_error_set("softmax: needs a floating point tensor, got %s", ml_dtype_name(y->dtype));
    ml_parallel_for(outer, ML_PAR_MIN / (n * inner > 0 ? n * inner : 1) + 1, fn, &jb);
    return 0;
}

const ml_softmax_ops ml_cpu_softmax = {ML_SOFTMAX_ENTRIES(ML_BACKEND_ENTRY, cpu_softmax_)};
