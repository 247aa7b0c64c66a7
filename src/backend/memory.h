/* Backend family: device memory. */
#ifndef ML_BACKEND_MEMORY_H
#define ML_BACKEND_MEMORY_H

#include <stddef.h>

typedef struct ml_memory_ops {
    /* NULL with ml_error set when out of memory. */
    void *(*alloc)(size_t nbytes);
    void (*free)(void *ptr, size_t nbytes);
    /* Copies between this device and host memory; 0 or -1. */
    int (*to_host)(void *host_dst, const void *dev_src, size_t nbytes);
    int (*from_host)(void *dev_dst, const void *host_src, size_t nbytes);
    /* Copies within the device. */
    int (*copy)(void *dst, const void *src, size_t nbytes);
    /* Waits until all queued work is done (a no-op on the CPU). */
    int (*synchronize)(void);
} ml_memory_ops;

#endif
