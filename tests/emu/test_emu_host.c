/* The CUDA backend as a host program uses it, on the emulated GPU (ctest runs this
 * with MOONLIGHT_CUDA_PLUGIN naming libmoonlight_cuda_emu.so, tests/emu.cmake):
 *  - matmuls from two threads while one of them switches the float32 precision:
 *    no cuBLAS handle is reconfigured while a gemm runs on it (the emulated
 *    cuBLAS aborts the process when one is). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend.h"
#include "cuda_api.h"
#include "ops.h"

struct matmul_job {
    int iterations;
    int switch_precision; /* this thread flips the float32 precision each time */
    int failures;
};

static void *matmul_loop(void *arg) {
    struct matmul_job *job = arg;
    int64_t shape[2] = {96, 96};
    ml_tensor *a = ml_randn(ML_F32, ML_CUDA, 2, shape, 0, 1);
    ml_tensor *b = ml_randn(ML_F32, ML_CUDA, 2, shape, 0, 1);
    if (!a || !b) job->failures++;
    for (int i = 0; i < job->iterations && a && b; i++) {
        if (job->switch_precision)
            ml_set_float32_matmul_precision(i % 2 ? ML_MATMUL_HIGH : ML_MATMUL_HIGHEST);
        ml_tensor *c = ml_matmul(a, b);
        if (!c) job->failures++;
        ml_tensor_release(c);
    }
    ml_tensor_release(a);
    ml_tensor_release(b);
    return NULL;
}

static void test_matmuls_from_two_threads_with_precisions(void **state) {
    (void)state;
    assert_non_null(ml_cuda_backend());
    struct matmul_job jobs[2] = {{3000, 1, 0}, {3000, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, matmul_loop, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    ml_set_float32_matmul_precision(ML_MATMUL_HIGHEST);
    assert_int_equal(jobs[0].failures + jobs[1].failures, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmuls_from_two_threads_with_precisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
