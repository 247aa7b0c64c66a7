/* The elementwise ops, one line each: the only place an elementwise op is defined.
 *
 * Compiled by the C compiler and by nvcc. Everything per op is expanded from these
 * two lists: the enums, the names, the autograd nodes (src/ops/elementwise.c), the
 * CPU's typed loops and dispatch tables (src/cpu/elementwise.c), the CUDA functors
 * and dispatch (kernels/elementwise.cu), and the Lua functions and methods
 * (src/lua/elementwise.c). A backend cannot miss an op: it expands the same list.
 * docs/ARCHITECTURE.md, "How to add an op", shows adding one.
 *
 * ML_UNARY_OPS(X): X(NAME, name, Node, domain, result, params, forward, backward, saves)
 *   NAME      the enum tail: ML_UN_<NAME>
 *   name      the PyTorch and Lua name: t:name(), ml.name(t); "<name>" in errors
 *   Node      the autograd node's name is "<Node>Backward"
 *   domain    float: computed in a float dtype (an integer input is cast to float32
 *             first, as torch's sqrt(int) gives a float); any: in the input's dtype
 *             (float32, float64, int64, uint8; integer results wrap as C's do)
 *   result    same: the computing dtype; mask: uint8 0/1 (isnan), and the op is not
 *             differentiable (its backward is 0 and saves none: nothing reads them)
 *   params    the op's numbers, each with PyTorch's default: none, p1(name, default)
 *             or p2(name, default, name, default). The expressions read them by
 *             their names as values of T; ml_unary_with passes them (NULL: the
 *             defaults), and the Lua face takes them positionally or by name:
 *             t:leaky_relu(0.2), t:softplus({beta = 2}). p1 and p2 are not macros:
 *             each consumer pastes its own prefix onto them (ML_UNP_BIND_p1, ...).
 *   forward   the output element: an expression of x, the input element
 *   backward  the input's gradient element: an expression of g (the output's
 *             gradient) and of what `saves` names; one fused kernel in each backend
 *   saves     what backward reads (autograd keeps it): x (the input), y (the
 *             output), xy, or none. Naming a tensor that is not saved is a compile
 *             error (the backends declare only the saved ones).
 *
 * ML_BINARY_OPS(X): X(NAME, name, Node, domain, result, forward, backward, saves)
 *   NAME, name, Node, domain as above (domain float: div and pow of integers
 *             give float32, as torch's true division)
 *   result    same: the operands' promoted dtype; mask: uint8 0/1 (comparisons)
 *   forward   an expression of a and b (the operands' elements, broadcast)
 *   backward  the function of src/ops/elementwise.c that gives both gradients (it
 *             sums a broadcast gradient back to its input's shape), or NULL: the
 *             result is not differentiable (as torch's comparisons, floor_divide)
 *   saves     what that function reads: none, ab (both operands), aby (and the output)
 *
 * Expressions are C and CUDA C++ at once. T is the element type; integer literals
 * convert to it (write (T)0.5 for a fraction: a double literal would lift float32
 * arithmetic to double). Math goes through helpers that each backend defines for
 * every element type an op's domain allows: ml_exp, ml_expm1, ml_log, ml_log1p,
 * ml_sqrt, ml_tanh, ml_erf, ml_sin, ml_cos, ml_power, ml_abs, ml_sign, ml_isnan,
 * ml_isinf, ml_floordiv (CPU:
 * C11 _Generic in src/cpu/scalar_math.h; CUDA: overloads in kernels/common.cuh). A
 * helper one backend lacks is a compile error there.
 *
 * ORDER: entries may be reordered freely; nothing depends on their positions. */
#ifndef ML_BACKEND_ELEMENTWISE_OPS_H
#define ML_BACKEND_ELEMENTWISE_OPS_H

#include <stddef.h>

