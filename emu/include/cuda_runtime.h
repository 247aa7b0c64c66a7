/* The emulated GPU's stand-in for the CUDA runtime header (ML_CUDA_EMU=ON).
 *
 * The kernels (kernels/, .cu) include <cuda_runtime.h>; in the emulated build this directory
 * comes first on the include path, so they get this header and compile unchanged
 * with the host C++ compiler (after emu/launch_rewrite.lua turned each
 * k<<<...>>>(...) into a call). It declares the part of the runtime API the
 * project uses, with the real names, values and signatures, plus the device side
 * (ml_emu/device.h) and the launch (ml_emu/launch.h).
 *
 * What the runtime does (emu/src/runtime.cpp):
 *  - one device, "device memory" is host memory from malloc: AddressSanitizer sees
 *    every access beyond an allocation;
 *  - every stream is synchronous: a kernel has finished when its launch returns,
 *    except copies from or to pinned host memory (cudaMallocHost, cudaHostAlloc,
 *    cudaHostRegister), which wait until the next operation on any stream or a
 *    synchronize, as a DMA would: a host that reuses a pinned buffer before the
 *    copy ran sees it;
 *  - errors are per host thread, as cudaGetLastError's; a failed launch (a bad
 *    configuration, or a kernel that broke a barrier or warp rule) sets
 *    cudaErrorInvalidConfiguration or cudaErrorLaunchFailure and prints why. */
#ifndef ML_EMU_CUDA_RUNTIME_H
#define ML_EMU_CUDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "ml_emu/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The runtime's error codes (the real values). */
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorHostMemoryAlreadyRegistered = 712,
    cudaErrorHostMemoryNotRegistered = 713,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef struct CUstream_st *cudaStream_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaMemoryType {
    cudaMemoryTypeUnregistered = 0, /* pageable host memory */
    cudaMemoryTypeHost = 1,         /* pinned host memory */
    cudaMemoryTypeDevice = 2,
    cudaMemoryTypeManaged = 3,
};

struct cudaPointerAttributes {
    enum cudaMemoryType type;
    int device;
    void *devicePointer;
    void *hostPointer;
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

/* The fields the project reads, with an H100's limits. */
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;      /* 48 KiB without the opt-in */
    size_t sharedMemPerBlockOptin; /* 227 KiB */
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int multiProcessorCount;
    int major, minor;
};

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaHostAllocDefault 0x00
#define cudaHostAllocPortable 0x01
#define cudaHostAllocMapped 0x02
#define cudaHostAllocWriteCombined 0x04
#define cudaHostRegisterDefault 0x00

const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);
/* The calling thread's last error, cleared (Peek: kept). */
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags);
cudaError_t cudaHostUnregister(void *ptr);
cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attributes, const void *ptr);

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream
#ifdef __cplusplus
                            = 0
#endif
);
cudaError_t cudaMemset(void *ptr, int value, size_t count);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream
#ifdef __cplusplus
                            = 0
#endif
);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);

#ifdef __cplusplus
}

/* The C++ API's typed overloads. */
template <class T>
static inline cudaError_t cudaMalloc(T **ptr, size_t size) {
    return cudaMalloc((void **)ptr, size);
}
template <class T>
static inline cudaError_t cudaMallocHost(T **ptr, size_t size) {
    return cudaMallocHost((void **)ptr, size);
}
template <class T>
static inline cudaError_t cudaHostAlloc(T **ptr, size_t size, unsigned int flags) {
    return cudaHostAlloc((void **)ptr, size, flags);
}

#include "ml_emu/device.h"
#include "ml_emu/launch.h"
#endif

#endif
