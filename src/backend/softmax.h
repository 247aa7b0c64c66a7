/* Backend family: softmax and log_softmax over one dim.
 *
 * Contract: x, y, g contiguous, seen as [outer, n, inner], softmax over n. */
#ifndef ML_BACKEND_SOFTMAX_H
#define ML_BACKEND_SOFTMAX_H

#include "../tensor.h"
#include "table.h"

/* The family's entries (see table.h):
 *  - forward: y = softmax (log_softmax when log) of x.
 *  - backward: grad_x from the output y and its gradient g. */
#define ML_SOFTMAX_ENTRIES(X, P)                                                         \
    X(P, int, forward,                                                                   \
      (const ml_tensor *x, int64_t outer, int64_t n, int64_t inner, bool log, ml_tensor *y)) \
    X(P, int, backward,                                                                  \
      (const ml_tensor *y, const ml_tensor *g, int64_t outer, int64_t n, int64_t inner,   \
       bool log, ml_tensor *grad_x))

typedef struct ml_softmax_ops {
    ML_SOFTMAX_ENTRIES(ML_BACKEND_FIELD, _)
} ml_softmax_ops;

#endif
