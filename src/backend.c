#include "backend.h"

#include "error.h"

const ml_backend *ml_backend_get(ml_device dev) {
    if (dev == ML_CPU) return ml_cpu_backend();
    return ml_cuda_backend();
}

const ml_backend *ml_backend_of(const ml_tensor *t) { return ml_backend_get(t->storage->device); }

int ml_backend_missing(const ml_tensor *t, const char *op) {
    return ml_error_set("%s: not available on %s", op, ml_device_name(t->storage->device));
}
