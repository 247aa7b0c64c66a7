/* The emulated GPU's own checks (emu/): each rule a kernel can break is reported
 * (a barrier part of a block never reaches, a full-mask shuffle a lane never
 * joins, a shuffle from a lane outside the mask, launches beyond the hardware's
 * limits), the warp operations exchange the values CUDA defines, reverse
 * scheduling exposes a missing barrier, pinned copies run late as a DMA's, and
 * cuBLAS refuses what cuBLAS refuses.
 *
 * CUDA source, rewritten by emu/launch_rewrite.lua and compiled by g++ against
 * emu/include like the kernels (tests/emu.cmake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern "C" {
#include <cmocka.h>
}
#include <cublas_v2.h>
#include <cuda_runtime.h>

/* --- kernels --- */

/* out[t] = what thread t - 1 wrote to shared memory (thread 0: its own). */
__global__ void k_neighbour(int *out, bool barrier) {
    __shared__ int sh[256];
    int t = threadIdx.x;
    sh[t] = t * 10;
    if (barrier) __syncthreads();
    out[t] = sh[t > 0 ? t - 1 : 0];
}

/* Thread `quitter` returns before the barrier the others wait at. */
__global__ void k_partial_barrier(int *out, int quitter) {
    if ((int)threadIdx.x == quitter) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

/* Lane `quitter` returns before a full-mask shuffle. */
__global__ void k_partial_shuffle(int *out, int quitter) {
    if ((int)threadIdx.x == quitter) return;
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 1);
}

/* A half-warp mask whose shuffle reads lanes beyond it. */
__global__ void k_shuffle_outside_mask(int *out) {
    if (threadIdx.x < 16) out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, (int)threadIdx.x, 8);
}

/* Each warp operation, in a block of 64 (two warps). */
__global__ void k_warp_ops(int *out) {
    int t = threadIdx.x, v = t * 3 + 1;
    const unsigned all = 0xffffffffu;
    out[0 * 64 + t] = __shfl_down_sync(all, v, 1);
    out[1 * 64 + t] = __shfl_up_sync(all, v, 2);
    out[2 * 64 + t] = __shfl_xor_sync(all, v, 16);
    out[3 * 64 + t] = __shfl_sync(all, v, 5);
    out[4 * 64 + t] = __shfl_down_sync(all, v, 3, 8);
    out[5 * 64 + t] = __shfl_xor_sync(all, v, 4, 4);
    out[6 * 64 + t] = (int)__ballot_sync(all, t % 3 == 0);
    out[7 * 64 + t] = __all_sync(all, t < 48) * 2 + __any_sync(all, t == 40);
    double d = __shfl_sync(all, t * 0.5, 31);
    out[8 * 64 + t] = (int)(d * 2);
    out[9 * 64 + t] = __syncthreads_count(t % 4 == 0);
}

__global__ void k_atomics(unsigned long long *counter, float *sum) {
    atomicAdd(counter, 1ull);
    atomicAdd(sum, 0.5f);
}

