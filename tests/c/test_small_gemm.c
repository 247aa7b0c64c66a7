/* The small float32 gemm (src/cpu/small_gemm.c), both its AVX-512 and its plain-C
 * path, against a naive double-accumulated loop: m, n, k from 1 to 70 with the
 * vector and tile tails, all four transposes, padded leading dimensions, bias,
 * beta = 0 (C never read) and beta != 0 with alpha != 1; then ml_linear and
 * ml_matmul at small shapes (the path that reaches the kernel) against the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/small_gemm.h"
#include "error.h"
#include "ops.h"

typedef bool (*gemm_fn)(bool, bool, int64_t, int64_t, int64_t, float, const float *, int64_t,
                        const float *, int64_t, float, float *, int64_t, const float *);

static bool generic(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                    float *c, int64_t ldc, const float *bias) {
    ml_small_sgemm_generic(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
    return true;
}

static uint32_t rng = 12345u;
static float uniform(void) { /* in [-1, 1) */
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / (float)(1u << 23) - 1.0f;
}

#define SENTINEL 1234.5f

/* one product by fn against the naive loop; the padding of C must stay untouched */
static void check_one(gemm_fn fn, bool ta, bool tb, int64_t m, int64_t n, int64_t k, int pad,
                      int mode) {
    const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    const int64_t arows = ta ? k : m, brows = tb ? n : k;
    float *a = malloc(sizeof(float) * (size_t)(arows * lda));
    float *b = malloc(sizeof(float) * (size_t)(brows * ldb));
    float *c = malloc(sizeof(float) * (size_t)(m * ldc));
    float *c0 = malloc(sizeof(float) * (size_t)(m * ldc));
    float *bias = malloc(sizeof(float) * (size_t)n);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(c0);
    assert_non_null(bias);
    for (int64_t i = 0; i < arows * lda; i++) a[i] = uniform();
    for (int64_t i = 0; i < brows * ldb; i++) b[i] = uniform();
    for (int64_t j = 0; j < n; j++) bias[j] = uniform();
    for (int64_t i = 0; i < m * ldc; i++) c0[i] = (i % ldc) < n ? uniform() : SENTINEL;
    /* mode 0: beta 0 over NaNs (C is never read); 1: bias; 2: alpha 1.5, beta 0.5 */
    for (int64_t i = 0; i < m * ldc; i++) c[i] = mode == 0 && (i % ldc) < n ? NAN : c0[i];
    const float alpha = mode == 2 ? 1.5f : 1.0f, beta = mode == 2 ? 0.5f : 0.0f;
    if (!fn(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, mode == 1 ? bias : NULL)) {
        free(a), free(b), free(c), free(c0), free(bias);
        skip(); /* no AVX-512 here: only the plain-C path can be checked */
    }
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            const float got = c[i * ldc + j];
            if (j >= n) {
                if (got != SENTINEL) fail_msg("padding of C written at (%lld, %lld)", (long long)i, (long long)j);
                continue;
            }
            double s = 0.0, sabs = 0.0;
            for (int64_t p = 0; p < k; p++) {
                const double x = ta ? a[p * lda + i] : a[i * lda + p];
                const double y = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += x * y;
                sabs += fabs(x * y);
            }
            double want = alpha * s, scale = fabs(alpha) * sabs;
            if (mode == 1) want += bias[j], scale += fabs(bias[j]);
            if (mode == 2) want += beta * c0[i * ldc + j], scale += fabs(beta * c0[i * ldc + j]);
            const double tol = 4.0 * (double)(k + 2) * 1.1920929e-7 * scale + 1e-30;
            if (!(fabs(got - want) <= tol))
                fail_msg("m %lld n %lld k %lld ta %d tb %d pad %d mode %d: C[%lld, %lld] = %.9g, want %.9g",
                         (long long)m, (long long)n, (long long)k, ta, tb, pad, mode, (long long)i,
                         (long long)j, got, want);
        }
    }
    free(a);
    free(b);
    free(c);
    free(c0);
    free(bias);
}

static const int64_t DIMS[] = {1, 2, 3, 7, 8, 9, 12, 13, 15, 16, 17, 25, 31, 32, 33, 48, 49, 63, 64, 65, 70};
static const int64_t KS[] = {1, 2, 5, 10, 16, 17, 32, 33, 64, 70};
#define COUNT(x) (sizeof(x) / sizeof((x)[0]))

