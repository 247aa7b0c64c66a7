/* The tensor core: shapes, strides, views, broadcasting, the generator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "ops.h"

static void test_empty_is_contiguous(void **state) {
    (void)state;
    int64_t shape[3] = {2, 3, 4};
    ml_tensor *t = ml_tensor_empty(ML_F32, ML_CPU, 3, shape);
    assert_non_null(t);
    assert_int_equal(ml_numel(t), 24);
    assert_int_equal(t->strides[0], 12);
    assert_int_equal(t->strides[1], 4);
    assert_int_equal(t->strides[2], 1);
    assert_true(ml_is_contiguous(t));
    ml_tensor_release(t);
}

static void test_transpose_is_a_view(void **state) {
    (void)state;
    int64_t shape[2] = {2, 3};
    ml_tensor *t = ml_arange(0, 6, 1, ML_F32, ML_CPU);
    ml_tensor *m = ml_view(t, 2, shape);
    ml_tensor *tt = ml_transpose(m, 0, 1);
    assert_ptr_equal(tt->storage, t->storage);
    assert_int_equal(tt->shape[0], 3);
    assert_int_equal(tt->strides[0], 1);
    assert_int_equal(tt->strides[1], 3);
    assert_false(ml_is_contiguous(tt));
    ml_tensor *c = ml_contiguous(tt);
    const float *p = ml_data(c);
    float want[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++) assert_float_equal(p[i], want[i], 0);
    ml_tensor_release(c);
    ml_tensor_release(tt);
    ml_tensor_release(m);
    ml_tensor_release(t);
}

static void test_broadcast_add(void **state) {
    (void)state;
    int64_t sa[2] = {2, 1}, sb[1] = {3};
    ml_tensor *a = ml_full(ML_F32, ML_CPU, 2, sa, 1.0);
    ml_tensor *b = ml_arange(0, 3, 1, ML_F32, ML_CPU);
    ml_tensor *c = ml_add(a, b);
    assert_non_null(c);
    assert_int_equal(c->ndim, 2);
    assert_int_equal(c->shape[0], 2);
    assert_int_equal(c->shape[1], 3);
    const float *p = ml_data(c);
    for (int i = 0; i < 6; i++) assert_float_equal(p[i], 1.0f + (float)(i % 3), 0);
    (void)sb;
    ml_tensor_release(a);
    ml_tensor_release(b);
    ml_tensor_release(c);
}

static void test_broadcast_mismatch_names_shapes(void **state) {
    (void)state;
    int64_t sa[2] = {2, 3}, sb[1] = {4};
    ml_tensor *a = ml_zeros(ML_F32, ML_CPU, 2, sa), *b = ml_zeros(ML_F32, ML_CPU, 1, sb);
    assert_null(ml_add(a, b));
    assert_string_equal(ml_error(), "add: shapes [2, 3] and [4] cannot be broadcast (dim 2: 3 vs 4)");
    ml_tensor_release(a);
    ml_tensor_release(b);
}

static void test_seed_is_repeatable(void **state) {
    (void)state;
    int64_t s[1] = {5};
    ml_manual_seed(42);
    ml_tensor *a = ml_rand(ML_F32, ML_CPU, 1, s, 0, 1);
    ml_manual_seed(42);
    ml_tensor *b = ml_rand(ML_F32, ML_CPU, 1, s, 0, 1);
    for (int i = 0; i < 5; i++) {
        float x = ((float *)ml_data(a))[i];
        assert_float_equal(x, ((float *)ml_data(b))[i], 0);
        assert_true(x >= 0 && x < 1);
    }
    ml_tensor_release(a);
    ml_tensor_release(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_contiguous),
        cmocka_unit_test(test_transpose_is_a_view),
        cmocka_unit_test(test_broadcast_add),
        cmocka_unit_test(test_broadcast_mismatch_names_shapes),
        cmocka_unit_test(test_seed_is_repeatable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
