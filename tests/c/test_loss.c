/* The loss family from C: ml_loss's values, the mean's divisor with weights and
 * ignore_index, the backward kernel through ml_backward, errors set by kernels; and
 * the CPU's float32 cross_entropy fast paths (loss_class_small.c, loss_class_avx512.c,
 * whichever the build has) against the portable reference (loss_class.c) they must
 * match, on every path's shapes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "autograd.h"
#include "backend.h"
/* the portable reference as compiled for the default level (src/cpu/isa.h gives
 * each level's copy its suffix); the fast paths come from the level that runs */
#define ML_ISA default
#include "cpu/isa.h"
#include "cpu/loss_cpu.h"
#include "error.h"
#include "ops.h"

static ml_tensor *from(const float *v, int ndim, const int64_t *shape) {
    ml_tensor *t = ml_tensor_empty(ML_F32, ML_CPU, ndim, shape);
    memcpy(ml_data(t), v, sizeof(float) * (size_t)ml_numel(t));
    return t;
}

static ml_tensor *ids(const int64_t *v, int64_t n) {
    ml_tensor *t = ml_tensor_empty(ML_I64, ML_CPU, 1, &n);
    memcpy(ml_data(t), v, sizeof(int64_t) * (size_t)n);
    return t;
}

static void test_mse_value_and_grad(void **state) {
    (void)state;
    int64_t shape[2] = {2, 2};
    float xv[4] = {1, 2, 3, 4}, tv[4] = {0, 0, 1, 1};
    ml_tensor *x = from(xv, 2, shape), *t = from(tv, 2, shape);
    x->requires_grad = true;
    ml_tensor *l = ml_mse_loss(x, t, ML_REDUCTION_MEAN);
    assert_non_null(l);
    assert_int_equal(l->ndim, 0);
    assert_float_equal(*(float *)ml_data(l), (1 + 4 + 4 + 9) / 4.0, 1e-6);
    assert_int_equal(ml_backward(l, NULL), 0);
    const float *g = ml_data(x->grad);
    for (int i = 0; i < 4; i++) assert_float_equal(g[i], 2 * (xv[i] - tv[i]) / 4, 1e-6);
    ml_tensor_release(l);
    ml_tensor_release(x);
    ml_tensor_release(t);
}

/* weighted mean: sum of w[t] * nll over the non-ignored rows / sum of their w[t] */
static void test_cross_entropy_weighted_ignore(void **state) {
    (void)state;
    int64_t shape[2] = {3, 2}, c = 2;
    float xv[6] = {0, 0, 1, 0, 0, 2};
    int64_t tv[3] = {0, -100, 1};
    float wv[2] = {2, 3};
    ml_tensor *x = from(xv, 2, shape), *t = ids(tv, 3), *w = from(wv, 1, &c);
    ml_loss_options o;
    ml_loss_options_init(&o, ML_LOSS_CROSS_ENTROPY);
    o.weight = w;
    ml_tensor *l = ml_loss(ML_LOSS_CROSS_ENTROPY, x, t, NULL, &o);
    assert_non_null(l);
    double r0 = -log(0.5), r2 = -(2 - log(1 + exp(2.0)));
    assert_float_equal(*(float *)ml_data(l), (2 * r0 + 3 * r2) / 5, 1e-6);
    ml_tensor_release(l);
    ml_tensor_release(x);
    ml_tensor_release(t);
    ml_tensor_release(w);
}

static void test_bad_class_id_names_it(void **state) {
    (void)state;
    int64_t shape[2] = {2, 3};
    float xv[6] = {0};
    int64_t tv[2] = {1, 7};
    ml_tensor *x = from(xv, 2, shape), *t = ids(tv, 2);
    ml_tensor *l = ml_loss(ML_LOSS_NLL, x, t, NULL, NULL);
    assert_null(l);
    assert_non_null(strstr(ml_error(), "nll_loss: target class id 7 is out of range"));
    assert_non_null(strstr(ml_error(), "< 3"));
    ml_tensor_release(x);
    ml_tensor_release(t);
}

/* gaussian_nll's var of shape [N] for input [N, D]: its gradient sums over D */
static void test_gaussian_var_grad_reduces(void **state) {
    (void)state;
    int64_t shape[2] = {2, 2}, n = 2;
    float xv[4] = {1, 2, 3, 4}, tv[4] = {0, 0, 0, 0}, vv[2] = {1, 2};
    ml_tensor *x = from(xv, 2, shape), *t = from(tv, 2, shape), *v = from(vv, 1, &n);
    v->requires_grad = true;
    ml_loss_options o;
    ml_loss_options_init(&o, ML_LOSS_GAUSSIAN_NLL);
    o.reduction = ML_REDUCTION_SUM;
    ml_tensor *l = ml_loss(ML_LOSS_GAUSSIAN_NLL, x, t, v, &o);
    assert_non_null(l);
    assert_int_equal(ml_backward(l, NULL), 0);
    assert_int_equal(v->grad->ndim, 1);
    const float *g = ml_data(v->grad);
    for (int i = 0; i < 2; i++) {
        double want = 0;
        for (int j = 0; j < 2; j++) {
            double d = xv[i * 2 + j];
            want += 0.5 * (1 / vv[i] - d * d / (vv[i] * vv[i]));
        }
        assert_float_equal(g[i], want, 1e-5);
    }
    ml_tensor_release(l);
    ml_tensor_release(x);
    ml_tensor_release(t);
    ml_tensor_release(v);
}

