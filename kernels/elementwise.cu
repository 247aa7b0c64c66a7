/* CUDA kernels of the elementwise family (contract: src/backend/elementwise.h).
 *
 * The ops of the lists (src/backend/elementwise_ops.h) become functors here, one per
 * op (UnOp_<name>, UnGrad_<name>, BinOp_<name>), and dispatch switches per dtype,
 * both expanded from the lists. Each functor is run by ml_cu_map (common.cuh): one
 * thread per element, grid-stride; a fully contiguous case indexes directly, a single merged dim uses
 * one stride per tensor, and anything else (broadcast stride-0 dims, transposed
 * views) decomposes the index over up to 8 merged dims. dtypes follow the CPU
 * kernels exactly, including which ops an integer dtype refuses. */
#include <math.h>

#include "cast.h"
#include "common.cuh"

/* --- the lists' ops: a functor per op, its expression from elementwise_ops.h --- */

/* A functor holds the op's parameters (the list's params column) as p0_, p1_, which
 * ML_UNP_BIND names for the expression; a gradient functor's parameters are g and
 * the saved tensors only, so a rule that reads an unsaved one does not compile (as
 * on the CPU). A mask op's functor gives uint8, and it has no gradient functor. */
#define UN_RESULT_same T
#define UN_RESULT_mask uint8_t
#define IF_DIFF_same(...) __VA_ARGS__
#define IF_DIFF_mask(...)
#define GRAD_PARAMS_none T g
#define GRAD_PARAMS_x T g, T x
#define GRAD_PARAMS_y T g, T y
#define GRAD_PARAMS_xy T g, T x, T y
#define UNARY_FUNCTORS(NAME, name, Node, domain, result, params, forward, backward, saves)   \
    struct UnOp_##name {                                                                     \
        double p0_, p1_;                                                                     \
        template <class T> __device__ __forceinline__ UN_RESULT_##result operator()(T x) const { \
            ML_UNP_BIND_##params                                                             \
            return (UN_RESULT_##result)(forward);                                            \
        }                                                                                    \
    };                                                                                       \
    IF_DIFF_##result(                                                                        \
    struct UnGrad_##name {                                                                   \
        double p0_, p1_;                                                                     \
        template <class T> __device__ __forceinline__ T operator()(GRAD_PARAMS_##saves) const { \
            ML_UNP_BIND_##params                                                             \
            return (void)g, (T)(backward);                                                   \
        }                                                                                    \
    };)
ML_UNARY_OPS(UNARY_FUNCTORS)
#undef UNARY_FUNCTORS

#define RESULT_same T
#define RESULT_mask uint8_t
#define BINARY_FUNCTOR(NAME, name, Node, domain, result, forward, backward, saves)          \
    struct BinOp_##name {                                                                    \
        template <class T> __device__ __forceinline__ RESULT_##result operator()(T a, T b) const { \
            return (RESULT_##result)(forward);                                               \
        }                                                                                    \
    };
ML_BINARY_OPS(BINARY_FUNCTOR)
#undef BINARY_FUNCTOR

/* --- element functors: (offsets of out, inputs...) --- */
template <class T, class OT, class Op>
struct UnaryF {
    const T *x;
    OT *o;
    Op op;
    __device__ __forceinline__ void operator()(int64_t i0, int64_t i1, int64_t, int64_t) const {
        o[i0] = (OT)op(x[i1]);
    }
};

template <class T, class OT, class Op>
struct BinaryF {
    const T *a, *b;
    OT *o;
    Op op;
    __device__ __forceinline__ void operator()(int64_t i0, int64_t i1, int64_t i2, int64_t) const {
        o[i0] = (OT)op(a[i1], b[i2]);
    }
};

template <class T, class Op>
struct TernaryF {
    const T *a, *b, *c;
    T *o;
    Op op;
    __device__ __forceinline__ void operator()(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
        o[i0] = op(a[i1], b[i2], c[i3]);
    }
};

