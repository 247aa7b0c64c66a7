/* The loss family from C: ml_loss's values, the mean's divisor with weights and
 * ignore_index, the backward kernel through ml_backward, errors set by kernels. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "autograd.h"
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mse_value_and_grad),
        cmocka_unit_test(test_cross_entropy_weighted_ignore),
        cmocka_unit_test(test_bad_class_id_names_it),
        cmocka_unit_test(test_gaussian_var_grad_reduces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
