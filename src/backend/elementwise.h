/* Backend family: elementwise ops. The ops themselves are listed in
 * elementwise_ops.h (ML_UNARY_OPS, ML_BINARY_OPS); this is the table that both
 * backends implement.
 *
 * Contract: out is a fresh contiguous tensor; every input already has out's shape,
 * broadcast dims carried as stride 0 (ops/elementwise.c expands them), and the
 * dtype the op computes in (ops cast first). out may be the same tensor as an input
 * (in-place accumulation) when both are contiguous. Kernels return 0 or -1. */
#ifndef ML_BACKEND_ELEMENTWISE_H
#define ML_BACKEND_ELEMENTWISE_H

#include "../tensor.h"
#include "elementwise_ops.h"
#include "table.h"

/* The family's entries (see table.h):
 *  - unary: out = op(x), x of a dtype the op's domain allows (else -1 naming it);
 *    out uint8 for a mask op. params: the op's numbers in the list's order
 *    (ML_UN_MAX_PARAMS of them; NULL: the list's defaults).
 *  - unary_backward: out = the op's gradient rule of g, and of x (the op's input)
 *    and y (its output) where the list says the rule reads them; each is NULL
 *    when it does not. g, x, y, out of one float dtype; params as for unary. One
 *    fused pass. A mask op has none (-1).
 *  - binary: out = op(a, b), a and b of one dtype; out uint8 for a mask op.
 *  - axpy: out = a + alpha * b (grad accumulation, sub with alpha = -1).
 *  - clamp: out = min(max(x, lo), hi); NaN bounds mean "no bound"; a NaN x stays.
 *  - clamp_backward: g where lo <= x <= hi, else 0.
 *  - pow_scalar: out = x ^ p, p a number; pow_scalar_backward: g * p * x^(p-1).
 *  - fill: every element of out (any strides) = value.
 *  - copy: dst (any strides, any dtype) = src (same shape, any strides, any dtype).
 *  - where: out = cond ? a : b, cond uint8. */
#define ML_ELEMENTWISE_ENTRIES(X, P)                                                     \
    X(P, int, unary,                                                                     \
      (ml_unary_op op, const double *params, const ml_tensor *x, ml_tensor *out))         \
    X(P, int, unary_backward,                                                            \
      (ml_unary_op op, const double *params, const ml_tensor *g, const ml_tensor *x,     \
       const ml_tensor *y, ml_tensor *out))                                              \
    X(P, int, binary, (ml_binary_op op, const ml_tensor *a, const ml_tensor *b, ml_tensor *out)) \
    X(P, int, axpy, (const ml_tensor *a, double alpha, const ml_tensor *b, ml_tensor *out)) \
    X(P, int, clamp, (const ml_tensor *x, double lo, double hi, ml_tensor *out))          \
    X(P, int, clamp_backward,                                                            \
      (const ml_tensor *g, const ml_tensor *x, double lo, double hi, ml_tensor *out))     \
    X(P, int, pow_scalar, (const ml_tensor *x, double p, ml_tensor *out))                 \
    X(P, int, pow_scalar_backward,                                                       \
      (const ml_tensor *g, const ml_tensor *x, double p, ml_tensor *out))                 \
    X(P, int, fill, (ml_tensor * out, double value))                                     \
    X(P, int, copy, (const ml_tensor *src, ml_tensor *dst))                               \
    X(P, int, where,                                                                     \
      (const ml_tensor *cond, const ml_tensor *a, const ml_tensor *b, ml_tensor *out))

typedef struct ml_elementwise_ops {
    ML_ELEMENTWISE_ENTRIES(ML_BACKEND_FIELD, _)
} ml_elementwise_ops;

#endif