template <class T, class OT, class Op>
static int run_unary(const char *name, Op op, const ml_tensor *x, ml_tensor *out) {
    UnaryF<T, OT, Op> f{(const T *)ml_data(x), (OT *)ml_data(out), op};
    const ml_tensor *ts[2] = {out, x};
    return ml_cu_map(name, f, 2, ts);
}

template <class T, class OT, class Op>
static int run_binary(const char *name, Op op, const ml_tensor *a, const ml_tensor *b,
                      ml_tensor *out) {
    BinaryF<T, OT, Op> f{(const T *)ml_data(a), (const T *)ml_data(b), (OT *)ml_data(out), op};
    const ml_tensor *ts[3] = {out, a, b};
    return ml_cu_map(name, f, 3, ts);
}

/* the dtype switches below name every dtype: a new one needs its case */
static_assert(ML_NDTYPES == 4, "elementwise.cu dispatches 4 dtypes");

/* --- unary: a switch over the list per dtype; integers get the `any` ops only --- */
#define FLOAT_CASE(NAME, name, Node, domain, result, ...)                                    \
    case ML_UN_##NAME:                                                                       \
        return run_unary<T, UN_RESULT_##result>(#name, UnOp_##name{p[0], p[1]}, x, out);
#define INT_CASE_any(NAME, name, result)                                                     \
    case ML_UN_##NAME:                                                                       \
        return run_unary<T, UN_RESULT_##result>(#name, UnOp_##name{p[0], p[1]}, x, out);
#define INT_CASE_float(NAME, name, result)
#define INT_CASE(NAME, name, Node, domain, result, ...) INT_CASE_##domain(NAME, name, result)

template <class T>
static int float_unary(ml_unary_op op, const double *p, const ml_tensor *x, ml_tensor *out) {
    switch (op) {
    ML_UNARY_OPS(FLOAT_CASE)
    default: return ml_error_set("unary op %d is not defined", (int)op);
    }
}

template <class T>
static int int_unary(ml_unary_op op, const double *p, const ml_tensor *x, ml_tensor *out) {
    switch (op) {
    ML_UNARY_OPS(INT_CASE)
    default:
        return ml_error_set("%s: needs a floating point tensor, got %s", ml_unary_name(op),
                            ml_dtype_name(x->dtype));
    }
}
#undef FLOAT_CASE
#undef INT_CASE_any
#undef INT_CASE_float
#undef INT_CASE

static int cu_elementwise_unary(ml_unary_op op, const double *params, const ml_tensor *x,
                                ml_tensor *out) {
    double p[ML_UN_MAX_PARAMS];
    ml_unary_params(op, params, p);
    switch (x->dtype) {
    case ML_F32: return float_unary<float>(op, p, x, out);
    case ML_F64: return float_unary<double>(op, p, x, out);
    case ML_I64: return int_unary<int64_t>(op, p, x, out);
    case ML_U8: return int_unary<uint8_t>(op, p, x, out);
    default: return ml_error_set("%s: not defined for this dtype", ml_unary_name(op));
    }
}

/* --- unary backward: one fused kernel of g and what the rule reads --- */
template <class T, class Op>
static int run_grad_none(const char *name, Op op, const ml_tensor *g, const ml_tensor *,
                         const ml_tensor *, ml_tensor *out) {
    return run_unary<T, T>(name, op, g, out);
}
template <class T, class Op>
static int run_grad_x(const char *name, Op op, const ml_tensor *g, const ml_tensor *x,
                      const ml_tensor *, ml_tensor *out) {
    return run_binary<T, T>(name, op, g, x, out);
}
template <class T, class Op>
static int run_grad_y(const char *name, Op op, const ml_tensor *g, const ml_tensor *,
                      const ml_tensor *y, ml_tensor *out) {
    return run_binary<T, T>(name, op, g, y, out);
}
template <class T, class Op>
static int run_grad_xy(const char *name, Op op, const ml_tensor *g, const ml_tensor *x,
                       const ml_tensor *y, ml_tensor *out) {
    TernaryF<T, Op> f{(const T *)ml_data(g), (const T *)ml_data(x), (const T *)ml_data(y),
                      (T *)ml_data(out), op};
    const ml_tensor *ts[4] = {out, g, x, y};
    return ml_cu_map(name, f, 4, ts);
}

