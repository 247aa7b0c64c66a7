/* The CUDA backend as a host program uses it, on the emulated GPU (ctest runs this
 * with MOONLIGHT_CUDA_PLUGIN naming libmoonlight_cuda_emu.so, tests/emu.cmake):
 *  - a tensor moved to the device from pinned host memory that the host reuses
 *    at once keeps the values it had when it was moved (the emulated copy engine
 *    reads pinned memory late, as a GPU's does);
 *  - matmuls from two threads while one of them switches the float32 precision:
 *    no cuBLAS handle is reconfigured while a gemm runs on it (the emulated
 *    cuBLAS aborts the process when one is). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "backend.h"
#include "cuda_api.h"
#include "ops.h"

/* The emulated runtime's pinned-memory calls, exported by the plugin. */
typedef int (*malloc_host_fn)(void **ptr, size_t size);
typedef int (*free_host_fn)(void *ptr);

static void *plugin(void) {
    assert_non_null(ml_cuda_backend()); /* loads it */
    void *h = dlopen(getenv("MOONLIGHT_CUDA_PLUGIN"), RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(h);
    return h;
}

/* The host keeps its buffer: nothing to do when the tensor goes. */
static void keep(void *data, void *ctx) {
    (void)data;
    (void)ctx;
}

static void test_from_pinned_memory_reused_at_once(void **state) {
    (void)state;
    void *h = plugin();
    malloc_host_fn malloc_host = (malloc_host_fn)dlsym(h, "cudaMallocHost");
    free_host_fn free_host = (free_host_fn)dlsym(h, "cudaFreeHost");
    assert_non_null(malloc_host);
    assert_non_null(free_host);
    enum { N = 1000 };
    float *pinned = NULL;
    assert_int_equal(malloc_host((void **)&pinned, N * sizeof(float)), 0);
    for (int i = 0; i < N; i++) pinned[i] = (float)i;
    int64_t shape[1] = {N};
    ml_tensor *host = ml_tensor_from_blob(pinned, ML_F32, ML_CPU, 1, shape, keep, NULL);
    ml_tensor *dev = ml_to_device(host, ML_CUDA);
    assert_non_null(dev);
    ml_tensor_release(host);
    for (int i = 0; i < N; i++) pinned[i] = -1.0f; /* the next batch goes into the same buffer */
    ml_tensor *back = ml_to_device(dev, ML_CPU);
    assert_non_null(back);
    const float *b = ml_data(back);
    for (int i = 0; i < N; i++) assert_true(b[i] == (float)i);
    ml_tensor_release(back);
    ml_tensor_release(dev);
    assert_int_equal(free_host(pinned), 0);
    dlclose(h);
}

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
        cmocka_unit_test(test_from_pinned_memory_reused_at_once),
        cmocka_unit_test(test_matmuls_from_two_threads_with_precisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
