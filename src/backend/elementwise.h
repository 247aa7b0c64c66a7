/* Backend family: elementwise ops.
 *
 * Contract: out is a fresh contiguous tensor; every input already has out's shape,
 * broadcast dims carried as stride 0 (ops/elementwise.c expands them), and the
 * dtype the op computes in (ops cast first). out may be the same tensor as an input
 * (in-place accumulation) when both are contiguous. Kernels return 0 or -1. */
#ifndef ML_BACKEND_ELEMENTWISE_H
#define ML_BACKEND_ELEMENTWISE_H

#include "../tensor.h"

typedef enum {
    ML_UN_NEG, ML_UN_EXP, ML_UN_LOG, ML_UN_LOG1P, ML_UN_ABS, ML_UN_SQRT, ML_UN_SQUARE,
    ML_UN_SIGN, ML_UN_RELU, ML_UN_SIGMOID, ML_UN_TANH, ML_UN_RECIPROCAL,
    ML_UN_COUNT
} ml_unary_op;

typedef enum {
    ML_BIN_ADD, ML_BIN_SUB, ML_BIN_MUL, ML_BIN_DIV, ML_BIN_POW,
    ML_BIN_MAXIMUM, ML_BIN_MINIMUM,
    /* comparisons: out is uint8 (0/1), inputs share a dtype */
    ML_BIN_EQ, ML_BIN_NE, ML_BIN_LT, ML_BIN_LE, ML_BIN_GT, ML_BIN_GE,
    /* fused backward rules: a is the upstream gradient, b the saved tensor */
    ML_BIN_RELU_BACKWARD,     /* a * (b > 0), b = input */
    ML_BIN_SIGMOID_BACKWARD,  /* a * b * (1 - b), b = output */
    ML_BIN_TANH_BACKWARD,     /* a * (1 - b * b), b = output */
    ML_BIN_COUNT
} ml_binary_op;

typedef struct ml_elementwise_ops {
    int (*unary)(ml_unary_op op, const ml_tensor *x, ml_tensor *out);
    int (*binary)(ml_binary_op op, const ml_tensor *a, const ml_tensor *b, ml_tensor *out);
    /* out = a + alpha * b (grad accumulation, sub with alpha = -1) */
    int (*axpy)(const ml_tensor *a, double alpha, const ml_tensor *b, ml_tensor *out);
    /* out = min(max(x, lo), hi); NaN bounds mean "no bound" */
    int (*clamp)(const ml_tensor *x, double lo, double hi, ml_tensor *out);
    /* grad of clamp: g where lo <= x <= hi, else 0 */
    int (*clamp_backward)(const ml_tensor *g, const ml_tensor *x, double lo, double hi,
                          ml_tensor *out);
    /* out = x ^ p and its rule g * p * x^(p-1), p a number */
    int (*pow_scalar)(const ml_tensor *x, double p, ml_tensor *out);
    int (*pow_scalar_backward)(const ml_tensor *g, const ml_tensor *x, double p, ml_tensor *out);
    int (*fill)(ml_tensor *out, double value);
    /* dst (any strides, any dtype) = src (same shape, any strides, any dtype) */
    int (*copy)(const ml_tensor *src, ml_tensor *dst);
    /* out = cond ? a : b, cond uint8 */
    int (*where)(const ml_tensor *cond, const ml_tensor *a, const ml_tensor *b, ml_tensor *out);
} ml_elementwise_ops;

#endif