#define GRAD_CASE_same(NAME, name, saves)                                                    \
    case ML_UN_##NAME:                                                                       \
        return run_grad_##saves<T>(#name, UnGrad_##name{p[0], p[1]}, g, x, y, out);
#define GRAD_CASE_mask(NAME, name, saves)                                                    \
    case ML_UN_##NAME: return ml_error_set("%s: is not differentiable", #name);
#define GRAD_CASE(NAME, name, Node, domain, result, params, forward, backward, saves)       \
    GRAD_CASE_##result(NAME, name, saves)
template <class T>
static int float_unary_backward(ml_unary_op op, const double *p, const ml_tensor *g,
                                const ml_tensor *x, const ml_tensor *y, ml_tensor *out) {
    switch (op) {
    ML_UNARY_OPS(GRAD_CASE)
    default: return ml_error_set("unary op %d is not defined", (int)op);
    }
}
#undef GRAD_CASE
#undef GRAD_CASE_same
#undef GRAD_CASE_mask

static int cu_elementwise_unary_backward(ml_unary_op op, const double *params, const ml_tensor *g,
                                         const ml_tensor *x, const ml_tensor *y, ml_tensor *out) {
    if ((x != NULL) != (ml_unary_saves_x(op) != 0) || (y != NULL) != (ml_unary_saves_y(op) != 0))
        return ml_error_set("%s: backward given other saved tensors than its rule reads",
                            ml_unary_name(op));
    double p[ML_UN_MAX_PARAMS];
    ml_unary_params(op, params, p);
    switch (g->dtype) {
    case ML_F32: return float_unary_backward<float>(op, p, g, x, y, out);
    case ML_F64: return float_unary_backward<double>(op, p, g, x, y, out);
    default:
        return ml_error_set("%s: backward needs floating point, got %s", ml_unary_name(op),
                            ml_dtype_name(g->dtype));
    }
}

/* --- binary: as unary; a mask op writes uint8 --- */
#define FLOAT_CASE(NAME, name, Node, domain, result, ...) \
    case ML_BIN_##NAME: return run_binary<T, RESULT_##result>(#name, BinOp_##name(), a, b, out);
#define INT_CASE_any(NAME, name, result) \
    case ML_BIN_##NAME: return run_binary<T, RESULT_##result>(#name, BinOp_##name(), a, b, out);
#define INT_CASE_float(NAME, name, result)
#define INT_CASE(NAME, name, Node, domain, result, ...) INT_CASE_##domain(NAME, name, result)

template <class T>
static int float_binary(ml_binary_op op, const ml_tensor *a, const ml_tensor *b, ml_tensor *out) {
    switch (op) {
    ML_BINARY_OPS(FLOAT_CASE)
    default: return ml_error_set("binary op %d is not defined", (int)op);
    }
}

template <class T>
static int int_binary(ml_binary_op op, const ml_tensor *a, const ml_tensor *b, ml_tensor *out) {
    switch (op) {
    ML_BINARY_OPS(INT_CASE)
    default:
        return ml_error_set("%s: needs floating point tensors, got %s", ml_binary_name(op),
                            ml_dtype_name(a->dtype));
    }
}
#undef FLOAT_CASE
#undef INT_CASE_any
#undef INT_CASE_float
#undef INT_CASE

static int cu_elementwise_binary(ml_binary_op op, const ml_tensor *a, const ml_tensor *b,
                                 ml_tensor *out) {
    switch (a->dtype) {
    case ML_F32: return float_binary<float>(op, a, b, out);
    case ML_F64: return float_binary<double>(op, a, b, out);
    case ML_I64: return int_binary<int64_t>(op, a, b, out);
    case ML_U8: return int_binary<uint8_t>(op, a, b, out);
    default: return ml_error_set("%s: not defined for this dtype", ml_binary_name(op));
    }
}

/* --- ops with a number --- */
template <class T>
struct Axpy {
    T s;
    __device__ __forceinline__ T operator()(T u, T v) const { return (T)(u + s * v); }
};

