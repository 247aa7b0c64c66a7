/* Device-agnostic ops: shape checks, output allocation, autograd, and dispatch
 * through the backend op table. Every op returns a new reference (the caller
 * releases it) or NULL with ml_error set; inputs are borrowed, never consumed.
 * One header per family under ops/. */
#ifndef ML_OPS_H
#define ML_OPS_H

#include "ops/cat.h"
#include "ops/creation.h"
#include "ops/data.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/index.h"
#include "ops/matmul.h"
#include "ops/optim.h"
#include "ops/pad.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#include "ops/sort.h"
/* convolution, pooling, batch norm (issue 16) */
#include "ops/batchnorm.h"
#include "ops/conv.h"
#include "ops/pool.h"
/* normalisation, embeddings (issue 16) */
#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/norm.h"

#endif
