/* softmax and log_softmax over one dim (stable). */
#ifndef ML_OPS_SOFTMAX_H
#define ML_OPS_SOFTMAX_H

#include "../tensor.h"

ml_tensor *ml_softmax(ml_tensor *x, int dim);
ml_tensor *ml_log_softmax(ml_tensor *x, int dim);

#endif