static int cu_elementwise_axpy(const ml_tensor *a, double alpha, const ml_tensor *b, ml_tensor *out) {
    switch (a->dtype) {
    case ML_F32: return run_binary<float, float>("add", Axpy<float>{(float)alpha}, a, b, out);
    case ML_F64: return run_binary<double, double>("add", Axpy<double>{alpha}, a, b, out);
    case ML_I64:
        return run_binary<int64_t, int64_t>("add", Axpy<int64_t>{(int64_t)alpha}, a, b, out);
    case ML_U8:
        return run_binary<uint8_t, uint8_t>("add", Axpy<uint8_t>{(uint8_t)(int64_t)alpha}, a, b, out);
    default: return 0;
    }
}

template <class T>
struct Clamp {
    T l, h;
    __device__ __forceinline__ T operator()(T v) const {
        return v != v ? v : (v < l ? l : (v > h ? h : v));
    }
};

static int cu_elementwise_clamp(const ml_tensor *x, double lo, double hi, ml_tensor *out) {
    bool has_lo = !isnan(lo), has_hi = !isnan(hi);
    switch (x->dtype) {
    case ML_F32: {
        Clamp<float> c{has_lo ? (float)lo : -INFINITY, has_hi ? (float)hi : INFINITY};
        return run_unary<float, float>("clamp", c, x, out);
    }
    case ML_F64: {
        Clamp<double> c{has_lo ? lo : -INFINITY, has_hi ? hi : INFINITY};
        return run_unary<double, double>("clamp", c, x, out);
    }
    case ML_I64: {
        Clamp<int64_t> c{has_lo ? (int64_t)ceil(lo) : INT64_MIN, has_hi ? (int64_t)floor(hi) : INT64_MAX};
        return run_unary<int64_t, int64_t>("clamp", c, x, out);
    }
    default: return ml_error_set("clamp: not defined for %s", ml_dtype_name(x->dtype));
    }
}

template <class T>
struct ClampBwd {
    T l, h;
    __device__ __forceinline__ T operator()(T u, T v) const { return (v >= l && v <= h) ? u : (T)0; }
};

static int cu_elementwise_clamp_backward(const ml_tensor *g, const ml_tensor *x, double lo, double hi,
                             ml_tensor *out) {
    double l = isnan(lo) ? -INFINITY : lo, h = isnan(hi) ? INFINITY : hi;
    switch (g->dtype) {
    case ML_F32:
        return run_binary<float, float>("clamp", ClampBwd<float>{(float)l, (float)h}, g, x, out);
    case ML_F64: return run_binary<double, double>("clamp", ClampBwd<double>{l, h}, g, x, out);
    default:
        return ml_error_set("clamp: backward needs floating point, got %s", ml_dtype_name(g->dtype));
    }
}

template <class T>
struct PowScalar {
    T p;
    __device__ __forceinline__ T operator()(T v) const { return ml_power(v, p); }
};
struct PowInt {
    int64_t e;
    __device__ __forceinline__ int64_t operator()(int64_t base) const {
        int64_t r = 1;
        for (int64_t k = e; k > 0; k >>= 1, base *= base)
            if (k & 1) r *= base;
        return r;
    }
};

static int cu_elementwise_pow_scalar(const ml_tensor *x, double p, ml_tensor *out) {
    switch (x->dtype) {
    case ML_F32:
        /* exactly as square and sqrt compute them, as the CPU does */
        if (p == 2.0) return run_unary<float, float>("pow", UnOp_square{0, 0}, x, out);
        if (p == 0.5) return run_unary<float, float>("pow", UnOp_sqrt{0, 0}, x, out);
        return run_unary<float, float>("pow", PowScalar<float>{(float)p}, x, out);
    case ML_F64: return run_unary<double, double>("pow", PowScalar<double>{p}, x, out);
    case ML_I64: return run_unary<int64_t, int64_t>("pow", PowInt{(int64_t)p}, x, out);
    default: return ml_error_set("pow: not defined for %s", ml_dtype_name(x->dtype));
    }
}

