/* The elementwise ops, one line each: the only place an elementwise op is defined.
 *
 * Compiled by the C compiler and by nvcc. Everything per op is expanded from these
 * two lists: the enums, the names, the autograd nodes (src/ops/elementwise.c), the
 * CPU's typed loops and dispatch tables (src/cpu/elementwise.c), the CUDA functors
 * and dispatch (kernels/elementwise.cu), and the Lua functions and methods
 * (src/lua/elementwise.c). A backend cannot miss an op: it expands the same list.
 * docs/ARCHITECTURE.md, "How to add an op", shows adding one.
 *
 * ML_UNARY_OPS(X): X(NAME, name, Node, domain, forward, backward, saves)
 *   NAME      the enum tail: ML_UN_<NAME>
 *   name      the PyTorch and Lua name: t:name(), ml.name(t); "<name>" in errors
 *   Node      the autograd node's name is "<Node>Backward"
 *   domain    float: computed in a float dtype (an integer input is cast to float32
 *             first, as torch's sqrt(int) gives a float); any: in the input's dtype
 *             (float32, float64, int64, uint8; integer results wrap as C's do)
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
 * every element type an op's domain allows: ml_exp, ml_log, ml_log1p, ml_sqrt,
 * ml_tanh, ml_sin, ml_cos, ml_power, ml_abs, ml_sign, ml_isnan, ml_floordiv (CPU:
 * C11 _Generic in src/cpu/scalar_math.h; CUDA: overloads in kernels/common.cuh). A
 * helper one backend lacks is a compile error there.
 *
 * ORDER: entries may be reordered freely; nothing depends on their positions. */
#ifndef ML_BACKEND_ELEMENTWISE_OPS_H
#define ML_BACKEND_ELEMENTWISE_OPS_H

/* clang-format off */
#define ML_UNARY_OPS(X)                                                                          \
    X(NEG,        neg,        Neg,        any,   -x,                   -g,                 none) \
    X(EXP,        exp,        Exp,        float, ml_exp(x),            g * y,              y)    \
    X(LOG,        log,        Log,        float, ml_log(x),            g / x,              x)    \
    X(LOG1P,      log1p,      Log1p,      float, ml_log1p(x),          g / (x + 1),        x)    \
    X(ABS,        abs,        Abs,        any,   ml_abs(x),            g * ml_sign(x),     x)    \
    X(SQRT,       sqrt,       Sqrt,       float, ml_sqrt(x),           g / (y * 2),        y)    \
    X(SQUARE,     square,     Square,     any,   x * x,                g * (x * 2),        x)    \
    X(SIGN,       sign,       Sign,       any,   ml_sign(x),           0,                  none) \
    X(RELU,       relu,       Relu,       any,   x <= 0 ? 0 : x,       y <= 0 ? 0 : g,     y)    \
    X(SIGMOID,    sigmoid,    Sigmoid,    float, 1 / (1 + ml_exp(-x)), g * y * (1 - y),    y)    \
    X(TANH,       tanh,       Tanh,       float, ml_tanh(x),           g * (1 - y * y),    y)    \
    X(RECIPROCAL, reciprocal, Reciprocal, float, 1 / x,                -(g * (y * y)),     y)    \
    X(SIN,        sin,        Sin,        float, ml_sin(x),            g * ml_cos(x),      x)    \
    X(COS,        cos,        Cos,        float, ml_cos(x),            g * -ml_sin(x),     x)
/* relu: x <= 0 ? 0 : x keeps a NaN (torch's clamp_min(x, 0); issue 17 item 1f), and
 * its gradient passes g where y is NaN, as torch's threshold_backward. */

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

/* One switch over a list: CASE_(NAME, value-expression) for each op. */
#define ML_UN_CASE_NAME_(NAME, name, ...) case ML_UN_##NAME: return #name;
#define ML_UN_CASE_NODE_(NAME, name, Node, ...) case ML_UN_##NAME: return #Node "Backward";
#define ML_UN_CASE_FLOAT_(NAME, name, Node, domain, ...) \
    case ML_UN_##NAME: return ML_FLOAT_ONLY_##domain;
#define ML_UN_CASE_SX_(NAME, name, Node, domain, fwd, bwd, saves) \
    case ML_UN_##NAME: return ML_SAVES_X_##saves;
#define ML_UN_CASE_SY_(NAME, name, Node, domain, fwd, bwd, saves) \
    case ML_UN_##NAME: return ML_SAVES_Y_##saves;
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