static void sweep(gemm_fn fn) {
    int turn = 0;
    for (size_t mi = 0; mi < COUNT(DIMS); mi++) {
        for (size_t ni = 0; ni < COUNT(DIMS); ni++) {
            for (int layout = 0; layout < 4; layout++) {
                /* each (m, n, layout) with a k, a padding and a mode in turn */
                const int64_t k = KS[turn % COUNT(KS)];
                const int pad = (turn / 3) % 3 == 0 ? 0 : 1 + turn % 5;
                check_one(fn, layout & 1, layout & 2, DIMS[mi], DIMS[ni], k, pad, turn % 3);
                turn++;
            }
        }
    }
    /* any k: B given as [n, k] goes by blocks of ML_SMALL_GEMM_KBLOCK */
    assert_true(ml_small_sgemm_fits(120, 10, 100000));
    assert_false(ml_small_sgemm_fits(0, 2, 2));
    /* where cpu_gemm takes it: the MLP's two small layers, not n = 8 or m = 16; a
     * thread's share of the first layer's forward and weight gradient, not the
     * small weight gradients (below 1M multiply-adds) */
    assert_true(ml_small_sgemm_pays(true, 128, 10, 32));
    assert_true(ml_small_sgemm_pays(true, 128, 32, 64));
    assert_false(ml_small_sgemm_pays(true, 128, 8, 32));
    assert_false(ml_small_sgemm_pays(true, 16, 32, 64));
    assert_true(ml_small_sgemm_pays(true, 64, 64, 784));
    assert_true(ml_small_sgemm_pays(false, 64, 400, 128));
    assert_false(ml_small_sgemm_pays(false, 32, 64, 128));
    assert_false(ml_small_sgemm_pays(true, 4096, 4096, 4096));
    for (int layout = 0; layout < 4; layout++) {
        check_one(fn, layout & 1, layout & 2, 120, 10, ML_SMALL_GEMM_KBLOCK, 3, layout % 3);
        check_one(fn, layout & 1, layout & 2, 5, 250, ML_SMALL_GEMM_KBLOCK + 1, 0, 1);
        check_one(fn, layout & 1, layout & 2, 128, 33, 64, 2, 1);
        /* sums over several blocks of k, a partial last one, each mode */
        check_one(fn, layout & 1, layout & 2, 37, 70, 3 * ML_SMALL_GEMM_KBLOCK + 17, 1, layout % 3);
        check_one(fn, layout & 1, layout & 2, 64, 64, 784, 0, (layout + 1) % 3);
    }
}

static void test_generic_against_naive(void **state) {
    (void)state;
    sweep(generic);
}

static void test_avx512_against_naive(void **state) {
    (void)state;
    sweep(ml_small_sgemm_avx512);
}

static ml_tensor *randn2(int64_t r, int64_t c) {
    ml_tensor *t = ml_tensor_empty(ML_F32, ML_CPU, 2, (int64_t[]){r, c});
    assert_non_null(t);
    float *p = ml_data(t);
    for (int64_t i = 0; i < r * c; i++) p[i] = uniform();
    return t;
}

/* ml_linear (nt, bias fused) and ml_matmul (nn, and tn through a transposed view)
 * at the MLP's small shapes */
static void test_ops_reach_kernel(void **state) {
    (void)state;
    /* and the first layer's, split across the threads (a slice each), and an odd one */
    const int64_t shapes[][3] = {{128, 32, 10}, {128, 64, 32}, {7, 5, 3}, {1, 1, 1}, {128, 784, 64}, {100, 300, 50}};
    for (size_t s = 0; s < COUNT(shapes); s++) {
        const int64_t rows = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        ml_tensor *x = randn2(rows, in), *w = randn2(out, in), *g = randn2(rows, out);
        ml_tensor *b = ml_tensor_empty(ML_F32, ML_CPU, 1, (int64_t[]){out});
        for (int64_t j = 0; j < out; j++) ((float *)ml_data(b))[j] = uniform();
        ml_tensor *y = ml_linear(x, w, b), *gx = ml_matmul(g, w);
        ml_tensor *gt = ml_transpose(g, 0, 1);
        ml_tensor *gw = ml_matmul(gt, x);
        assert_non_null(y);
        assert_non_null(gx);
        assert_non_null(gw);
        const float *X = ml_data(x), *W = ml_data(w), *G = ml_data(g), *B = ml_data(b);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < out; j++) {
                double want = B[j];
                for (int64_t p = 0; p < in; p++) want += (double)X[i * in + p] * W[j * in + p];
                assert_float_equal(((float *)ml_data(y))[i * out + j], want, 1e-4);
            }
        for (int64_t i = 0; i < rows; i++)
            for (int64_t p = 0; p < in; p++) {
                double want = 0.0;
                for (int64_t j = 0; j < out; j++) want += (double)G[i * out + j] * W[j * in + p];
                assert_float_equal(((float *)ml_data(gx))[i * in + p], want, 1e-4);
            }
        for (int64_t j = 0; j < out; j++)
            for (int64_t p = 0; p < in; p++) {
                double want = 0.0;
                for (int64_t i = 0; i < rows; i++) want += (double)G[i * out + j] * X[i * in + p];
                assert_float_equal(((float *)ml_data(gw))[j * in + p], want, 1e-4);
            }
        ml_tensor *rel[] = {x, w, g, b, y, gx, gt, gw};
        for (size_t i = 0; i < COUNT(rel); i++) ml_tensor_release(rel[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generic_against_naive),
        cmocka_unit_test(test_avx512_against_naive),
        cmocka_unit_test(test_ops_reach_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
