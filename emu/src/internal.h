/* What the emulated GPU's runtime, scheduler and cuBLAS share (emu/src only). */
#ifndef ML_EMU_INTERNAL_H
#define ML_EMU_INTERNAL_H

#include <cuda_runtime.h>

/* Exported from the plugin (the rest is hidden): the pinned-memory calls a host
 * program needs to hand the emulated device pinned buffers (tests/emu). */
#define ML_EMU_EXPORT __attribute__((visibility("default")))

namespace ml_emu {

/* Sets the calling host thread's last error (cudaGetLastError returns it);
 * returns e. cudaSuccess leaves it alone. */
cudaError_t set_last_error(cudaError_t e);

/* Runs the copies still queued from or to pinned host memory, in order. Every
 * stream operation calls it first: streams behave as one in-order queue. */
void flush_pending(void);

/* Prints "ml_emu: <message>" on stderr (one write, so lines of different threads
 * do not mix). */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace ml_emu

#endif
