/* CPU kernels of the elementwise losses (mse_loss .. gaussian_nll_loss): one fused
 * loop forward (the per-element loss and its sum, in double, by fixed blocks) and
 * one fused loop backward (the gradient already scaled by grad_out and the mean's
 * divisor), no temporaries; and the family's scale_grad. The formulas are
 * loss_formulas.h's (PyTorch 1.13's), shared with the CUDA kernels. The body is
 * loss_elementwise_t.h, compiled here once per element type. */
#include <stdlib.h>

#include "../error.h"
#include "loss_cpu.h"

#define T float
#define ML_LOSS_SUF f
#include "loss_elementwise_t.h"
#undef T
#undef ML_LOSS_SUF

#define T double
#define ML_LOSS_SUF d
#include "loss_elementwise_t.h"
#undef T
#undef ML_LOSS_SUF
