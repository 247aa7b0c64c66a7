/* CPU memory: 64-byte aligned blocks (a cache line; what AVX-512 loads like). */
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"

static void *cpu_alloc(size_t nbytes) {
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (!p) {
        ml_error_set("tensor: out of memory allocating %zu bytes", nbytes);
        return NULL;
    }
    return p;
}

static void cpu_free(void *p, size_t nbytes) {
    (void)nbytes;
    free(p);
}

static int cpu_copy_bytes(void *dst, const void *src, size_t n) {
    memcpy(dst, src, n);
    return 0;
}

static int cpu_synchronize(void) { return 0; }

const ml_memory_ops ml_cpu_memory = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_host = cpu_copy_bytes,
    .from_host = cpu_copy_bytes,
    .copy = cpu_copy_bytes,
    .synchronize = cpu_synchronize,
};
