/* Whether the CPU allocator (src/cpu/memory.c) keeps freed blocks for reuse:
 * not under AddressSanitizer, which must see every block to report a use after
 * free. One definition for the allocator and the tests that depend on its cache. */
#ifndef ML_CPU_MEMORY_CACHE_H
#define ML_CPU_MEMORY_CACHE_H

#if defined(__SANITIZE_ADDRESS__)
#define ML_CACHE_ENABLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ML_CACHE_ENABLED 0
#endif
#endif
#ifndef ML_CACHE_ENABLED
#define ML_CACHE_ENABLED 1
#endif

#endif
