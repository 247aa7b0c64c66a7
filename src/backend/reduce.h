/* Backend family: reductions, one line each.
 *
 * Contract: x is contiguous and seen as [outer, n, inner]; the reduction runs over
 * n and writes out [outer, inner] (contiguous; n may be 0 for the ops whose `empty`
 * column allows it). max/min with a dim also write the
 * position (0-based, int64) of the first extreme into idx when idx is not NULL;
 * argmax/argmin write int64 positions into out. A NaN wins max/min (torch).
 *
 * ML_REDUCE_OPS(X): X(NAME, name, Node, result, empty, backward, saves)
 *   NAME      the enum tail: ML_RED_<NAME>
 *   name      the PyTorch and Lua name (t:sum(dim)), and the kernel's entry in
 *             ml_reduce_ops: each backend defines <prefix><name> (cpu_reduce_sum)
 *   Node      the autograd node's name is "<Node>Backward"
 *   result    sum: the input's dtype, integers summed into int64; float: a float
 *             dtype (an integer input is an error); same: the input's dtype;
 *             index: int64 positions; mask: uint8 0/1 (all, any)
 *   empty     1: a dim of size 0 reduces (sum 0, mean NaN, logsumexp -inf, all 1,
 *             any 0); 0: it is an error (the max of nothing)
 *   backward  the rule in src/ops/reduce.c, or NULL (not differentiable)
 *   saves     what the rule reads: none (the count of elements reduced into each
 *             output, as a number), xy (input and output), picked (over a dim the positions picked; over all elements
 *             the input and output, ties sharing the gradient)
 *
 * ORDER: entries may be reordered freely; nothing depends on their positions. */
#ifndef ML_BACKEND_REDUCE_H
#define ML_BACKEND_REDUCE_H

#include "../tensor.h"

/* clang-format off */
#define ML_REDUCE_OPS(X)                                                                   \
    X(SUM,       sum,       Sum,       sum,   1, sum_backward,       none)                 \
    X(MEAN,      mean,      Mean,      float, 1, mean_backward,      none)                 \
    X(MAX,       max,       Max,       same,  0, extreme_backward,   picked)               \
    X(MIN,       min,       Min,       same,  0, extreme_backward,   picked)               \
    X(ARGMAX,    argmax,    Argmax,    index, 0, NULL,               none)                 \
    X(ARGMIN,    argmin,    Argmin,    index, 0, NULL,               none)                 \
    X(LOGSUMEXP, logsumexp, Logsumexp, float, 1, logsumexp_backward, xy)                   \
    X(ALL,       all,       All,       mask,  1, NULL,               none)                 \
    X(ANY,       any,       Any,       mask,  1, NULL,               none)
/* all/any: whether every / some element is nonzero (a NaN is nonzero, as in torch) */
/* clang-format on */

#define ML_RED_ENUM_(NAME, ...) ML_RED_##NAME,
typedef enum { ML_REDUCE_OPS(ML_RED_ENUM_) ML_RED_COUNT } ml_reduce_op;
#undef ML_RED_ENUM_

#define ML_RED_CASE_NAME_(NAME, name, ...) case ML_RED_##NAME: return #name;
#define ML_RED_CASE_NODE_(NAME, name, Node, ...) case ML_RED_##NAME: return #Node "Backward";
#define ML_RED_CASE_EMPTY_(NAME, name, Node, result, empty, ...) case ML_RED_##NAME: return empty;
/* The reduction's name ("sum"), or "?" for a value outside the enum. */
static inline const char *ml_reduce_name(ml_reduce_op op) {
    switch (op) { ML_REDUCE_OPS(ML_RED_CASE_NAME_) default: return "?"; }
}
/* The autograd node's name ("SumBackward"). */
static inline const char *ml_reduce_node_name(ml_reduce_op op) {
    switch (op) { ML_REDUCE_OPS(ML_RED_CASE_NODE_) default: return "?"; }
}
/* 1 when a dim of size 0 may be reduced. */
static inline int ml_reduce_empty_ok(ml_reduce_op op) {
    switch (op) { ML_REDUCE_OPS(ML_RED_CASE_EMPTY_) default: return 0; }
}

/* The family's entries: one kernel per reduction of the list, all of this type,
 * named by the list (a missing kernel is an undeclared identifier). */
typedef int ml_reduce_kernel(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner,
                             ml_tensor *out, ml_tensor *idx);
#define ML_REDUCE_FIELD_(NAME, name, ...) ml_reduce_kernel *name;
typedef struct ml_reduce_ops {
    ML_REDUCE_OPS(ML_REDUCE_FIELD_)
} ml_reduce_ops;
#undef ML_REDUCE_FIELD_

/* A backend defines its table from the list with its own prefix:
 *   #define ENTRY(NAME, name, ...) cpu_reduce_##name,
 *   const ml_reduce_ops ml_cpu_reduce = {ML_REDUCE_OPS(ENTRY)}; */

#endif