/* clang-format off */
#define ML_UNARY_OPS(X)                                                                          \
    X(NEG,        neg,        Neg,        any,   same, none, -x,          -g,              none) \
    X(EXP,        exp,        Exp,        float, same, none, ml_exp(x),   g * y,           y)    \
    X(LOG,        log,        Log,        float, same, none, ml_log(x),   g / x,           x)    \
    X(LOG1P,      log1p,      Log1p,      float, same, none, ml_log1p(x), g / (x + 1),     x)    \
    X(ABS,        abs,        Abs,        any,   same, none, ml_abs(x),   g * ml_sign(x),  x)    \
    X(SQRT,       sqrt,       Sqrt,       float, same, none, ml_sqrt(x),  g / (y * 2),     y)    \
    X(SQUARE,     square,     Square,     any,   same, none, x * x,       g * (x * 2),     x)    \
    X(SIGN,       sign,       Sign,       any,   same, none, ml_sign(x),  0,               none) \
    X(RELU,       relu,       Relu,       any,   same, none, x <= 0 ? 0 : x, y <= 0 ? 0 : g, y)  \
    X(SIGMOID,    sigmoid,    Sigmoid,    float, same, none, 1 / (1 + ml_exp(-x)),             \
      g * y * (1 - y), y)                                                                        \
    X(TANH,       tanh,       Tanh,       float, same, none, ml_tanh(x),  g * (1 - y * y), y)    \
    X(RECIPROCAL, reciprocal, Reciprocal, float, same, none, 1 / x,       -(g * (y * y)),  y)    \
    X(SIN,        sin,        Sin,        float, same, none, ml_sin(x),   g * ml_cos(x),   x)    \
    X(COS,        cos,        Cos,        float, same, none, ml_cos(x),   g * -ml_sin(x),  x)    \
    X(GELU,       gelu,       Gelu,       float, same, p1(approximate, 0),                     \
      approximate == 0 ? x * (T)0.5 * (1 + ml_erf(x * (T)ML_SQRT1_2_))                           \
                       : (T)0.5 * x * (1 + ml_tanh(ML_GELU_TANH_ARG_(x))),                       \
      approximate == 0                                                                           \
          ? g * ((T)0.5 * (1 + ml_erf(x * (T)ML_SQRT1_2_))                                       \
                 + x * (T)ML_INV_SQRT_2PI_ * ml_exp(x * x * (T)-0.5))                            \
          : g * ((T)0.5 * (1 + ml_tanh(ML_GELU_TANH_ARG_(x)))                                    \
                 + (T)0.5 * x * (1 - ml_tanh(ML_GELU_TANH_ARG_(x)) * ml_tanh(ML_GELU_TANH_ARG_(x))) \
                       * (T)ML_SQRT_2_OVER_PI_ * (1 + (T)(3 * ML_GELU_KAPPA_) * x * x)),         \
      x)                                                                                         \
    X(SILU,       silu,       Silu,       float, same, none, x / (1 + ml_exp(-x)),             \
      g * (1 / (1 + ml_exp(-x))) * (1 + x * (1 - 1 / (1 + ml_exp(-x)))), x)                      \
    X(LEAKY_RELU, leaky_relu, LeakyRelu,  float, same, p1(negative_slope, 0.01),               \
      x > 0 ? x : x * negative_slope, x > 0 ? g : g * negative_slope, x)                         \
    X(ELU,        elu,        Elu,        float, same, p1(alpha, 1),                           \
      x <= 0 ? alpha * ml_expm1(x) : x, x <= 0 ? g * alpha * ml_exp(x) : g, x)                   \
    X(SOFTPLUS,   softplus,   Softplus,   float, same, p2(beta, 1, threshold, 20),             \
      x * beta > threshold ? x : ml_log1p(ml_exp(x * beta)) / beta,                              \
      x * beta > threshold ? g : g * ml_exp(x * beta) / (ml_exp(x * beta) + 1), x)               \
    X(ISNAN,      isnan,      Isnan,      any,   mask, none, ml_isnan(x), 0,               none) \
    X(ISINF,      isinf,      Isinf,      any,   mask, none, ml_isinf(x), 0,               none)
/* relu: x <= 0 ? 0 : x keeps a NaN (torch's clamp_min(x, 0); issue 17 item 1f), and
 * its gradient passes g where y is NaN, as torch's threshold_backward.
 * gelu: approximate 0 is PyTorch's "none" (the erf form), 1 its "tanh"; ml.F.gelu and
 * nn.GELU take the strings. The activations' formulas, comparisons and gradients are
 * those of PyTorch 1.13's CPU kernels (elu and softplus read the input, as torch's
 * non-inplace backward does; softplus is x where x * beta > threshold). */
/* the constants of gelu's formulas (double literals: each use casts to T) */
#define ML_SQRT1_2_ 0.70710678118654752440        /* 1 / sqrt(2) */
#define ML_INV_SQRT_2PI_ 0.39894228040143267794   /* 1 / sqrt(2 pi) */
#define ML_SQRT_2_OVER_PI_ 0.79788456080286535588 /* sqrt(2 / pi) */
#define ML_GELU_KAPPA_ 0.044715
/* the tanh form's argument, sqrt(2 / pi) * (x + 0.044715 x^3) */
#define ML_GELU_TANH_ARG_(x) ((T)ML_SQRT_2_OVER_PI_ * ((x) + (T)ML_GELU_KAPPA_ * (x) * (x) * (x)))