struct PowBwdSquare {
    __device__ __forceinline__ float operator()(float u, float v) const { return 2.0f * u * v; }
};
template <class T>
struct PowBwd {
    T p, q; /* q = p - 1 */
    __device__ __forceinline__ T operator()(T u, T v) const {
        return p == (T)0 ? (T)0 : u * p * ml_power(v, q);
    }
};
struct PowBwdF32 { /* the CPU's float32 rule: no p == 0 special case */
    float p, q;
    __device__ __forceinline__ float operator()(float u, float v) const { return u * p * powf(v, q); }
};

static int cu_elementwise_pow_scalar_backward(const ml_tensor *g, const ml_tensor *x, double p, ml_tensor *out) {
    switch (g->dtype) {
    case ML_F32:
        if (p == 2.0) return run_binary<float, float>("pow", PowBwdSquare(), g, x, out);
        return run_binary<float, float>("pow", PowBwdF32{(float)p, (float)(p - 1.0)}, g, x, out);
    case ML_F64: return run_binary<double, double>("pow", PowBwd<double>{p, p - 1.0}, g, x, out);
    default:
        return ml_error_set("pow: backward needs floating point, got %s", ml_dtype_name(g->dtype));
    }
}

/* --- fill, copy, where --- */
template <class T>
struct FillF {
    T *o;
    T v;
    __device__ __forceinline__ void operator()(int64_t i0, int64_t, int64_t, int64_t) const { o[i0] = v; }
};

static int cu_elementwise_fill(ml_tensor *out, double value) {
    const ml_tensor *ts[1] = {out};
    ML_CU_DISPATCH_ALL(out->dtype, {
        FillF<T> f{(T *)ml_data(out), ml_cast<T>(value)};
        return ml_cu_map("fill_", f, 1, ts);
    })
    return 0;
}

template <class ST, class DT>
struct CopyF {
    const ST *s;
    DT *d;
    __device__ __forceinline__ void operator()(int64_t i0, int64_t i1, int64_t, int64_t) const {
        d[i0] = ml_cast<DT>(s[i1]); /* NaN/out-of-range floats as on the CPU (src/cast.h) */
    }
};

template <class DT>
static int copy_to(const ml_tensor *src, ml_tensor *dst) {
    const ml_tensor *ts[2] = {dst, src};
    ML_CU_DISPATCH_ALL(src->dtype, {
        CopyF<T, DT> f{(const T *)ml_data(src), (DT *)ml_data(dst)};
        return ml_cu_map("copy", f, 2, ts);
    })
    return 0;
}

static int cu_elementwise_copy(const ml_tensor *src, ml_tensor *dst) {
    if (src->dtype == dst->dtype && ml_is_contiguous(src) && ml_is_contiguous(dst)) {
        size_t n = (size_t)ml_numel(src) * ml_dtype_size(src->dtype);
        if (n == 0) return 0;
        ML_CU_TRY("copy", cudaMemcpyAsync(ml_data(dst), ml_data(src), n, cudaMemcpyDeviceToDevice,
                                          ml_cu_stream()));
        return 0;
    }
    ML_CU_DISPATCH_ALL(dst->dtype, return copy_to<T>(src, dst))
    return 0;
}

template <class T>
struct WhereF {
    const uint8_t *c;
    const T *a, *b;
    T *o;
    __device__ __forceinline__ void operator()(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
        o[i0] = c[i1] ? a[i2] : b[i3];
    }
};

static int cu_elementwise_where(const ml_tensor *cond, const ml_tensor *a, const ml_tensor *b, ml_tensor *out) {
    const ml_tensor *ts[4] = {out, cond, a, b};
    ML_CU_DISPATCH_ALL(out->dtype, {
        WhereF<T> f{(const uint8_t *)ml_data(cond), (const T *)ml_data(a), (const T *)ml_data(b),
                    (T *)ml_data(out)};
        return ml_cu_map("where", f, 4, ts);
    })
    return 0;
}

const ml_elementwise_ops ml_cuda_elementwise = {
    ML_ELEMENTWISE_ENTRIES(ML_BACKEND_ENTRY, cu_elementwise_)};
