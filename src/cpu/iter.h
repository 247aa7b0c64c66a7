/* Strided iteration for CPU kernels: up to four tensors of one shape in row-major
 * order, with dims merged where their strides allow, so that the inner loop is as
 * long as possible and usually unit-stride (ml_cpu_map, map.h, walks them). */
#ifndef ML_CPU_ITER_H
#define ML_CPU_ITER_H

#include <omp.h>

#include "../tensor.h"
#include "../threads.h"

#define ML_ITER_MAX 4

typedef struct {
    int ndim;                          /* after merging; inner dim is ndim - 1 */
    int64_t shape[ML_MAX_DIMS];
    int64_t strides[ML_ITER_MAX][ML_MAX_DIMS];
    int n;                             /* tensors */
} ml_iter;

/* Prepares an iteration over n tensors of t[0]'s shape (the others have it too). */
void ml_iter_init(ml_iter *it, int n, const ml_tensor *const *t);

/* `for` loops (given as the variadic argument) run across OpenMP threads when cond
 * holds, else plainly: an `omp parallel ... if (0)` region still costs a trip
 * through libgomp, which dominated ops on small tensors. The team comes from
 * ml_team_threads (one thread while the machine's other cores are taken) and the
 * region reports how long the calling thread waited for it (threads.h); the loop
 * is split statically, thread 0 taking the first share. */
#define ML_PARALLEL_REGION_(FOR_PRAGMA, cond, ...)                                   \
    do {                                                                             \
        const int team_ = (cond) ? ml_team_threads() : 1;                            \
        if (team_ > 1) {                                                             \
            const double t0_ = ml_clock_seconds();                                      \
            double own_ = 0;                                                         \
            _Pragma("omp parallel num_threads(team_)")                               \
            {                                                                        \
                _Pragma(FOR_PRAGMA) __VA_ARGS__                                      \
                if (omp_get_thread_num() == 0) own_ = ml_clock_seconds() - t0_;         \
            }                                                                        \
            ml_team_report(ml_clock_seconds() - t0_, own_);                             \
        } else {                                                                     \
            __VA_ARGS__                                                              \
        }                                                                            \
    } while (0)
#define ML_PARALLEL_FOR_IF(cond, ...)                                                 \
    ML_PARALLEL_REGION_("omp for schedule(static) nowait", cond, __VA_ARGS__)

#endif