#define ML_BINARY_OPS(X)                                                                         \
    X(ADD,          add,          Add,         any,   same, a + b,     add_backward,     none) \
    X(SUB,          sub,          Sub,         any,   same, a - b,     sub_backward,     none) \
    X(MUL,          mul,          Mul,         any,   same, a * b,     mul_backward,     ab)   \
    X(DIV,          div,          Div,         float, same, a / b,     div_backward,     ab)   \
    X(POW,          pow,          Pow,         float, same, ml_power(a, b), pow_backward, aby) \
    X(MAXIMUM,      maximum,      Maximum,     any,   same, ml_isnan(a) || a > b ? a : b,      \
      maximum_backward, ab)                                                                      \
    X(MINIMUM,      minimum,      Minimum,     any,   same, ml_isnan(a) || a < b ? a : b,      \
      minimum_backward, ab)                                                                      \
    X(FLOOR_DIVIDE, floor_divide, FloorDivide, any,   same, ml_floordiv(a, b), NULL,     none) \
    X(EQ,           eq,           Eq,          any,   mask, a == b,    NULL,             none) \
    X(NE,           ne,           Ne,          any,   mask, a != b,    NULL,             none) \
    X(LT,           lt,           Lt,          any,   mask, a < b,     NULL,             none) \
    X(LE,           le,           Le,          any,   mask, a <= b,    NULL,             none) \
    X(GT,           gt,           Gt,          any,   mask, a > b,     NULL,             none) \
    X(GE,           ge,           Ge,          any,   mask, a >= b,    NULL,             none)
/* maximum/minimum: a NaN in either operand wins, as torch.maximum. floor_divide:
 * torch's (Python's) floor rounding; an integer division by zero is an error that
 * src/ops/elementwise.c raises before the kernel runs (the kernel gives 0 there). */
/* clang-format on */

/* --- what is generated for everyone ---------------------------------------- */

#define ML_UN_ENUM_(NAME, ...) ML_UN_##NAME,
#define ML_BIN_ENUM_(NAME, ...) ML_BIN_##NAME,
typedef enum { ML_UNARY_OPS(ML_UN_ENUM_) ML_UN_COUNT } ml_unary_op;
typedef enum { ML_BINARY_OPS(ML_BIN_ENUM_) ML_BIN_COUNT } ml_binary_op;
#undef ML_UN_ENUM_
#undef ML_BIN_ENUM_

/* Column values as numbers (pasted: ML_FLOAT_ONLY_##domain, ...). */
#define ML_FLOAT_ONLY_float 1
#define ML_FLOAT_ONLY_any 0
#define ML_SAVES_X_x 1
#define ML_SAVES_X_y 0
#define ML_SAVES_X_xy 1
#define ML_SAVES_X_none 0
#define ML_SAVES_Y_x 0
#define ML_SAVES_Y_y 1
#define ML_SAVES_Y_xy 1
#define ML_SAVES_Y_none 0
#define ML_IS_MASK_same 0
#define ML_IS_MASK_mask 1

/* The params column (none, p1(name, default), p2(name, default, name, default)),
 * pasted onto a prefix: how many, their names and defaults, and ML_UNP_BIND_##params,
 * which declares each parameter under its name as a const T from p0_ and p1_ (what
 * a backend has in scope where it expands an expression: the CPU's element
 * functions take them as arguments, the CUDA functors hold them). */
#define ML_UN_MAX_PARAMS 2
#define ML_UNP_COUNT_none 0
#define ML_UNP_COUNT_p1(n0, d0) 1
#define ML_UNP_COUNT_p2(n0, d0, n1, d1) 2
#define ML_UNP_NAMES_none {NULL, NULL}
#define ML_UNP_NAMES_p1(n0, d0) {#n0, NULL}
#define ML_UNP_NAMES_p2(n0, d0, n1, d1) {#n0, #n1}
#define ML_UNP_DEFAULTS_none {0, 0}
#define ML_UNP_DEFAULTS_p1(n0, d0) {d0, 0}
#define ML_UNP_DEFAULTS_p2(n0, d0, n1, d1) {d0, d1}
#define ML_UNP_BIND_none (void)p0_, (void)p1_;
#define ML_UNP_BIND_p1(n0, d0) const T n0 = (T)p0_; (void)n0, (void)p1_;
#define ML_UNP_BIND_p2(n0, d0, n1, d1) const T n0 = (T)p0_, n1 = (T)p1_; (void)n0, (void)n1;

/* One switch over a list: CASE_(NAME, value-expression) for each op. */
#define ML_UN_CASE_NAME_(NAME, name, ...) case ML_UN_##NAME: return #name;
#define ML_UN_CASE_NODE_(NAME, name, Node, ...) case ML_UN_##NAME: return #Node "Backward";
#define ML_UN_CASE_FLOAT_(NAME, name, Node, domain, ...) \
    case ML_UN_##NAME: return ML_FLOAT_ONLY_##domain;
