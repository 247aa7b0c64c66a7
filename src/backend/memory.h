/* Backend family: device memory. */
#ifndef ML_BACKEND_MEMORY_H
#define ML_BACKEND_MEMORY_H

#include <stddef.h>

#include "table.h"

/* The family's entries (see table.h):
 *  - alloc: nbytes of device memory, or NULL with ml_error set when out of memory.
 *  - free: gives back what alloc gave, with the size asked for.
 *  - to_host / from_host: copies between this device and host memory; 0 or -1.
 *  - copy: copies within the device.
 *  - synchronize: waits until all queued work is done (a no-op on the CPU). */
#define ML_MEMORY_ENTRIES(X, P)                                                          \
    X(P, void *, alloc, (size_t nbytes))                                                 \
    X(P, void, free, (void *ptr, size_t nbytes))                                         \
    X(P, int, to_host, (void *host_dst, const void *dev_src, size_t nbytes))             \
    X(P, int, from_host, (void *dev_dst, const void *host_src, size_t nbytes))           \
    X(P, int, copy, (void *dst, const void *src, size_t nbytes))                         \
    X(P, int, synchronize, (void))

typedef struct ml_memory_ops {
    ML_MEMORY_ENTRIES(ML_BACKEND_FIELD, _)
} ml_memory_ops;

#endif
