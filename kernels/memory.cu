/* Device memory: a caching allocator, as PyTorch's.
 *
 * Requests are rounded up to a size class: multiples of 512 bytes up to 1 MiB, then
 * eight classes per power of two (at most 12.5% slack). A freed block goes into its
 * class's bin and the next request of that class takes it back without calling
 * cudaMalloc/cudaFree (which synchronise the device). All work runs on one stream,
 * so a block freed while a queued kernel still uses it is only reused by work
 * queued after that kernel: stream order keeps reuse safe without host syncs.
 * When cudaMalloc fails, the cache is emptied and the call retried once.
 *
 * The counters behind ml.cuda.memory_allocated() (bytes in live blocks) and
 * memory_reserved() (bytes taken from the driver, live + cached). */
#include <pthread.h>
#include <stdlib.h>

#include "common.cuh"

/* On the emulated GPU under AddressSanitizer (ML_CUDA_EMU, tests) device memory is
 * host memory: what no tensor may touch is poisoned, the slack of a size class
 * past the bytes asked for and every block waiting in the cache, so that a kernel
 * that overruns its buffer or uses a freed one is reported. Nothing otherwise. */
#if defined(ML_CUDA_EMU) && defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
static void mark_live(void *p, size_t nbytes, size_t class_bytes) {
    ASAN_UNPOISON_MEMORY_REGION(p, nbytes);
    ASAN_POISON_MEMORY_REGION((char *)p + nbytes, class_bytes - nbytes);
}
static void mark_cached(void *p, size_t class_bytes) { ASAN_POISON_MEMORY_REGION(p, class_bytes); }
#else
static void mark_live(void *, size_t, size_t) {}
static void mark_cached(void *, size_t) {}
#endif

#define SMALL_MAX ((size_t)1 << 20)
#define SMALL_CLASSES (SMALL_MAX / 512)        /* 2048 classes of 512 bytes */
#define MAX_OCTAVE 50                          /* 2^50 bytes: beyond any GPU */
#define N_CLASSES ((int)SMALL_CLASSES + (MAX_OCTAVE - 20 + 1) * 8)

typedef struct block {
    void *ptr;
    struct block *next;
} block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static block *bins[N_CLASSES];
static block *spare_nodes;                     /* list nodes kept for reuse */
static size_t bytes_allocated, bytes_reserved;

/* The class of a request and the size every block of that class has. */
static int size_class(size_t nbytes, size_t *class_bytes) {
    size_t r = (nbytes + 511) & ~(size_t)511;
    if (r == 0) r = 512;
    if (r <= SMALL_MAX) {
        *class_bytes = r;
        return (int)(r / 512 - 1);
    }
    int k = 63 - __builtin_clzll((unsigned long long)r); /* 2^k <= r < 2^(k+1), k >= 20 */
    size_t step = (size_t)1 << (k - 3);
    size_t units = (r + step - 1) / step;              /* 8..16 */
    *class_bytes = units * step;
    int c = (int)SMALL_CLASSES + (k - 20) * 8 + (int)(units - 8);
    return c < N_CLASSES ? c : -1;
}

/* The bytes of every block of class c (the inverse of size_class). */
static size_t class_size(int c) {
    if (c < (int)SMALL_CLASSES) return (size_t)(c + 1) * 512;
    int k = 20 + (c - (int)SMALL_CLASSES) / 8;
    return ((size_t)8 + (size_t)((c - (int)SMALL_CLASSES) % 8)) << (k - 3);
}

static void release_cached_locked(void) {
    for (int c = 0; c < N_CLASSES; c++) {
        while (bins[c]) {
            block *b = bins[c];
            bins[c] = b->next;
            (void)cudaFree(b->ptr);
            b->next = spare_nodes;
            spare_nodes = b;
            bytes_reserved -= class_size(c);
        }
    }
    (void)cudaGetLastError();
}

