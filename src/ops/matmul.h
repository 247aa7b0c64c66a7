/* Matrix products. */
#ifndef ML_OPS_MATMUL_H
#define ML_OPS_MATMUL_H

#include "../tensor.h"

/* torch.matmul for 1-D, 2-D and batched (3-D and up, batch dims broadcast) */
ml_tensor *ml_matmul(ml_tensor *a, ml_tensor *b);
/* x @ weight^T + bias in one fused gemm (bias may be NULL), as nn.Linear */
ml_tensor *ml_linear(ml_tensor *x, ml_tensor *weight, ml_tensor *bias);

#endif
