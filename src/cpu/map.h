/* The CPU's one elementwise driver: walks up to four tensors of one shape (an
 * output and its operands, broadcast dims as stride 0) in row-major order, dims
 * merged where every tensor's strides allow (iter.h), and hands each run of the
 * innermost dim to a typed loop. The element range is split across threads by
 * ml_parallel_for (parallel.h), so no elementwise kernel has a parallel loop of its
 * own: below ML_PAR_MIN elements it all runs in one call on the calling thread. */
#ifndef ML_CPU_MAP_H
#define ML_CPU_MAP_H

#include "../tensor.h"

/* A typed loop over n elements of one run: p[k] points at tensor k's first element
 * of the run, st[k] is its stride in elements (0 for a broadcast operand); p[0] is
 * the output. arg is what the kernel passed to ml_cpu_map (a scalar, bounds), or
 * NULL. A loop must compute each element alone (any split gives the same bits). */
typedef void (*ml_map_loop)(void *const *p, const int64_t *st, int64_t n, const void *arg);

#define ML_MAP_MAX 4

/* Runs loop over every element of the nt (1..ML_MAP_MAX) tensors t, which all have
 * t[0]'s shape (t[0] is the output); splits the elements across threads when there
 * are ML_PAR_MIN or more. Never fails. */
void ml_cpu_map(int nt, const ml_tensor *const *t, ml_map_loop loop, const void *arg);

#endif
