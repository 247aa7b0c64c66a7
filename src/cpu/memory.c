/* CPU memory: 64-byte aligned blocks (a cache line; what AVX-512 loads like), with
 * a cache of large blocks and free lists of small ones.
 *
 * A training loop allocates the same large sizes again and again (activations,
 * gradients); glibc serves blocks above its mmap threshold with fresh mappings, so
 * every such tensor would pay page faults and the kernel's zeroing before its first
 * write. Freed blocks of ML_CACHE_MIN bytes and more are kept (up to
 * ML_CACHE_MAX_BYTES in all) and handed out again, most recently freed first, to an
 * allocation of the same rounded size.
 *
 * A miss takes the smallest larger cached block (up to twice the size), if any,
 * and gives its tail back to the system: a size the run has not used yet (a last
 * partial batch, a first step at another batch size) is carved from resident
 * blocks instead of adding new ones. For that, large blocks are mappings of their
 * own (mmap; a tail is unmapped whole pages), not glibc's, whose heap would keep a
 * freed tail resident. Measured on the MNIST CNN benchmark's training epoch, the last batch
 * of 96 after 468 of 128 raised the peak RSS from ~107 to 145 MiB; carved, it
 * stays at ~107. (Evicting old blocks on a miss instead, to follow the live size
 * down, made the same epoch 5x slower: the blocks a step frees come back to the
 * cache only when the Lua collector finds them, so a steady loop still misses now
 * and then, and each eviction then forced more misses.)
 *
 * Small blocks (below ML_CACHE_MIN) go on one free list per 64-byte size class (the
 * link lives in the freed block itself), up to ML_SMALL_MAX_BYTES in all: a tensor
 * of a few KiB then costs a list pop instead of glibc's aligned_alloc, whose
 * memalign path (and the consolidation after the Lua collector frees thousands of
 * small tensors at once) cost more than the product itself at the MLP's small shapes.
 * Sanitizer builds bypass both caches so that AddressSanitizer still sees every use
 * after free. */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../backend.h"
#include "../error.h"
#include "memory_cache.h"

#define ML_CACHE_MIN ((size_t)64 << 10)
#define ML_CACHE_MAX_BYTES ((size_t)512 << 20)
#define ML_CACHE_SLOTS 64
#define ML_SMALL_CLASSES (ML_CACHE_MIN / 64)
#define ML_SMALL_MAX_BYTES ((size_t)16 << 20)

