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
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"
/* issue 16, layers (branch l3) */
#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/norm.h"

#endif
