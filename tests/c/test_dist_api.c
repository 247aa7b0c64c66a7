/* moonlight.h's distributed functions in a process no launcher started: a world
 * of one whose collectives leave tensors as they are; argument errors. (Across
 * processes: tests/dist/run.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "moonlight.h"

static void test_world_of_one(void **state) {
    (void)state;
    assert_int_equal(ml_dist_rank(), 0);
    assert_int_equal(ml_dist_world_size(), 1);
    assert_int_equal(ml_dist_local_rank(), 0);
    assert_int_equal(ml_dist_local_world_size(), 1);
    assert_int_equal(ml_dist_is_initialized(), 0);
    float v[3] = {1, 2, 3};
    int64_t shape[1] = {3};
    ml_tensor *t = ml_tensor_wrap(v, ML_FLOAT32, 1, shape, NULL, NULL);
    assert_int_equal(ml_dist_all_reduce(t, ML_REDUCE_MEAN), ML_OK);
    assert_true(v[0] == 1 && v[2] == 3);
    assert_int_equal(ml_dist_broadcast(t, 0), ML_OK);
    ml_tensor *all = NULL;
    assert_int_equal(ml_dist_all_gather(t, &all), ML_OK);
    assert_int_equal(ml_tensor_ndim(all), 2);
    assert_int_equal(ml_tensor_shape(all)[0], 1);
    float got[3];
    assert_int_equal(ml_tensor_read(all, got, sizeof got), ML_OK);
    assert_true(got[1] == 2);
    assert_int_equal(ml_dist_barrier(), ML_OK);
    ml_tensor_release(all);
    ml_tensor_release(t);
}

static void test_argument_errors(void **state) {
    (void)state;
    float v = 1;
    ml_tensor *t = ml_tensor_wrap(&v, ML_FLOAT32, 0, NULL, NULL, NULL);
    assert_int_equal(ml_dist_all_reduce(NULL, ML_REDUCE_SUM), ML_ERR_ARG);
    assert_int_equal(ml_dist_all_reduce(t, (ml_collective_op)9), ML_ERR_ARG);
    assert_non_null(strstr(ml_last_error(NULL), "unknown op 9"));
    assert_int_equal(ml_dist_broadcast(t, 1), ML_ERR_ARG);
    assert_non_null(strstr(ml_last_error(NULL), "src must be a rank between 0 and 0"));
    ml_tensor *out;
    assert_int_equal(ml_dist_all_gather(t, NULL), ML_ERR_ARG);
    (void)out;
    ml_tensor_release(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world_of_one),
        cmocka_unit_test(test_argument_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
