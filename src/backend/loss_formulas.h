/* The elementwise losses' formulas, once, for every backend: the per-element loss
 * and its gradient of each elementwise loss kind, and the constants they use
 * (PyTorch 1.13's, aten/src/ATen/native/Loss.cpp and its kernels, edge cases
 * included). Compiled by the C compiler (src/cpu/loss_elementwise.c) and by nvcc
 * (kernels/loss.cu), so the CPU and the GPU cannot drift apart.
 *
 * Each function exists for float and double, from one text (loss_formulas_t.h,
 * included once per type): in C they are named with a suffix (ml_l1_loss_f,
 * ml_l1_loss_d; ML_LOSS_FN(ml_l1_loss) names the one of the type being compiled,
 * where ML_LOSS_SUF is defined), in C++ they are overloads of one name
 * (ml_l1_loss(x, t) picks by the argument type, so CUDA templates call them as
 * they are). The arithmetic is in the element's type, as the kernels have always
 * done it, with the float or double function of libm / the CUDA math library
 * (logf for float, log for double). */
#ifndef ML_BACKEND_LOSS_FORMULAS_H
#define ML_BACKEND_LOSS_FORMULAS_H

#include <math.h>
#include <stdbool.h>

/* `__host__ __device__` under nvcc (the functions run in kernels and may be called
 * from host code), nothing in C. */
#ifndef ML_HOST_DEVICE
#if defined(__CUDACC__)
#define ML_HOST_DEVICE __host__ __device__
#else
#define ML_HOST_DEVICE
#endif
#endif

/* ln(2 pi): gaussian_nll_loss with full = true adds half of it */
#define ML_LOSS_LN_2PI 1.8378770664093454835606594728112
/* 2 pi: poisson_nll_loss's Stirling term */
#define ML_LOSS_2PI 6.283185307179586476925286766559
/* binary_cross_entropy's backward: the floor of x (1 - x) (torch's EPSILON) */
#define ML_LOSS_BCE_EPS 1e-12
/* binary_cross_entropy's forward: the floor of its logs (torch clamps at -100) */
#define ML_LOSS_LOG_MIN (-100)

#define ML_LOSS_CAT_(a, b) a##_##b
#define ML_LOSS_CAT(a, b) ML_LOSS_CAT_(a, b)
#if defined(__cplusplus)
#define ML_LOSS_FN(name) name
#else
#define ML_LOSS_FN(name) ML_LOSS_CAT(name, ML_LOSS_SUF)
#endif

#define T float
#define ML_LOSS_SUF f
#define ML_LOSS_M(fn) fn##f
#include "loss_formulas_t.h"
#undef T
#undef ML_LOSS_SUF
#undef ML_LOSS_M

#define T double
#define ML_LOSS_SUF d
#define ML_LOSS_M(fn) fn
#include "loss_formulas_t.h"
#undef T
#undef ML_LOSS_SUF
#undef ML_LOSS_M

#endif