static struct {
    pthread_mutex_t lock;
    void *ptr[ML_CACHE_SLOTS];
    size_t size[ML_CACHE_SLOTS];
    int n;
    size_t bytes;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct {
    pthread_mutex_t lock;
    void *head[ML_SMALL_CLASSES]; /* class r / 64: blocks of r bytes, linked through their first word */
    size_t bytes;
} small = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Sizes round up to 64 bytes, and large ones to 4 KiB pages, so that nearby sizes
 * share blocks. */
static size_t rounded(size_t nbytes) {
    size_t r = (nbytes + 63) & ~(size_t)63;
    if (r >= ML_CACHE_MIN) r = (r + 4095) & ~(size_t)4095;
    return r;
}

/* A large block of r bytes (a multiple of the page size) of its own; NULL when
 * the system has none. */
static void *map_block(size_t r) {
    void *p = mmap(NULL, r, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void unmap_block(void *p, size_t r) {
    if (p) (void)munmap(p, r);
}

/* Removes cache entry i; the caller holds the lock. */
static void cache_remove(int i) {
    cache.bytes -= cache.size[i];
    memmove(&cache.ptr[i], &cache.ptr[i + 1], sizeof(void *) * (size_t)(cache.n - i - 1));
    memmove(&cache.size[i], &cache.size[i + 1], sizeof(size_t) * (size_t)(cache.n - i - 1));
    cache.n--;
}

/* A cached block for r bytes: one of exactly r, most recently freed first, else
 * the smallest larger one up to 2r with its tail given back to the system (a size
 * the run has not used yet, a last partial batch, carved from resident blocks
 * instead of adding new ones; the bound keeps a small miss from taking a big
 * block that its own size will miss next). NULL when none fits. */
static void *cache_take(size_t r) {
    void *p = NULL;
    size_t tail = 0;
    pthread_mutex_lock(&cache.lock);
    int best = -1;
    for (int i = cache.n - 1; i >= 0; i--) {
        if (cache.size[i] == r) {
            best = i;
            break;
        }
        if (cache.size[i] > r && cache.size[i] / 2 <= r && (best < 0 || cache.size[i] < cache.size[best]))
            best = i;
    }
    if (best >= 0) {
        p = cache.ptr[best];
        tail = cache.size[best] - r;
        cache_remove(best);
    }
    pthread_mutex_unlock(&cache.lock);
    if (tail) unmap_block((char *)p + r, tail); /* r and the block are whole pages */
    return p;
}

/* Keeps p; when the cache is full its oldest blocks are unmapped to make room. */
static void cache_put(void *p, size_t r) {
    void *evict[ML_CACHE_SLOTS];
    size_t evict_size[ML_CACHE_SLOTS];
    int ne = 0;
    pthread_mutex_lock(&cache.lock);
    while (cache.n > 0 && (cache.n == ML_CACHE_SLOTS || cache.bytes + r > ML_CACHE_MAX_BYTES)) {
        evict[ne] = cache.ptr[0];
        evict_size[ne++] = cache.size[0];
        cache_remove(0);
    }
    if (r <= ML_CACHE_MAX_BYTES) {
        cache.ptr[cache.n] = p;
        cache.size[cache.n++] = r;
        cache.bytes += r;
        p = NULL;
    }
    pthread_mutex_unlock(&cache.lock);
    for (int i = 0; i < ne; i++) unmap_block(evict[i], evict_size[i]);
    unmap_block(p, r);
}

/* Each thread keeps its own short free lists of the smallest blocks in front of
 * the shared ones: an op on a small tensor takes and gives back three or four
 * such blocks (tensor and storage structs, the data, the autograd node), and the
 * lock and unlock of the shared lists around each were ~15 % of such an op. A
 * block freed on another thread simply joins that thread's lists. What a thread
 * holds (at most ML_TL_MAX_BYTES) goes back to the shared lists when it exits. */
#define ML_TL_CLASSES 128 /* blocks up to 8 KiB */
#define ML_TL_MAX_BYTES ((size_t)256 << 10)

typedef struct {
    void *head[ML_TL_CLASSES];
    size_t bytes;
} thread_lists;

static _Thread_local thread_lists tl;
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

static void small_put_shared(void *p, size_t r);

/* Thread exit: this thread's blocks go back to the shared lists. */
static void tl_flush(void *unused) {
    (void)unused;
    for (size_t c = 0; c < ML_TL_CLASSES; c++) {
        while (tl.head[c]) {
            void *p = tl.head[c];
            tl.head[c] = *(void **)p;
            small_put_shared(p, c * 64);
        }
    }
    tl.bytes = 0;
}

static void tl_make_key(void) { (void)pthread_key_create(&tl_key, tl_flush); }

static void *small_take(size_t r) {
    size_t c = r / 64;
    if (c < ML_TL_CLASSES && tl.head[c]) {
        void *p = tl.head[c];
        tl.head[c] = *(void **)p;
        tl.bytes -= r;
        return p;
    }
    pthread_mutex_lock(&small.lock);
    void *p = small.head[c];
    if (p) {
        small.head[c] = *(void **)p;
        small.bytes -= r;
    }
    pthread_mutex_unlock(&small.lock);
    return p;
}

static void small_put_shared(void *p, size_t r) {
    size_t c = r / 64;
    pthread_mutex_lock(&small.lock);
    if (small.bytes + r <= ML_SMALL_MAX_BYTES) {
        *(void **)p = small.head[c];
        small.head[c] = p;
        small.bytes += r;
        p = NULL;
    }
    pthread_mutex_unlock(&small.lock);
    free(p);
}

static void small_put(void *p, size_t r) {
    size_t c = r / 64;
    if (c < ML_TL_CLASSES && tl.bytes + r <= ML_TL_MAX_BYTES) {
        if (tl.bytes == 0) { /* this thread's first block: have it flushed at exit */
            pthread_once(&tl_once, tl_make_key);
            (void)pthread_setspecific(tl_key, &tl);
        }
        *(void **)p = tl.head[c];
        tl.head[c] = p;
        tl.bytes += r;
        return;
    }
    small_put_shared(p, r);
}

static void cache_clear(void) {
    tl_flush(NULL); /* this thread's blocks too (then freed below) */
    pthread_mutex_lock(&cache.lock);
    for (int i = 0; i < cache.n; i++) unmap_block(cache.ptr[i], cache.size[i]);
    cache.n = 0;
    cache.bytes = 0;
    pthread_mutex_unlock(&cache.lock);
    pthread_mutex_lock(&small.lock);
    for (size_t c = 0; c < ML_SMALL_CLASSES; c++) {
        while (small.head[c]) {
            void *p = small.head[c];
            small.head[c] = *(void **)p;
            free(p);
        }
    }
    small.bytes = 0;
    pthread_mutex_unlock(&small.lock);
}

/* A fresh block of r bytes: large ones mapped (only when the cache is on: the
 * sanitizers' allocator must see every block), small ones from glibc. */
static void *fresh_block(size_t r) {
    if (ML_CACHE_ENABLED && r >= ML_CACHE_MIN) return map_block(r);
    return aligned_alloc(64, r);
}

static void *cpu_memory_alloc(size_t nbytes) {
    size_t r = rounded(nbytes);
    void *p = NULL;
    if (ML_CACHE_ENABLED) p = r >= ML_CACHE_MIN ? cache_take(r) : small_take(r);
    if (p) return p;
    p = fresh_block(r);
    if (!p && ML_CACHE_ENABLED) { /* what the caches hold may be what is missing */
        cache_clear();
        p = fresh_block(r);
    }
    if (!p) {
        ml_error_set("tensor: out of memory allocating %zu bytes", nbytes);
        return NULL;
    }
    return p;
}

static void cpu_memory_free(void *p, size_t nbytes) {
    size_t r = rounded(nbytes);
    if (!ML_CACHE_ENABLED || !p) free(p);
    else if (r >= ML_CACHE_MIN) cache_put(p, r);
    else small_put(p, r);
}

/* host memory is the device's: the three copies are one memcpy */
static int cpu_memory_copy(void *dst, const void *src, size_t n) {
    memcpy(dst, src, n);
    return 0;
}
static int cpu_memory_to_host(void *dst, const void *src, size_t n) {
    return cpu_memory_copy(dst, src, n);
}
static int cpu_memory_from_host(void *dst, const void *src, size_t n) {
    return cpu_memory_copy(dst, src, n);
}

static int cpu_memory_synchronize(void) { return 0; }

const ml_memory_ops ml_cpu_memory = {ML_MEMORY_ENTRIES(ML_BACKEND_ENTRY, cpu_memory_)};