/* --- the fast paths against the reference ----------------------------------- */

static uint64_t rng_state = 88172645463325252ull;
static double uniform(void) { /* xorshift64: [0, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* |a - b| <= tol * (1 + |b|) for the losses (and logsumexps, floor 0); for gradients
 * (floor > 0) <= tol * max(their largest element, floor): each row's gradient is
 * pa * softmax - pa at the target, float32 differences of terms as large as pa
 * (floor: the largest pa), see also tests/lua/loss_small_classes_spec.lua */
static void assert_near(const char *what, int64_t n, int64_t c, size_t len, const float *a,
                        const float *b, double tol, double floor) {
    double scale = 0;
    for (size_t i = 0; i < len; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < len; i++) {
        const double lim = floor > 0 ? tol * fmax(scale, floor) : tol * (1 + fabs(b[i]));
        if (isnan(a[i]) && isnan(b[i])) continue; /* a mean over nothing, in both */
        if (!(fabs((double)a[i] - b[i]) <= lim))
            fail_msg("%s [%lld, %lld] element %zu: fast %.9g, reference %.9g", what,
                     (long long)n, (long long)c, i, a[i], b[i]);
    }
}

typedef struct {
    ml_loss_args a;
    ml_tensor *out, *aux, *gc;
} ce_call;

/* A cross_entropy call on x / t / w as ops/loss.c makes it: p.norm set as the
 * dispatcher sets it (ml_cpu_class_norm) for the reference; with a grad_cache when
 * gc, else with the logsumexps. */
static void ce_call_init(ce_call *k, ml_tensor *x, ml_tensor *t, ml_tensor *w, double ls,
                         ml_reduction red, bool gc) {
    memset(k, 0, sizeof *k);
    k->a.p.kind = ML_LOSS_CROSS_ENTROPY;
    k->a.p.reduction = red;
    k->a.p.cls = (ml_class_opts){.n = x->shape[0], .c = x->shape[1], .inner = 1,
                                 .ignore_index = 2, .label_smoothing = ls};
    k->a.input = x;
    k->a.target = t;
    k->a.weight = w;
    int64_t n = x->shape[0];
    k->out = red == ML_REDUCTION_NONE ? ml_tensor_empty(ML_F32, ML_CPU, 1, &n)
                                      : ml_tensor_empty(ML_F32, ML_CPU, 0, NULL);
    if (gc) k->gc = k->a.grad_cache = ml_tensor_empty(ML_F32, ML_CPU, 2, x->shape);
    else k->aux = k->a.aux = ml_tensor_empty(ML_F64, ML_CPU, 1, &n);
}

static void ce_call_free(ce_call *k) {
    ml_tensor_release(k->out);
    ml_tensor_release(k->aux);
    ml_tensor_release(k->gc);
}

static void fast_vs_reference(int64_t n, int64_t c, bool weighted, double ls, ml_reduction red) {
    const int64_t shape[2] = {n, c};
    ml_tensor *x = ml_tensor_empty(ML_F32, ML_CPU, 2, shape);
    ml_tensor *t = ml_tensor_empty(ML_I64, ML_CPU, 1, &n);
    ml_tensor *w = weighted ? ml_tensor_empty(ML_F32, ML_CPU, 1, &c) : NULL;
    float *xv = ml_data(x);
    int64_t *tv = ml_data(t);
    for (int64_t i = 0; i < n * c; i++) xv[i] = (float)(8 * uniform() - 4);
    for (int64_t i = 0; i < n; i++) tv[i] = i % 5 == 1 ? 2 : (int64_t)(uniform() * (double)c);
    if (w)
        for (int64_t k = 0; k < c; k++) ((float *)ml_data(w))[k] = (float)(0.5 + uniform());
    const ml_loss_ops *cpu = ml_cpu_backend()->loss;
    const size_t nout = red == ML_REDUCTION_NONE ? (size_t)n : 1, ng = (size_t)(n * c);
    for (int gc = 0; gc < 2; gc++) {
        ce_call f, r;
        ce_call_init(&f, x, t, w, ls, red, gc);
        ce_call_init(&r, x, t, w, ls, red, gc);
        assert_int_equal(cpu->forward(&f.a, f.out), 0);
        if (red == ML_REDUCTION_MEAN) assert_int_equal(ml_cpu_class_norm(&r.a), 0);
        assert_int_equal(ml_cpu_class_forward_f(&r.a, r.out), 0);
        assert_true(f.a.p.norm == r.a.p.norm || red != ML_REDUCTION_MEAN);
        assert_near("loss", n, c, nout, ml_data(f.out), ml_data(r.out), 1e-6, 0);
        /* the largest coefficient of a row's gradient (for a grad_out of 1) */
        const double pa = (weighted ? 1.5 : 1.0) / (red == ML_REDUCTION_MEAN ? f.a.p.norm : 1.0);
        if (gc) {
            assert_near("gradient in the forward pass", n, c, ng, ml_data(f.gc), ml_data(r.gc),
                        2e-6, pa);
        } else {
            /* the logsumexps, then the backward kernels from them */
            const double *fl = ml_data(f.aux), *rl = ml_data(r.aux);
            for (int64_t i = 0; i < n; i++)
                if (tv[i] != 2 && !(fabs(fl[i] - rl[i]) <= 1e-6 * (1 + fabs(rl[i]))))
                    fail_msg("logsumexp [%lld, %lld] row %lld: fast %.9g, reference %.9g",
                             (long long)n, (long long)c, (long long)i, fl[i], rl[i]);
            ml_tensor *g = red == ML_REDUCTION_NONE ? ml_tensor_empty(ML_F32, ML_CPU, 1, &n)
                                                    : ml_tensor_empty(ML_F32, ML_CPU, 0, NULL);
            for (size_t i = 0; i < nout; i++) ((float *)ml_data(g))[i] = (float)(uniform() - 0.3);
            ml_tensor *gf = ml_tensor_empty(ML_F32, ML_CPU, 2, shape);
            ml_tensor *gr = ml_tensor_empty(ML_F32, ML_CPU, 2, shape);
            r.a.p.norm = f.a.p.norm;
            assert_int_equal(cpu->backward(&f.a, g, gf, NULL), 0);
            assert_int_equal(ml_cpu_class_backward_f(&r.a, g, gr), 0);
            assert_near("backward", n, c, ng, ml_data(gf), ml_data(gr), 2e-6, pa);
            ml_tensor_release(g);
            ml_tensor_release(gf);
            ml_tensor_release(gr);
        }
        ce_call_free(&f);
        ce_call_free(&r);
    }
    ml_tensor_release(x);
    ml_tensor_release(t);
    ml_tensor_release(w);
}

/* every path: c <= 16 (16 rows transposed), 17..31 (gathers), 32+ (one pass per
 * row), label smoothing; row counts with and without a partial 16-row block, more
 * than one summed block, one row */
static void test_cross_entropy_fast_paths_match_reference(void **state) {
    (void)state;
    const int64_t cs[] = {1, 2, 3, 7, 10, 15, 16, 17, 24, 31, 32, 33, 100, 1000};
    const int64_t ns[] = {1, 15, 16, 17, 37, 300, 3000};
    const ml_reduction reds[] = {ML_REDUCTION_MEAN, ML_REDUCTION_SUM, ML_REDUCTION_NONE};
    for (size_t ic = 0; ic < sizeof cs / sizeof *cs; ic++)
        for (size_t in = 0; in < sizeof ns / sizeof *ns; in++) {
            if (cs[ic] * ns[in] > 400000) continue;
            for (int weighted = 0; weighted < 2; weighted++)
                for (int smooth = 0; smooth < 2; smooth++)
                    for (size_t ir = 0; ir < 3; ir++)
                        fast_vs_reference(ns[in], cs[ic], weighted, smooth ? 0.2 : 0, reds[ir]);
        }
}

/* the CPU's own names for the formulas compile in C, and give torch's edge values */
static void test_formulas_edge_values(void **state) {
    (void)state;
    assert_true(ml_smooth_l1_grad_f(1.0f, 1.0f, 0.0f) == -1.0f); /* a tie at beta = 0 */
    assert_true(ml_l1_grad_d(NAN, 0.0) == 0.0);
    assert_true(ml_bce_loss_d(0.0, 1.0) == 100.0);                /* log clamped at -100 */
    assert_true(ml_kl_div_loss_f(3.0f, 0.0f) == 0.0f);            /* xlogy(0, 0) */
    assert_true(!ml_bce_input_ok_f(NAN) && ml_bce_input_ok_f(1.0f));
    assert_true(ml_gaussian_nll_var_d(1e-9, 1e-6) == 1e-6);
    assert_true(ml_poisson_nll_loss_d(0.0, 2.0, true, 1e-8) == 1.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mse_value_and_grad),
        cmocka_unit_test(test_cross_entropy_weighted_ignore),
        cmocka_unit_test(test_bad_class_id_names_it),
        cmocka_unit_test(test_gaussian_var_grad_reduces),
        cmocka_unit_test(test_cross_entropy_fast_paths_match_reference),
        cmocka_unit_test(test_formulas_edge_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
