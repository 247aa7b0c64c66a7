/* The CUDA backend's op table, its device (0 unless ml_cuda_set_device chose
 * another before first use: a distributed run's local rank) and its one stream.
 *
 * ml_cuda_backend() checks for a GPU once (cudaGetDeviceCount); without one it
 * returns NULL with the reason in ml_error, every time it is asked. Every family
 * of the table has CUDA kernels. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common.cuh"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool available;
static char unavailable_reason[256];
static cudaStream_t stream;
static char device_name[256];
static int requested_device;   /* ml_cuda_set_device, modulo the device count */
static bool started;           /* init ran: the device is fixed */

static const ml_backend cuda_backend = {
    /* name */ "cuda",
    /* device */ ML_CUDA,
    /* memory */ &ml_cuda_memory,
    /* elementwise */ &ml_cuda_elementwise,
    /* reduce */ &ml_cuda_reduce,
    /* matmul */ &ml_cuda_matmul,
    /* softmax */ &ml_cuda_softmax,
    /* loss */ &ml_cuda_loss,
    /* optim */ &ml_cuda_optim,
    /* index */ &ml_cuda_index,
    /* data */ &ml_cuda_data,
    /* sort */ &ml_cuda_sort,
    /* convolution, pooling, batch norm (issue 16) */
    /* conv */ &ml_cuda_conv,
    /* pool */ &ml_cuda_pool,
    /* batchnorm */ &ml_cuda_batchnorm,
    /* normalisation, embeddings (issue 16) */
    /* norm */ &ml_cuda_norm,
    /* embedding */ &ml_cuda_embedding,
};

static void init(void) {
    started = true;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        snprintf(unavailable_reason, sizeof unavailable_reason,
                 "cuda: no CUDA device is available (cudaGetDeviceCount: %s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return;
    }
    cudaDeviceProp prop;
    int dev = requested_device % count;
    if ((e = cudaSetDevice(dev)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(unavailable_reason, sizeof unavailable_reason,
                 "cuda: device %d could not be set up (%s)", dev, cudaGetErrorString(e));
        return;
    }
    snprintf(device_name, sizeof device_name, "%s", prop.name);
    available = true;
}

extern "C" const ml_backend *ml_cuda_backend(void) {
    pthread_once(&init_once, init);
    if (!available) {
        ml_error_set("%s", unavailable_reason);
        return NULL;
    }
    return &cuda_backend;
}

cudaStream_t ml_cu_stream(void) { return stream; }

extern "C" int ml_cuda_set_device(int index) {
    if (index < 0) return ml_error_set("cuda.set_device: the index must be >= 0, got %d", index);
    if (started) {
        int current = -1;
        if (available && cudaGetDevice(&current) == cudaSuccess && current == index) return 0;
        return ml_error_set("cuda.set_device: the CUDA backend already runs on its device; choose the "
                            "device (%d) before the first use of CUDA", index);
    }
    requested_device = index;
    return 0;
}

extern "C" int ml_cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return count;
}

extern "C" void *ml_cuda_stream(void) { return ml_cuda_backend() ? (void *)stream : NULL; }

extern "C" const char *ml_cuda_device_name(void) {
    return ml_cuda_backend() ? device_name : NULL;
}

extern "C" int ml_cuda_synchronize(void) {
    if (!ml_cuda_backend()) return -1;
    ML_CU_TRY("cuda.synchronize", cudaStreamSynchronize(stream));
    return 0;
}