#define ML_UN_CASE_SX_(NAME, name, Node, domain, result, params, fwd, bwd, saves) \
    case ML_UN_##NAME: return ML_SAVES_X_##saves;
#define ML_UN_CASE_SY_(NAME, name, Node, domain, result, params, fwd, bwd, saves) \
    case ML_UN_##NAME: return ML_SAVES_Y_##saves;
#define ML_UN_CASE_MASK_(NAME, name, Node, domain, result, ...) \
    case ML_UN_##NAME: return ML_IS_MASK_##result;
#define ML_UN_CASE_NPARAMS_(NAME, name, Node, domain, result, params, ...) \
    case ML_UN_##NAME: return ML_UNP_COUNT_##params;
#define ML_UN_CASE_PNAME_(NAME, name, Node, domain, result, params, ...) \
    case ML_UN_##NAME: { static const char *const n_[2] = ML_UNP_NAMES_##params; return n_[i]; }
#define ML_UN_CASE_PDEFAULT_(NAME, name, Node, domain, result, params, ...) \
    case ML_UN_##NAME: { static const double d_[2] = ML_UNP_DEFAULTS_##params; return d_[i]; }
#define ML_BIN_CASE_NAME_(NAME, name, ...) case ML_BIN_##NAME: return #name;
#define ML_BIN_CASE_NODE_(NAME, name, Node, ...) case ML_BIN_##NAME: return #Node "Backward";
#define ML_BIN_CASE_FLOAT_(NAME, name, Node, domain, ...) \
    case ML_BIN_##NAME: return ML_FLOAT_ONLY_##domain;
#define ML_BIN_CASE_MASK_(NAME, name, Node, domain, result, ...) \
    case ML_BIN_##NAME: return ML_IS_MASK_##result;

/* The op's name ("relu"), or "?" for a value outside the enum. */
static inline const char *ml_unary_name(ml_unary_op op) {
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_NAME_) default: return "?"; }
}
/* The autograd node's name ("ReluBackward"). */
static inline const char *ml_unary_node_name(ml_unary_op op) {
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_NODE_) default: return "?"; }
}
/* 1 when the op computes in a float dtype only (integers are cast to float32). */
static inline int ml_unary_float_only(ml_unary_op op) {
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_FLOAT_) default: return 1; }
}
/* 1 when the backward reads the input x / the output y (both kept by autograd). */
static inline int ml_unary_saves_x(ml_unary_op op) {
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_SX_) default: return 0; }
}
static inline int ml_unary_saves_y(ml_unary_op op) {
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_SY_) default: return 0; }
}
/* 1 when the result is a uint8 mask (isnan): not differentiable. */
static inline int ml_unary_is_mask(ml_unary_op op) {
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_MASK_) default: return 0; }
}
/* How many numbers the op takes (0..ML_UN_MAX_PARAMS), the i-th one's name (NULL
 * past the last) and its default (PyTorch's). */
static inline int ml_unary_n_params(ml_unary_op op) {
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_NPARAMS_) default: return 0; }
}
static inline const char *ml_unary_param_name(ml_unary_op op, int i) {
    if (i < 0 || i >= ML_UN_MAX_PARAMS) return NULL;
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_PNAME_) default: return NULL; }
}
static inline double ml_unary_param_default(ml_unary_op op, int i) {
    if (i < 0 || i >= ML_UN_MAX_PARAMS) return 0;
    switch (op) { ML_UNARY_OPS(ML_UN_CASE_PDEFAULT_) default: return 0; }
}
/* The op's parameters into p[ML_UN_MAX_PARAMS]: given (NULL: the defaults), and 0
 * past the op's own. What the kernels read. */
static inline void ml_unary_params(ml_unary_op op, const double *given, double *p) {
    for (int i = 0; i < ML_UN_MAX_PARAMS; i++)
        p[i] = i >= ml_unary_n_params(op) ? 0 : given ? given[i] : ml_unary_param_default(op, i);
}

static inline const char *ml_binary_name(ml_binary_op op) {
    switch (op) { ML_BINARY_OPS(ML_BIN_CASE_NAME_) default: return "?"; }
}
static inline const char *ml_binary_node_name(ml_binary_op op) {
    switch (op) { ML_BINARY_OPS(ML_BIN_CASE_NODE_) default: return "?"; }
}
static inline int ml_binary_float_only(ml_binary_op op) {
    switch (op) { ML_BINARY_OPS(ML_BIN_CASE_FLOAT_) default: return 1; }
}
/* 1 when the result is a uint8 mask (a comparison). */
static inline int ml_binary_is_mask(ml_binary_op op) {
    switch (op) { ML_BINARY_OPS(ML_BIN_CASE_MASK_) default: return 0; }
}

#endif
