/* Strided iteration for CPU kernels: up to four tensors of one shape in row-major
 * order, with dims merged where their strides allow, so that the inner loop is as
 * long as possible and usually unit-stride (ml_cpu_map, map.h, walks them). */
#ifndef ML_CPU_ITER_H
#define ML_CPU_ITER_H

#include "../tensor.h"

#define ML_ITER_MAX 4

typedef struct {
    int ndim;                          /* after merging; inner dim is ndim - 1 */
    int64_t shape[ML_MAX_DIMS];
    int64_t strides[ML_ITER_MAX][ML_MAX_DIMS];
    int n;                             /* tensors */
} ml_iter;

/* Prepares an iteration over n tensors of t[0]'s shape (the others have it too). */
void ml_iter_init(ml_iter *it, int n, const ml_tensor *const *t);

#endif
