/* CPU kernels of the elementwise family (contract: src/backend/elementwise.h).
 *
 * The typed loops come from elementwise_type.h, included once per dtype: for each
 * op of the lists (src/backend/elementwise_ops.h) a loop per dtype of its domain,
 * which the dispatch tables below name, also generated from the lists. Every kernel
 * runs through ml_cpu_map (map.h): dims merged, the elements split across threads
 * by the one parallel loop (parallel.h). */
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "../cast.h"
#include "../error.h"
#include "map.h"
#include "scalar_math.h"

#define ML_CAT_(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT_(a, b)
#define ML_ALWAYS_INLINE inline __attribute__((always_inline))
/* ops of domain `any` exist for every dtype */
#define ML_IF_any(...) __VA_ARGS__

/* one include per dtype: a new dtype needs its own, and its columns in the tables */
_Static_assert(ML_NDTYPES == 4, "elementwise.c instantiates the kernels for 4 dtypes");

#define T float
#define SUF f32
#define ML_IF_float(...) __VA_ARGS__
#include "elementwise_type.h"
#undef T
#undef SUF

#define T double
#define SUF f64
#include "elementwise_type.h"
#undef T
#undef SUF
#undef ML_IF_float

#define T int64_t
#define SUF i64
#define ML_IF_float(...)
#include "elementwise_type.h"
#undef T
#undef SUF

#define T uint8_t
#define SUF u8
#include "elementwise_type.h"
#undef T
#undef SUF
#undef ML_IF_float

/* --- dispatch tables, from the lists: [op][dtype], NULL where the dtype is not in
 * the op's domain (ops/ casts integers to float32 for those, so only a bad call
 * reaches one) --- */

#define FLOATS_(kernel) [ML_F32] = kernel##_f32, [ML_F64] = kernel##_f64
#define INTS_any(kernel) , [ML_I64] = kernel##_i64, [ML_U8] = kernel##_u8
#define INTS_float(kernel)

