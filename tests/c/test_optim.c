/* The optim family: fused SGD and Adam updates, checked against values worked
 * out by hand, and their argument checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "ops.h"

static ml_tensor *vec2(float a, float b) {
    int64_t shape[1] = {2};
    ml_tensor *t = ml_tensor_empty(ML_F32, ML_CPU, 1, shape);
    float *p = ml_data(t);
    p[0] = a;
    p[1] = b;
    return t;
}

static void test_sgd_momentum_two_steps(void **state) {
    (void)state;
    ml_tensor *p = vec2(1, 1), *g = vec2(1, -2), *buf = ml_zeros_like(p);
    ml_sgd_args a = {.lr = 0.1, .momentum = 0.9, .first_step = true};
    assert_int_equal(ml_sgd_step(p, g, buf, &a), 0);
    const float *v = ml_data(p);
    assert_float_equal(v[0], 0.9, 1e-6);   /* buf = g; p -= lr * g */
    assert_float_equal(v[1], 1.2, 1e-6);
    a.first_step = false;
    assert_int_equal(ml_sgd_step(p, g, buf, &a), 0);
    assert_float_equal(v[0], 0.71, 1e-6);  /* buf = 0.9 g + g = 1.9 g */
    assert_float_equal(v[1], 1.58, 1e-6);
    assert_float_equal(((const float *)ml_data(buf))[1], -3.8, 1e-6);
    ml_tensor_release(p);
    ml_tensor_release(g);
    ml_tensor_release(buf);
}

static void test_adam_first_step_and_adamw_decay(void **state) {
    (void)state;
    ml_tensor *p = vec2(1, -1), *g = vec2(0.5f, 0.25f);
    ml_tensor *m = ml_zeros_like(p), *v = ml_zeros_like(p);
    ml_adam_args a = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .step = 1};
    assert_int_equal(ml_adam_step(p, g, m, v, NULL, &a), 0);
    /* bias-corrected moments are g and g^2: the first step moves by lr */
    const float *pv = ml_data(p);
    assert_float_equal(pv[0], 0.9, 1e-6);
    assert_float_equal(pv[1], -1.1, 1e-6);
    assert_float_equal(((const float *)ml_data(m))[0], 0.05, 1e-7);
    assert_float_equal(((const float *)ml_data(v))[0], 0.00025, 1e-9);
    /* AdamW with a zero gradient only decays: p *= 1 - lr * wd (moments are 0) */
    ml_tensor *z = ml_zeros_like(p), *m2 = ml_zeros_like(p), *v2 = ml_zeros_like(p);
    ml_adam_args w = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .step = 1,
                      .weight_decay = 0.5, .decoupled = true};
    assert_int_equal(ml_adam_step(p, z, m2, v2, NULL, &w), 0);
    assert_float_equal(pv[0], 0.9 * 0.95, 1e-6);
    ml_tensor_release(p);
    ml_tensor_release(g);
    ml_tensor_release(m);
    ml_tensor_release(v);
    ml_tensor_release(z);
    ml_tensor_release(m2);
    ml_tensor_release(v2);
}

static void test_checks_name_the_shapes(void **state) {
    (void)state;
    int64_t s3[1] = {3};
    ml_tensor *p = vec2(1, 1), *g = ml_zeros(ML_F32, ML_CPU, 1, s3), *m = ml_zeros_like(p);
    ml_sgd_args a = {.lr = 0.1};
    assert_int_equal(ml_sgd_step(p, g, NULL, &a), -1);
    assert_non_null(strstr(ml_error(), "sgd_step: gradient has shape [3], the parameter [2]"));
    ml_adam_args ad = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .step = 1, .amsgrad = true};
    assert_int_equal(ml_adam_step(p, p, m, m, NULL, &ad), -1);
    assert_non_null(strstr(ml_error(), "amsgrad needs the max_exp_avg_sq state"));
    ad.amsgrad = false;
    ad.step = 0;
    assert_int_equal(ml_adam_step(p, p, m, m, NULL, &ad), -1);
    assert_non_null(strstr(ml_error(), "step must be >= 1"));
    ml_tensor_release(p);
    ml_tensor_release(g);
    ml_tensor_release(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_momentum_two_steps),
        cmocka_unit_test(test_adam_first_step_and_adamw_decay),
        cmocka_unit_test(test_checks_name_the_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