__global__ void k_dynamic_shared(float *out) {
    extern __shared__ float dyn[];
    dyn[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = dyn[blockDim.x - 1 - threadIdx.x] + (float)blockIdx.x;
}

__global__ void k_big_static(float *out) {
    __shared__ float big[10240]; /* 40 KiB */
    big[threadIdx.x] = 1.0f;
    out[threadIdx.x] = big[threadIdx.x];
}

__global__ void k_nothing(int *out) {
    if (out) out[0] = 1;
}

/* --- helpers --- */

static int *dev_ints(size_t n) {
    int *p = NULL;
    assert_int_equal(cudaMalloc(&p, n * sizeof(int)), cudaSuccess);
    assert_int_equal(cudaMemset(p, 0, n * sizeof(int)), cudaSuccess);
    return p;
}

/* True when every thread of k_neighbour read its neighbour's value. */
static bool neighbour_ok(bool barrier) {
    int *d = dev_ints(256), h[256];
    k_neighbour<<<1, 256>>>(d, barrier);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    assert_int_equal(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(d);
    for (int t = 0; t < 256; t++)
        if (h[t] != (t > 0 ? t - 1 : 0) * 10) return false;
    return true;
}

/* --- tests --- */

static void test_barrier_and_missing_barrier(void **state) {
    (void)state;
    ml_emu::set_reverse_order(false);
    assert_true(neighbour_ok(true));
    assert_true(neighbour_ok(false)); /* thread t - 1 ran first: right by luck */
    ml_emu::set_reverse_order(true);
    assert_true(neighbour_ok(true));
    assert_false(neighbour_ok(false)); /* reversed, the missing barrier shows */
    ml_emu::set_reverse_order(false);
}

static void test_partial_barrier_is_an_error(void **state) {
    (void)state;
    int *d = dev_ints(256);
    k_partial_barrier<<<2, 256>>>(d, 17);
    assert_int_equal(cudaGetLastError(), cudaErrorLaunchFailure);
    k_partial_barrier<<<2, 256>>>(d, -1); /* the device works on */
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    cudaFree(d);
}

static void test_partial_full_mask_shuffle_is_an_error(void **state) {
    (void)state;
    int *d = dev_ints(64);
    k_partial_shuffle<<<1, 64>>>(d, 37);
    assert_int_equal(cudaGetLastError(), cudaErrorLaunchFailure);
    k_shuffle_outside_mask<<<1, 32>>>(d);
    assert_int_equal(cudaGetLastError(), cudaErrorLaunchFailure);
    k_partial_shuffle<<<1, 64>>>(d, -1);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    cudaFree(d);
}

static void test_launches_beyond_the_limits_fail(void **state) {
    (void)state;
    int *d = dev_ints(1);
    float *f = NULL;
    assert_int_equal(cudaMalloc(&f, 1024 * sizeof(float)), cudaSuccess);
    k_nothing<<<1, 1025>>>(d);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    k_nothing<<<1, dim3(1, 1, 65)>>>(d);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    k_nothing<<<dim3(1, 65536), 32>>>(d);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    k_nothing<<<dim3(1, 1, 65536), 32>>>(d);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    k_nothing<<<0, 32>>>(d);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    k_dynamic_shared<<<1, 32, (48 << 10) + 4>>>(f);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    k_big_static<<<1, 32, 10 << 10>>>(f); /* 40 KiB static + 10 KiB dynamic */
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    k_big_static<<<1, 32>>>(f);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    /* the opt-in */
    assert_int_equal(cudaFuncSetAttribute(k_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          64 << 10), cudaSuccess);
    k_dynamic_shared<<<1, 32, 64 << 10>>>(f);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    k_nothing<<<dim3(1, 65535), 1>>>(NULL);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    cudaFree(d);
    cudaFree(f);
}

static void test_warp_operations_exchange_values(void **state) {
    (void)state;
    for (int rev = 0; rev < 2; rev++) {
        ml_emu::set_reverse_order(rev);
        int *d = dev_ints(10 * 64), h[10 * 64];
        k_warp_ops<<<1, 64>>>(d);
        assert_int_equal(cudaGetLastError(), cudaSuccess);
        cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
        cudaFree(d);
        for (int t = 0; t < 64; t++) {
            int l = t % 32, w = t - l;
            auto v = [&](int lane) { return (w + lane) * 3 + 1; };
            assert_int_equal(h[0 * 64 + t], v(l + 1 < 32 ? l + 1 : l));
            assert_int_equal(h[1 * 64 + t], v(l >= 2 ? l - 2 : l));
            assert_int_equal(h[2 * 64 + t], v(l ^ 16));
            assert_int_equal(h[3 * 64 + t], v(5));
            assert_int_equal(h[4 * 64 + t], v(l % 8 + 3 < 8 ? l + 3 : l));
            assert_int_equal(h[5 * 64 + t], v((l ^ 4) < (l / 4 + 1) * 4 ? l ^ 4 : l));
            assert_int_equal((unsigned)h[6 * 64 + t], w == 0 ? 0x49249249u : 0x92492492u);
            assert_int_equal(h[7 * 64 + t], w == 0 ? 2 : 1);
            assert_int_equal(h[8 * 64 + t], w + 31);
            assert_int_equal(h[9 * 64 + t], 16);
        }
    }
    ml_emu::set_reverse_order(false);
}

static void test_atomics_and_dynamic_shared_memory(void **state) {
    (void)state;
    unsigned long long *c = NULL;
    float *s = NULL, *o = NULL, h[3 * 128];
    cudaMalloc(&c, sizeof *c);
    cudaMalloc(&s, sizeof *s);
    cudaMalloc(&o, sizeof h);
    cudaMemset(c, 0, sizeof *c);
    cudaMemset(s, 0, sizeof *s);
    k_atomics<<<7, 96>>>(c, s);
    unsigned long long hc = 0;
    float hs = 0;
    cudaMemcpy(&hc, c, sizeof hc, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hs, s, sizeof hs, cudaMemcpyDeviceToHost);
    assert_int_equal(hc, 7 * 96);
    assert_true(hs == 7 * 96 * 0.5f);
    k_dynamic_shared<<<3, 128, 128 * sizeof(float)>>>(o);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    cudaMemcpy(h, o, sizeof h, cudaMemcpyDeviceToHost);
    for (int i = 0; i < 3 * 128; i++) assert_true(h[i] == (float)(127 - i % 128 + i / 128));
    cudaFree(c);
    cudaFree(s);
    cudaFree(o);
}

static void test_pinned_copies_run_late(void **state) {
    (void)state;
    int *pinned = NULL, *d = dev_ints(4), back[4];
    int page[4] = {1, 2, 3, 4};
    assert_int_equal(cudaMallocHost(&pinned, sizeof page), cudaSuccess);
    cudaPointerAttributes a;
    assert_int_equal(cudaPointerGetAttributes(&a, pinned + 1), cudaSuccess);
    assert_int_equal(a.type, cudaMemoryTypeHost);
    assert_int_equal(cudaPointerGetAttributes(&a, d), cudaSuccess);
    assert_int_equal(a.type, cudaMemoryTypeDevice);
    assert_int_equal(cudaPointerGetAttributes(&a, page), cudaSuccess);
    assert_int_equal(a.type, cudaMemoryTypeUnregistered);
    memcpy(pinned, page, sizeof page);
    cudaMemcpyAsync(d, pinned, sizeof page, cudaMemcpyHostToDevice, 0);
    pinned[0] = 99; /* before the copy engine ran: the copy sees it */
    cudaStreamSynchronize(0);
    pinned[1] = 77; /* after: it does not */
    cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost);
    assert_int_equal(back[0], 99);
    assert_int_equal(back[1], 2);
    /* pageable memory is staged at once */
    cudaMemcpyAsync(d, page, sizeof page, cudaMemcpyHostToDevice, 0);
    page[0] = 55;
    cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost);
    assert_int_equal(back[0], 1);
    cudaFreeHost(pinned);
    cudaFree(d);
}