#define UNARY_ROW(NAME, name, Node, domain, ...) \
    [ML_UN_##NAME] = {FLOATS_(unary_##name) INTS_##domain(unary_##name)},
static const ml_map_loop unary_loops[ML_UN_COUNT][ML_NDTYPES] = {ML_UNARY_OPS(UNARY_ROW)};
#undef UNARY_ROW

/* a mask op (isnan) has no gradient: its row stays NULL */
#define GRAD_ROW_same(NAME, name) [ML_UN_##NAME] = {FLOATS_(unary_backward_##name)},
#define GRAD_ROW_mask(NAME, name)
#define UNARY_BACKWARD_ROW(NAME, name, Node, domain, result, ...) GRAD_ROW_##result(NAME, name)
static const ml_map_loop unary_backward_loops[ML_UN_COUNT][ML_NDTYPES] = {
    ML_UNARY_OPS(UNARY_BACKWARD_ROW)};
#undef UNARY_BACKWARD_ROW
#undef GRAD_ROW_same
#undef GRAD_ROW_mask

#define BINARY_ROW(NAME, name, Node, domain, ...) \
    [ML_BIN_##NAME] = {FLOATS_(binary_##name) INTS_##domain(binary_##name)},
static const ml_map_loop binary_loops[ML_BIN_COUNT][ML_NDTYPES] = {ML_BINARY_OPS(BINARY_ROW)};
#undef BINARY_ROW

#define ALL_TYPES_(kernel) {FLOATS_(kernel) INTS_any(kernel)}
static const ml_map_loop axpy_loops[ML_NDTYPES] = ALL_TYPES_(axpy);
static const ml_map_loop fill_loops[ML_NDTYPES] = ALL_TYPES_(fill);
static const ml_map_loop where_loops[ML_NDTYPES] = ALL_TYPES_(where);
/* [destination][source] */
static const ml_map_loop copy_loops[ML_NDTYPES][ML_NDTYPES] = {
    [ML_F32] = ALL_TYPES_(copy_from_f32), [ML_F64] = ALL_TYPES_(copy_from_f64),
    [ML_I64] = ALL_TYPES_(copy_from_i64), [ML_U8] = ALL_TYPES_(copy_from_u8)};

/* The loop of table[dtype], or NULL (an unknown dtype, or one outside the domain). */
static ml_map_loop loop_of(const ml_map_loop *table, ml_dtype dt) {
    return (unsigned)dt < ML_NDTYPES ? table[dt] : NULL;
}

/* --- the family's entries --- */

static int cpu_elementwise_unary(ml_unary_op op, const double *params, const ml_tensor *x,
                                 ml_tensor *out) {
    ml_map_loop loop = (unsigned)op < ML_UN_COUNT ? loop_of(unary_loops[op], x->dtype) : NULL;
    if (!loop)
        return ml_error_set("%s: needs a floating point tensor, got %s", ml_unary_name(op),
                            ml_dtype_name(x->dtype));
    double p[ML_UN_MAX_PARAMS];
    ml_unary_params(op, params, p);
    const ml_tensor *t[2] = {out, x};
    ml_cpu_map(2, t, loop, p);
    return 0;
}

static int cpu_elementwise_unary_backward(ml_unary_op op, const double *params, const ml_tensor *g,
                                          const ml_tensor *x, const ml_tensor *y, ml_tensor *out) {
    ml_map_loop loop =
        (unsigned)op < ML_UN_COUNT ? loop_of(unary_backward_loops[op], g->dtype) : NULL;
    if (!loop && (unsigned)op < ML_UN_COUNT && ml_unary_is_mask(op))
        return ml_error_set("%s: is not differentiable", ml_unary_name(op));
    if (!loop)
        return ml_error_set("%s: backward needs floating point, got %s", ml_unary_name(op),
                            ml_dtype_name(g->dtype));
    if ((x != NULL) != (ml_unary_saves_x(op) != 0) || (y != NULL) != (ml_unary_saves_y(op) != 0))
        return ml_error_set("%s: backward given other saved tensors than its rule reads",
                            ml_unary_name(op));
    /* the operands in the order of the rule's parameters: g, then x, then y */
    const ml_tensor *t[4] = {out, g};
    int nt = 2;
    if (x) t[nt++] = x;
    if (y) t[nt++] = y;
    double p[ML_UN_MAX_PARAMS];
    ml_unary_params(op, params, p);
    ml_cpu_map(nt, t, loop, p);
    return 0;
}

static int cpu_elementwise_binary(ml_binary_op op, const ml_tensor *a, const ml_tensor *b,
                                  ml_tensor *out) {
    ml_map_loop loop = (unsigned)op < ML_BIN_COUNT ? loop_of(binary_loops[op], a->dtype) : NULL;
    if (!loop)
        return ml_error_set("%s: needs floating point tensors, got %s", ml_binary_name(op),
                            ml_dtype_name(a->dtype));
    const ml_tensor *t[3] = {out, a, b};
    ml_cpu_map(3, t, loop, NULL);
    return 0;
}

static int cpu_elementwise_axpy(const ml_tensor *a, double alpha, const ml_tensor *b,
                                ml_tensor *out) {
    ml_map_loop loop = loop_of(axpy_loops, a->dtype);
    if (!loop) return ml_error_set("add_: not defined for %s", ml_dtype_name(a->dtype));
    const ml_tensor *t[3] = {out, a, b};
    ml_cpu_map(3, t, loop, &alpha);
    return 0;
}


static int cpu_elementwise_clamp(const ml_tensor *x, double lo, double hi, ml_tensor *out) {
    const bool has_lo = !isnan(lo), has_hi = !isnan(hi);
    const ml_tensor *t[2] = {out, x};
    switch (x->dtype) {
    case ML_F32: {
        const float lh[2] = {has_lo ? (float)lo : -INFINITY, has_hi ? (float)hi : INFINITY};
        ml_cpu_map(2, t, clamp_f32, lh);
        return 0;
    }
    case ML_F64: {
        const double lh[2] = {has_lo ? lo : -INFINITY, has_hi ? hi : INFINITY};
        ml_cpu_map(2, t, clamp_f64, lh);
        return 0;
    }
    case ML_I64: { /* integer bounds: the integers within [lo, hi] */
        const int64_t lh[2] = {has_lo ? (int64_t)ceil(lo) : INT64_MIN,
                               has_hi ? (int64_t)floor(hi) : INT64_MAX};
        ml_cpu_map(2, t, clamp_i64, lh);
        return 0;
    }
    default: return ml_error_set("clamp: not defined for %s", ml_dtype_name(x->dtype));
    }
}

static int cpu_elementwise_clamp_backward(const ml_tensor *g, const ml_tensor *x, double lo,
                                          double hi, ml_tensor *out) {
    const double l = isnan(lo) ? -INFINITY : lo, h = isnan(hi) ? INFINITY : hi;
    const ml_tensor *t[3] = {out, g, x};
    switch (g->dtype) {
    case ML_F32: {
        const float lh[2] = {(float)l, (float)h};
        ml_cpu_map(3, t, clamp_backward_f32, lh);
        return 0;
    }
    case ML_F64: {
        const double lh[2] = {l, h};
        ml_cpu_map(3, t, clamp_backward_f64, lh);
        return 0;
    }
    default:
        return ml_error_set("clamp: backward needs floating point, got %s",
                            ml_dtype_name(g->dtype));
    }
}

/* x ^ p with p a number (arg: the double p). float32 squares and takes square
 * roots exactly as square and sqrt do (t ^ 2 is the MSE's square); integers by
 * repeated squaring (p a whole number >= 0: ops/ casts to float otherwise). */
static inline float op_pow_scalar_f32(float v, float p, float unused) {
    return (void)unused, powf(v, p);
}
static inline float op_square_scalar_f32(float v, float p, float q) {
    return (void)p, (void)q, v * v;
}
static inline float op_sqrt_scalar_f32(float v, float p, float q) {
    return (void)p, (void)q, sqrtf(v);
}
static inline double op_pow_scalar_f64(double v, double p, double unused) {
    return (void)unused, pow(v, p);
}
static inline int64_t op_pow_scalar_i64(int64_t base, int64_t e, int64_t unused) {
    (void)unused;
    int64_t r = 1;
    for (; e > 0; e >>= 1, base *= base)
        if (e & 1) r *= base;
    return r;
}
static void pow_scalar_f32(void *const *p, const int64_t *st, int64_t n, const void *arg) {
    const double e = *(const double *)arg;
    if (e == 2.0) map1s_f32(op_square_scalar_f32, 0, 0, p, st, n);
    else if (e == 0.5) map1s_f32(op_sqrt_scalar_f32, 0, 0, p, st, n);
    else map1s_f32(op_pow_scalar_f32, (float)e, 0, p, st, n);
}
static void pow_scalar_f64(void *const *p, const int64_t *st, int64_t n, const void *arg) {
    map1s_f64(op_pow_scalar_f64, *(const double *)arg, 0, p, st, n);
}
static void pow_scalar_i64(void *const *p, const int64_t *st, int64_t n, const void *arg) {
    map1s_i64(op_pow_scalar_i64, (int64_t)*(const double *)arg, 0, p, st, n);
}

static int cpu_elementwise_pow_scalar(const ml_tensor *x, double p, ml_tensor *out) {
    static const ml_map_loop loops[ML_NDTYPES] = {
        [ML_F32] = pow_scalar_f32, [ML_F64] = pow_scalar_f64, [ML_I64] = pow_scalar_i64};
    ml_map_loop loop = loop_of(loops, x->dtype);
    if (!loop) return ml_error_set("pow: not defined for %s", ml_dtype_name(x->dtype));
    const ml_tensor *t[2] = {out, x};
    ml_cpu_map(2, t, loop, &p);
    return 0;
}

/* g * p * x^(p-1) (arg: the double p); float64 gives 0 for p == 0 (x^-1 would make
 * 0 * inf at x = 0) */
static inline float op_pow_scalar_grad_f32(float g, float v, float p, float q) {
    return g * p * powf(v, q);
}
static inline float op_square_scalar_grad_f32(float g, float v, float p, float q) {
    return (void)p, (void)q, 2.0f * g * v;
}
static inline double op_pow_scalar_grad_f64(double g, double v, double p, double q) {
    return p == 0.0 ? 0.0 : g * p * pow(v, q);
}
static void pow_scalar_backward_f32(void *const *p, const int64_t *st, int64_t n,
                                    const void *arg) {
    const double e = *(const double *)arg;
    if (e == 2.0) map2s_f32(op_square_scalar_grad_f32, 0, 0, p, st, n);
    else map2s_f32(op_pow_scalar_grad_f32, (float)e, (float)(e - 1.0), p, st, n);
}
static void pow_scalar_backward_f64(void *const *p, const int64_t *st, int64_t n,
                                    const void *arg) {
    const double e = *(const double *)arg;
    map2s_f64(op_pow_scalar_grad_f64, e, e - 1.0, p, st, n);
}

static int cpu_elementwise_pow_scalar_backward(const ml_tensor *g, const ml_tensor *x, double p,
                                               ml_tensor *out) {
    static const ml_map_loop loops[ML_NDTYPES] = {[ML_F32] = pow_scalar_backward_f32,
                                                  [ML_F64] = pow_scalar_backward_f64};
    ml_map_loop loop = loop_of(loops, g->dtype);
    if (!loop)
        return ml_error_set("pow: backward needs floating point, got %s", ml_dtype_name(g->dtype));
    const ml_tensor *t[3] = {out, g, x};
    ml_cpu_map(3, t, loop, &p);
    return 0;
}

static int cpu_elementwise_fill(ml_tensor *out, double value) {
    union { float f32; double f64; int64_t i64; uint8_t u8; } v; /* value as out's type */
    switch (out->dtype) {
    case ML_F32: v.f32 = (float)value; break;
    case ML_F64: v.f64 = value; break;
    case ML_I64: v.i64 = ml_float_to_i64(value); break; /* src/cast.h */
    case ML_U8: v.u8 = ml_float_to_u8(value); break;
    default: return ml_error_set("fill_: not defined for %s", ml_dtype_name(out->dtype));
    }
    const ml_tensor *t[1] = {out};
    ml_cpu_map(1, t, fill_loops[out->dtype], &v);
    return 0;
}

static int cpu_elementwise_copy(const ml_tensor *src, ml_tensor *dst) {
    if (src->dtype == dst->dtype && ml_is_contiguous(src) && ml_is_contiguous(dst)) {
        memcpy(ml_data(dst), ml_data(src), (size_t)ml_numel(src) * ml_dtype_size(src->dtype));
        return 0;
    }
    ml_map_loop loop = (unsigned)dst->dtype < ML_NDTYPES ? loop_of(copy_loops[dst->dtype], src->dtype)
                                                          : NULL;
    if (!loop)
        return ml_error_set("copy: from %s to %s is not defined", ml_dtype_name(src->dtype),
                            ml_dtype_name(dst->dtype));
    const ml_tensor *t[2] = {dst, src};
    ml_cpu_map(2, t, loop, NULL);
    return 0;
}

static int cpu_elementwise_where(const ml_tensor *cond, const ml_tensor *a, const ml_tensor *b,
                                 ml_tensor *out) {
    ml_map_loop loop = loop_of(where_loops, out->dtype);
    if (!loop) return ml_error_set("where: not defined for %s", ml_dtype_name(out->dtype));
    const ml_tensor *t[4] = {out, cond, a, b};
    ml_cpu_map(4, t, loop, NULL);
    return 0;
}

const ml_elementwise_ops ml_cpu_elementwise = {
    ML_ELEMENTWISE_ENTRIES(ML_BACKEND_ENTRY, cpu_elementwise_)};
