/* Elementwise ops with NumPy broadcasting and PyTorch's type promotion. */
#ifndef ML_OPS_ELEMENTWISE_H
#define ML_OPS_ELEMENTWISE_H

#include "../backend/elementwise.h"
#include "../tensor.h"

/* op(a, b) of ML_BINARY_OPS (backend/elementwise_ops.h): NumPy broadcasting, torch's
 * promotion (an op of the float domain computes integers in float32), uint8 for a
 * mask op, and autograd when the list names a rule. An integer floor_divide by zero
 * is an error. */
ml_tensor *ml_binary(ml_binary_op op, ml_tensor *a, ml_tensor *b);
ml_tensor *ml_add(ml_tensor *a, ml_tensor *b);
ml_tensor *ml_sub(ml_tensor *a, ml_tensor *b);
ml_tensor *ml_mul(ml_tensor *a, ml_tensor *b);
ml_tensor *ml_div(ml_tensor *a, ml_tensor *b);
ml_tensor *ml_pow(ml_tensor *a, ml_tensor *b);
/* op(x) of ML_UNARY_OPS: in x's dtype, or float32 for an integer x and an op of the
 * float domain (uint8 for a mask op, which is not differentiable); its backward is
 * the list's rule, one kernel. ml_unary takes the op's default parameters,
 * ml_unary_with the given ones (params: ml_unary_n_params(op) numbers in the list's
 * order; NULL: the defaults). */
ml_tensor *ml_unary(ml_unary_op op, ml_tensor *x);
ml_tensor *ml_unary_with(ml_unary_op op, ml_tensor *x, const double *params);
ml_tensor *ml_neg(ml_tensor *x);
ml_tensor *ml_clamp(ml_tensor *x, double lo, double hi);  /* NAN: no bound */
ml_tensor *ml_pow_scalar(ml_tensor *x, double p);
/* x * s + 0 computed as one op: ml_add_scalar and ml_mul_scalar keep x's dtype */
ml_tensor *ml_mul_scalar(ml_tensor *x, double s);
ml_tensor *ml_add_scalar(ml_tensor *x, double s);
ml_tensor *ml_where(ml_tensor *cond, ml_tensor *a, ml_tensor *b);
/* x with value (a 0-dim tensor, cast to x's dtype) where mask (uint8, broadcast to
 * x's shape; x never broadcasts to the mask's) is nonzero, as torch.masked_fill.
 * Differentiable in x and value. */
ml_tensor *ml_masked_fill(ml_tensor *x, ml_tensor *mask, ml_tensor *value);

/* A 0-dim tensor holding v. */
ml_tensor *ml_scalar(double v, ml_dtype dt, ml_device dev);
/* The dtype PyTorch gives a op(a, b) (0-dim tensors don't lift a dim-ful one's
 * dtype within the same kind, float or integer). */
ml_dtype ml_result_type(const ml_tensor *a, const ml_tensor *b);

/* dst += src (src broadcast to dst's shape); no autograd: grad accumulation. */
int ml_add_inplace(ml_tensor *dst, ml_tensor *src);
/* dst = src broadcast into dst's shape, cast to dst's dtype; no autograd. */
int ml_copy_(ml_tensor *dst, const ml_tensor *src);
int ml_fill_(ml_tensor *dst, double v);

/* A contiguous copy without autograd history. */
ml_tensor *ml_contiguous_copy(const ml_tensor *t);
/* t itself (a new reference) when contiguous, else a contiguous copy; no autograd:
 * what kernels that need contiguous inputs take, without a needless copy. */
ml_tensor *ml_as_contiguous(const ml_tensor *t);
/* t itself (a new reference) when contiguous, else a differentiable copy. */
ml_tensor *ml_contiguous(ml_tensor *t);
/* Differentiable dtype cast (t itself when the dtype is already dt). */
ml_tensor *ml_cast(ml_tensor *t, ml_dtype dt);
/* Differentiable copy to another device (t itself when already there). */
ml_tensor *ml_to_device(ml_tensor *t, ml_device dev);
/* A tensor without autograd history sharing t's data (torch's detach). */
ml_tensor *ml_detach(ml_tensor *t);

/* Checks that tensors are on one device; fname names the op in the message. */
int ml_check_same_device(const char *fname, const ml_tensor *a, const ml_tensor *b);

#endif
