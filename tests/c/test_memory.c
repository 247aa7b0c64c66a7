/* The CPU allocator's free lists: small blocks freed and taken again on one thread
 * and across threads (each thread has its own short lists in front of the shared
 * ones, flushed to them when it exits), with the data written and read back so a
 * block handed out twice would show; a large block freed and a somewhat smaller one
 * asked for: carved from the cached block, its tail given back, no new resident
 * memory. */
#include <pthread.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "backend.h"
#include "cpu/memory_cache.h"

#define N_BLOCKS 2000

/* Takes N_BLOCKS blocks of sizes 1 .. 9000 bytes, fills each with its own byte,
 * checks them all, frees half, takes them again, checks again, frees all. */
static void *churn(void *arg) {
    const ml_memory_ops *mem = ml_cpu_backend()->memory;
    unsigned seed = (unsigned)(uintptr_t)arg;
    static _Thread_local void *p[N_BLOCKS];
    static _Thread_local size_t n[N_BLOCKS];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N_BLOCKS; i++) {
            seed = seed * 1103515245u + 12345u;
            n[i] = 1 + (seed >> 8) % 9000;
            p[i] = mem->alloc(n[i]);
            if (!p[i]) return (void *)1;
            memset(p[i], (int)(i & 0xff), n[i]);
        }
        for (int i = 0; i < N_BLOCKS; i++) {
            const unsigned char *b = p[i];
            for (size_t k = 0; k < n[i]; k += 97)
                if (b[k] != (unsigned char)(i & 0xff)) return (void *)2;
        }
        for (int i = 0; i < N_BLOCKS; i++) mem->free(p[i], n[i]);
    }
    return NULL;
}

static void test_blocks_on_one_thread(void **state) {
    (void)state;
    assert_null(churn((void *)7));
}

/* A block allocated on one thread, freed on another: the lists stay consistent. */
static void *free_them(void *arg) {
    void **blocks = arg;
    const ml_memory_ops *mem = ml_cpu_backend()->memory;
    for (int i = 0; i < 100; i++) mem->free(blocks[i], 64 * (size_t)(i % 50 + 1));
    return NULL;
}

static void test_blocks_across_threads(void **state) {
    (void)state;
    pthread_t th[4];
    for (int t = 0; t < 4; t++) assert_int_equal(pthread_create(&th[t], NULL, churn, (void *)(uintptr_t)(t + 1)), 0);
    for (int t = 0; t < 4; t++) {
        void *rc;
        assert_int_equal(pthread_join(th[t], &rc), 0);
        assert_null(rc);
    }
    const ml_memory_ops *mem = ml_cpu_backend()->memory;
    void *blocks[100];
    for (int i = 0; i < 100; i++) {
        blocks[i] = mem->alloc(64 * (size_t)(i % 50 + 1));
        assert_non_null(blocks[i]);
    }
    pthread_t other;
    assert_int_equal(pthread_create(&other, NULL, free_them, blocks), 0);
    assert_int_equal(pthread_join(other, NULL), 0);
    /* what the exited threads gave back is handed out again, and still correct */
    assert_null(churn((void *)99));
}

/* VmRSS of this process in KiB, from /proc/self/status; -1 if unreadable. */
static long resident_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static void test_smaller_size_carved_from_cached_block(void **state) {
    (void)state;
#if !ML_CACHE_ENABLED
    skip(); /* the sanitizer build has no cache (src/cpu/memory.c): every block is the sanitizer's */
#else
    const ml_memory_ops *mem = ml_cpu_backend()->memory;
    const size_t big = (size_t)32 << 20, smaller = (size_t)24 << 20;
    unsigned char *p = mem->alloc(big);
    assert_non_null(p);
    memset(p, 1, big);
    mem->free(p, big);
    const long before = resident_kib();
    unsigned char *q = mem->alloc(smaller);
    assert_ptr_equal(q, p);           /* the cached block, not a new mapping */
    memset(q, 2, smaller);            /* writable to its end */
    const long after = resident_kib();
    assert_true(before > 0 && after > 0);
    assert_true(after <= before - 6 * 1024); /* the 8 MiB tail went back to the system */
    mem->free(q, smaller);
    /* a block more than twice the size asked for stays whole in the cache */
    unsigned char *r = mem->alloc((size_t)4 << 20);
    assert_non_null(r);
    assert_ptr_not_equal(r, q);
    mem->free(r, (size_t)4 << 20);
    unsigned char *again = mem->alloc(smaller);
    assert_ptr_equal(again, q);
    mem->free(again, smaller);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_on_one_thread),
        cmocka_unit_test(test_blocks_across_threads),
        cmocka_unit_test(test_smaller_size_carved_from_cached_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
