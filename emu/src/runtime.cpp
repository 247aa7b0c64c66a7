/* The emulated GPU's runtime API (emu/include/cuda_runtime.h): one device whose
 * memory is host memory, synchronous streams, per-thread errors.
 *
 * Device allocations come from posix_memalign (256-byte aligned, as cudaMalloc's)
 * at their exact size, so AddressSanitizer reports a kernel or copy that runs
 * past one. Copies from or to pinned host memory are queued and run by the next
 * stream operation (flush_pending), as a GPU's copy engine runs them after the
 * call returned; every other copy and memset runs at once, after the queue. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iterator>
#include <map>
#include <mutex>
#include <vector>

#include "internal.h"

struct CUstream_st {
    unsigned flags;
};

namespace ml_emu {
namespace {

thread_local cudaError_t last_error = cudaSuccess;

/* Address ranges: device allocations and pinned host memory, by start. */
typedef std::map<uintptr_t, size_t> range_map;
std::mutex mem_mutex;
range_map device_ranges, pinned_ranges;

struct pending_copy {
    void *dst;
    const void *src;
    size_t count;
};
std::vector<pending_copy> pending; /* under mem_mutex */

/* The range of m that holds p, or m.end(). */
range_map::const_iterator find_range(const range_map &m, const void *p) {
    uintptr_t a = (uintptr_t)p;
    auto it = m.upper_bound(a);
    if (it == m.begin()) return m.end();
    --it;
    return a < it->first + (it->second ? it->second : 1) ? it : m.end();
}

bool is_pinned(const void *p) {
    std::lock_guard<std::mutex> g(mem_mutex);
    return find_range(pinned_ranges, p) != pinned_ranges.end();
}

/* Adds [p, p + size) to m; false when it overlaps a range already there. */
bool add_range(range_map &m, void *p, size_t size) {
    std::lock_guard<std::mutex> g(mem_mutex);
    uintptr_t a = (uintptr_t)p;
    auto it = m.lower_bound(a);
    if (it != m.end() && it->first < a + size) return false;
    if (it != m.begin() && std::prev(it)->first + std::prev(it)->second > a) return false;
    m[a] = size;
    return true;
}

/* Removes the range that starts at p; false when there is none. */
bool remove_range(range_map &m, const void *p) {
    std::lock_guard<std::mutex> g(mem_mutex);
    return m.erase((uintptr_t)p) == 1;
}

} // namespace

cudaError_t set_last_error(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

void flush_pending(void) {
    std::vector<pending_copy> run;
    {
        std::lock_guard<std::mutex> g(mem_mutex);
        run.swap(pending);
    }
    for (const pending_copy &c : run) memcpy(c.dst, c.src, c.count);
}

void report(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n] = '\n';
    fprintf(stderr, "ml_emu: %.*s", n + 1, buf);
    fflush(stderr);
}

} // namespace ml_emu

using ml_emu::set_last_error;

extern "C" {

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorHostMemoryAlreadyRegistered:
        return "part or all of the requested memory range is already mapped";
    case cudaErrorHostMemoryNotRegistered:
        return "pointer does not correspond to a registered memory region";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t error) {
    switch (error) {
#define NAME(E) case E: return #E;
    NAME(cudaSuccess) NAME(cudaErrorInvalidValue) NAME(cudaErrorMemoryAllocation)
    NAME(cudaErrorInitializationError) NAME(cudaErrorInvalidConfiguration)
    NAME(cudaErrorInvalidDevicePointer) NAME(cudaErrorInvalidMemcpyDirection)
    NAME(cudaErrorNoDevice) NAME(cudaErrorInvalidDevice) NAME(cudaErrorInvalidResourceHandle)
    NAME(cudaErrorNotReady) NAME(cudaErrorHostMemoryAlreadyRegistered)
    NAME(cudaErrorHostMemoryNotRegistered) NAME(cudaErrorLaunchFailure)
#undef NAME
    }
    return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = ml_emu::last_error;
    ml_emu::last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return ml_emu::last_error; }

cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return set_last_error(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    return device == 0 ? cudaSuccess : set_last_error(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *device) {
    if (!device) return set_last_error(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (!prop) return set_last_error(cudaErrorInvalidValue);
    if (device != 0) return set_last_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "moonlight emulated GPU (kernels on CPU fibers)");
    prop->totalGlobalMem = (size_t)80 << 30;
    prop->sharedMemPerBlock = 48 << 10;
    prop->sharedMemPerBlockOptin = 227 << 10;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 0x7fffffff;
    prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
    prop->multiProcessorCount = 132;
    prop->major = 9;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    ml_emu::flush_pending();
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size) {
    if (!ptr) return set_last_error(cudaErrorInvalidValue);
    *ptr = NULL;
    if (size == 0) return cudaSuccess;
    void *p = NULL;
    if (posix_memalign(&p, 256, size) != 0) return set_last_error(cudaErrorMemoryAllocation);
    ml_emu::add_range(ml_emu::device_ranges, p, size);
    *ptr = p;
    return cudaSuccess;
}

/* As the real one, it waits for the device first. */
cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    ml_emu::flush_pending();
    if (!ml_emu::remove_range(ml_emu::device_ranges, ptr)) return set_last_error(cudaErrorInvalidValue);
    free(ptr);
    return cudaSuccess;
}

ML_EMU_EXPORT cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags) {
    (void)flags;
    if (!ptr) return set_last_error(cudaErrorInvalidValue);
    *ptr = NULL;
    void *p = NULL;
    if (posix_memalign(&p, 4096, size ? size : 1) != 0) return set_last_error(cudaErrorMemoryAllocation);
    ml_emu::add_range(ml_emu::pinned_ranges, p, size);
    *ptr = p;
    return cudaSuccess;
}

ML_EMU_EXPORT cudaError_t cudaMallocHost(void **ptr, size_t size) {
    return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}

/* As the real one, it waits for the device first. */
ML_EMU_EXPORT cudaError_t cudaFreeHost(void *ptr) {
    if (!ptr) return cudaSuccess;
    ml_emu::flush_pending();
    if (!ml_emu::remove_range(ml_emu::pinned_ranges, ptr)) return set_last_error(cudaErrorInvalidValue);
    free(ptr);
    return cudaSuccess;
}

ML_EMU_EXPORT cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags) {
    (void)flags;
    if (!ptr || size == 0) return set_last_error(cudaErrorInvalidValue);
    if (!ml_emu::add_range(ml_emu::pinned_ranges, ptr, size))
        return set_last_error(cudaErrorHostMemoryAlreadyRegistered);
    return cudaSuccess;
}

ML_EMU_EXPORT cudaError_t cudaHostUnregister(void *ptr) {
    ml_emu::flush_pending();
    if (!ml_emu::remove_range(ml_emu::pinned_ranges, ptr))
        return set_last_error(cudaErrorHostMemoryNotRegistered);
    return cudaSuccess;
}

ML_EMU_EXPORT cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attributes,
                                                   const void *ptr) {
    if (!attributes) return set_last_error(cudaErrorInvalidValue);
    memset(attributes, 0, sizeof *attributes);
    std::lock_guard<std::mutex> g(ml_emu::mem_mutex);
    if (ml_emu::find_range(ml_emu::pinned_ranges, ptr) != ml_emu::pinned_ranges.end()) {
        attributes->type = cudaMemoryTypeHost;
        attributes->devicePointer = attributes->hostPointer = (void *)ptr;
    } else if (ml_emu::find_range(ml_emu::device_ranges, ptr) != ml_emu::device_ranges.end()) {
        attributes->type = cudaMemoryTypeDevice;
        attributes->devicePointer = (void *)ptr;
    } else {
        attributes->type = cudaMemoryTypeUnregistered;
        attributes->device = -2;
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
    (void)stream;
    if ((int)kind < 0 || kind > cudaMemcpyDefault) return set_last_error(cudaErrorInvalidMemcpyDirection);
    if (count == 0) return cudaSuccess;
    if (!dst || !src) return set_last_error(cudaErrorInvalidValue);
    if (kind != cudaMemcpyDeviceToDevice && (ml_emu::is_pinned(dst) || ml_emu::is_pinned(src))) {
        std::lock_guard<std::mutex> g(ml_emu::mem_mutex);
        ml_emu::pending.push_back({dst, src, count});
        return cudaSuccess;
    }
    ml_emu::flush_pending();
    memcpy(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    cudaError_t e = cudaMemcpyAsync(dst, src, count, kind, 0);
    ml_emu::flush_pending();
    return e;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream) {
    (void)stream;
    if (count == 0) return cudaSuccess;
    if (!ptr) return set_last_error(cudaErrorInvalidValue);
    ml_emu::flush_pending();
    memset(ptr, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *ptr, int value, size_t count) {
    return cudaMemsetAsync(ptr, value, count, 0);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    if (!stream) return set_last_error(cudaErrorInvalidValue);
    *stream = new CUstream_st{flags};
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream) return set_last_error(cudaErrorInvalidResourceHandle);
    ml_emu::flush_pending();
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    (void)stream;
    ml_emu::flush_pending();
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    (void)stream;
    ml_emu::flush_pending();
    return cudaSuccess;
}

} // extern "C"