static void test_cublas_checks_and_products(void **state) {
    (void)state;
    cublasHandle_t h;
    assert_int_equal(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    /* column-major A 2x3, B 3x2 */
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 1, 0, 1, 0}, C[4] = {9, 9, 9, 9};
    float one = 1, zero = 0;
    assert_int_equal(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, A, 1, B, 3, &zero, C, 2),
                     CUBLAS_STATUS_INVALID_VALUE); /* lda < m */
    assert_int_equal(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, A, 2, B, 3, &zero, C, 1),
                     CUBLAS_STATUS_INVALID_VALUE); /* ldc < m */
    assert_int_equal(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, 3, &one, A, 2, B, 3, &zero, C, 2),
                     CUBLAS_STATUS_INVALID_VALUE); /* op(A) = A^T needs lda >= k */
    assert_int_equal(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 2, 3, &one, A, 2, B, 3, &zero, C, 2),
                     CUBLAS_STATUS_INVALID_VALUE);
    assert_int_equal(cublasSgemm(NULL, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, A, 2, B, 3, &zero, C, 2),
                     CUBLAS_STATUS_NOT_INITIALIZED);
    assert_int_equal(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, A, 2, B, 3, &zero, C, 2),
                     CUBLAS_STATUS_SUCCESS);
    assert_true(C[0] == 1 + 5 && C[1] == 2 + 6 && C[2] == 3 && C[3] == 4);
    float D[4] = {0.0f / 0.0f, 1, 2, 3};
    assert_int_equal(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 0, &one, A, 2, B, 1, &zero, D, 2),
                     CUBLAS_STATUS_SUCCESS); /* k = 0, beta = 0: zeros, NaN or not */
    for (int i = 0; i < 4; i++) assert_true(D[i] == 0);
    assert_int_equal(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_barrier_and_missing_barrier),
        cmocka_unit_test(test_partial_barrier_is_an_error),
        cmocka_unit_test(test_partial_full_mask_shuffle_is_an_error),
        cmocka_unit_test(test_launches_beyond_the_limits_fail),
        cmocka_unit_test(test_warp_operations_exchange_values),
        cmocka_unit_test(test_atomics_and_dynamic_shared_memory),
        cmocka_unit_test(test_pinned_copies_run_late),
        cmocka_unit_test(test_cublas_checks_and_products),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