void *ml_cu_alloc(size_t nbytes) {
    size_t bytes;
    int c = size_class(nbytes, &bytes);
    if (c < 0) {
        ml_error_set("cuda: out of memory allocating %zu bytes (larger than any device)", nbytes);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    block *b = bins[c];
    if (b) {
        bins[c] = b->next;
        void *p = b->ptr;
        b->next = spare_nodes;
        spare_nodes = b;
        bytes_allocated += bytes;
        pthread_mutex_unlock(&lock);
        mark_live(p, nbytes, bytes);
        return p;
    }
    pthread_mutex_unlock(&lock);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        pthread_mutex_lock(&lock);
        release_cached_locked();
        pthread_mutex_unlock(&lock);
        e = cudaMalloc(&p, bytes);
    }
    pthread_mutex_lock(&lock);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t in_use = bytes_allocated;
        pthread_mutex_unlock(&lock);
        ml_error_set("cuda: out of memory allocating %zu bytes (%zu bytes in use)", nbytes, in_use);
        return NULL;
    }
    bytes_reserved += bytes;
    bytes_allocated += bytes;
    pthread_mutex_unlock(&lock);
    mark_live(p, nbytes, bytes);
    return p;
}

void ml_cu_free(void *p, size_t nbytes) {
    if (!p) return;
    size_t bytes;
    int c = size_class(nbytes, &bytes);
    pthread_mutex_lock(&lock);
    block *b = spare_nodes;
    if (b) spare_nodes = b->next;
    else b = (block *)malloc(sizeof *b);
    if (!b) { /* no host memory for the list node: give the block back instead */
        bytes_reserved -= bytes;
        bytes_allocated -= bytes;
        pthread_mutex_unlock(&lock);
        (void)cudaFree(p);
        return;
    }
    mark_cached(p, bytes);
    b->ptr = p;
    b->next = bins[c];
    bins[c] = b;
    bytes_allocated -= bytes;
    pthread_mutex_unlock(&lock);
}

static int cu_memory_to_host(void *host_dst, const void *dev_src, size_t nbytes) {
    cudaStream_t s = ml_cu_stream();
    ML_CU_TRY("to_host", cudaMemcpyAsync(host_dst, dev_src, nbytes, cudaMemcpyDeviceToHost, s));
    ML_CU_TRY("to_host", cudaStreamSynchronize(s));
    return 0;
}

/* True when p is in pinned (page-locked) host memory. */
static bool is_pinned(const void *p) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeHost;
}

/* From pageable host memory cudaMemcpyAsync returns once the source has been
 * staged, so the caller may free or reuse it at once and the device copy stays
 * queued. From pinned memory the copy engine reads the source itself, later: the
 * call waits for it then, or a host that reuses its buffer (the next batch) or
 * frees it would race with the copy. */
static int cu_memory_from_host(void *dev_dst, const void *host_src, size_t nbytes) {
    cudaStream_t s = ml_cu_stream();
    ML_CU_TRY("from_host", cudaMemcpyAsync(dev_dst, host_src, nbytes, cudaMemcpyHostToDevice, s));
    if (is_pinned(host_src)) ML_CU_TRY("from_host", cudaStreamSynchronize(s));
    return 0;
}

static int cu_memory_copy(void *dst, const void *src, size_t nbytes) {
    ML_CU_TRY("copy", cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, ml_cu_stream()));
    return 0;
}

/* The table's alloc and free are the caching allocator's (the kernels' scratch
 * comes from it too). */
static void *cu_memory_alloc(size_t nbytes) { return ml_cu_alloc(nbytes); }
static void cu_memory_free(void *p, size_t nbytes) { ml_cu_free(p, nbytes); }

static int cu_memory_synchronize(void) {
    ML_CU_TRY("synchronize", cudaStreamSynchronize(ml_cu_stream()));
    return 0;
}

const ml_memory_ops ml_cuda_memory = {ML_MEMORY_ENTRIES(ML_BACKEND_ENTRY, cu_memory_)};

extern "C" int ml_cuda_memory_stats(size_t *allocated, size_t *reserved) {
    *allocated = *reserved = 0;
    if (!ml_cuda_backend()) return -1;
    pthread_mutex_lock(&lock);
    *allocated = bytes_allocated;
    *reserved = bytes_reserved;
    pthread_mutex_unlock(&lock);
    return 0;
}

extern "C" int ml_cuda_empty_cache(void) {
    if (!ml_cuda_backend()) return -1;
    /* cudaFree waits for the device, so blocks still used by queued work are safe */
    pthread_mutex_lock(&lock);
    release_cached_locked();
    pthread_mutex_unlock(&lock);
    return 0;
}
