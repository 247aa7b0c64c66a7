/* Backend family: reductions.
 *
 * Contract: x is contiguous and seen as [outer, n, inner]; the reduction runs over
 * n and writes out [outer, inner] (contiguous). max/min with a dim also write the
 * position (0-based, int64) of the first extreme into idx when idx is not NULL;
 * argmax/argmin write int64 positions into out. */
#ifndef ML_BACKEND_REDUCE_H
#define ML_BACKEND_REDUCE_H

#include "../tensor.h"

typedef enum {
    ML_RED_SUM, ML_RED_MEAN, ML_RED_MAX, ML_RED_MIN, ML_RED_ARGMAX, ML_RED_ARGMIN,
    ML_RED_LOGSUMEXP,
    ML_RED_COUNT
} ml_reduce_op;

typedef struct ml_reduce_ops {
    int (*reduce)(ml_reduce_op op, const ml_tensor *x, int64_t outer, int64_t n,
                  int64_t inner, ml_tensor *out, ml_tensor *idx);
} ml_reduce_ops;

#endif
