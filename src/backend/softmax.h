/* Backend family: softmax and log_softmax over one dim.
 *
 * Contract: x, y, g contiguous, seen as [outer, n, inner], softmax over n. */
#ifndef ML_BACKEND_SOFTMAX_H
#define ML_BACKEND_SOFTMAX_H

#include "../tensor.h"

typedef struct ml_softmax_ops {
    int (*forward)(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner, bool log,
                   ml_tensor *y);
    /* grad_x from the output y and its gradient g */
    int (*backward)(const ml_tensor *y, const ml_tensor *g, int64_t outer, int64_t n,
                    int64_t inner, bool log, ml_tensor *grad_x);
} ml_softmax_ops;

#endif
