/* CUDA kernels of the elementwise family (contract: src/backend/elementwise.h).
 *
 * Each op is a small functor run by ml_cu_map (common.cuh): one thread per element,
 * grid-stride; a fully contiguous case indexes directly, a single merged dim uses
 * one stride per tensor, and anything else (broadcast stride-0 dims, transposed
 * views) decomposes the index over up to 8 merged dims. dtypes follow the CPU
 * kernels exactly, including which ops an integer dtype refuses. */
#include <math.h>

#include "cast.h"
#include "common.cuh"

/* --- op functors --- */
#define UOP(NAME, EXPR)                                                               \
    struct NAME {                                                                     \
        template <class T> __device__ __forceinline__ T operator()(T v) const {        \
            return (T)(EXPR);                                                         \
        }                                                                             \
    };
UOP(UNeg, -v)
UOP(UExp, cu_exp(v))
UOP(ULog, cu_log(v))
UOP(ULog1p, cu_log1p(v))
UOP(UFabs, cu_abs(v))
UOP(UIabs, v < 0 ? -v : v)
UOP(USqrt, cu_sqrt(v))
UOP(USquare, v * v)
UOP(USign, (v > 0) - (v < 0))
UOP(URelu, v > 0 ? v : (T)0)
UOP(USigmoid, (T)1 / ((T)1 + cu_exp(-v)))
UOP(UTanh, cu_tanh(v))
UOP(URecip, (T)1 / v)
UOP(UIdentity, v)
UOP(UPositive, v > 0)
#undef UOP

#define BOP(NAME, EXPR)                                                               \
    struct NAME {                                                                     \
        template <class T> __device__ __forceinline__ auto operator()(T u, T v) const { \
            return (EXPR);                                                            \
        }                                                                             \
    };
BOP(BAdd, u + v)
BOP(BSub, u - v)
BOP(BMul, u * v)
BOP(BDiv, u / v)
BOP(BPow, cu_pow(u, v))
BOP(BMax, (u != u || u > v) ? u : v) /* NaN propagates, as torch.maximum */
BOP(BMin, (u != u || u < v) ? u : v)
BOP(BEq, u == v)
BOP(BNe, u != v)
BOP(BLt, u < v)
BOP(BLe, u <= v)
BOP(BGt, u > v)
BOP(BGe, u >= v)
BOP(BReluBwd, v > 0 ? u : (T)0)
BOP(BSigmoidBwd, u * v * ((T)1 - v))
BOP(BTanhBwd, u * ((T)1 - v * v))
#undef BOP

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

/* --- unary --- */
template <class T>
static int float_unary(ml_unary_op opc, const ml_tensor *x, ml_tensor *out) {
    switch (opc) {
    case ML_UN_NEG: return run_unary<T, T>("neg", UNeg(), x, out);
    case ML_UN_EXP: return run_unary<T, T>("exp", UExp(), x, out);
    case ML_UN_LOG: return run_unary<T, T>("log", ULog(), x, out);
    case ML_UN_LOG1P: return run_unary<T, T>("log1p", ULog1p(), x, out);
    case ML_UN_ABS: return run_unary<T, T>("abs", UFabs(), x, out);
    case ML_UN_SQRT: return run_unary<T, T>("sqrt", USqrt(), x, out);
    case ML_UN_SQUARE: return run_unary<T, T>("square", USquare(), x, out);
    case ML_UN_SIGN: return run_unary<T, T>("sign", USign(), x, out);
    case ML_UN_RELU: return run_unary<T, T>("relu", URelu(), x, out);
    case ML_UN_SIGMOID: return run_unary<T, T>("sigmoid", USigmoid(), x, out);
    case ML_UN_TANH: return run_unary<T, T>("tanh", UTanh(), x, out);
    case ML_UN_RECIPROCAL: return run_unary<T, T>("reciprocal", URecip(), x, out);
    default:
        return ml_error_set("unary op %d is not defined for %s", (int)opc, ml_dtype_name(x->dtype));
    }
}

static int cu_unary(ml_unary_op opc, const ml_tensor *x, ml_tensor *out) {
    switch (x->dtype) {
    case ML_F32: return float_unary<float>(opc, x, out);
    case ML_F64: return float_unary<double>(opc, x, out);
    case ML_I64:
        switch (opc) {
        case ML_UN_NEG: return run_unary<int64_t, int64_t>("neg", UNeg(), x, out);
        case ML_UN_ABS: return run_unary<int64_t, int64_t>("abs", UIabs(), x, out);
        case ML_UN_SQUARE: return run_unary<int64_t, int64_t>("square", USquare(), x, out);
        case ML_UN_SIGN: return run_unary<int64_t, int64_t>("sign", USign(), x, out);
        case ML_UN_RELU: return run_unary<int64_t, int64_t>("relu", URelu(), x, out);
        default: break;
        }
        break;
    case ML_U8: /* unsigned: abs and relu are the identity, sign is 0 or 1 */
        switch (opc) {
        case ML_UN_ABS:
        case ML_UN_RELU: return run_unary<uint8_t, uint8_t>("abs", UIdentity(), x, out);
        case ML_UN_SIGN: return run_unary<uint8_t, uint8_t>("sign", UPositive(), x, out);
        case ML_UN_NEG: return run_unary<uint8_t, uint8_t>("neg", UNeg(), x, out);
        case ML_UN_SQUARE: return run_unary<uint8_t, uint8_t>("square", USquare(), x, out);
        default: break;
        }
        break;
    default: return 0;
    }
    return ml_error_set("this unary op needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
}

/* --- binary --- */
#define COMPARE_CASES(T)                                                              \
    case ML_BIN_EQ: return run_binary<T, uint8_t>("eq", BEq(), a, b, out);            \
    case ML_BIN_NE: return run_binary<T, uint8_t>("ne", BNe(), a, b, out);            \
    case ML_BIN_LT: return run_binary<T, uint8_t>("lt", BLt(), a, b, out);            \
    case ML_BIN_LE: return run_binary<T, uint8_t>("le", BLe(), a, b, out);            \
    case ML_BIN_GT: return run_binary<T, uint8_t>("gt", BGt(), a, b, out);            \
    case ML_BIN_GE: return run_binary<T, uint8_t>("ge", BGe(), a, b, out);

template <class T>
static int float_binary(ml_binary_op opc, const ml_tensor *a, const ml_tensor *b, ml_tensor *out) {
    switch (opc) {
    case ML_BIN_ADD: return run_binary<T, T>("add", BAdd(), a, b, out);
    case ML_BIN_SUB: return run_binary<T, T>("sub", BSub(), a, b, out);
    case ML_BIN_MUL: return run_binary<T, T>("mul", BMul(), a, b, out);
    case ML_BIN_DIV: return run_binary<T, T>("div", BDiv(), a, b, out);
    case ML_BIN_POW: return run_binary<T, T>("pow", BPow(), a, b, out);
    case ML_BIN_MAXIMUM: return run_binary<T, T>("maximum", BMax(), a, b, out);
    case ML_BIN_MINIMUM: return run_binary<T, T>("minimum", BMin(), a, b, out);
    COMPARE_CASES(T)
    case ML_BIN_RELU_BACKWARD: return run_binary<T, T>("relu", BReluBwd(), a, b, out);
    case ML_BIN_SIGMOID_BACKWARD: return run_binary<T, T>("sigmoid", BSigmoidBwd(), a, b, out);
    case ML_BIN_TANH_BACKWARD: return run_binary<T, T>("tanh", BTanhBwd(), a, b, out);
    default: return ml_error_set("binary op %d is not defined", (int)opc);
    }
}

/* Integer "/" never reaches a kernel: ops/ promotes it to float (true division). */
template <class T>
static int int_binary(ml_binary_op opc, const ml_tensor *a, const ml_tensor *b, ml_tensor *out) {
    switch (opc) {
    case ML_BIN_ADD: return run_binary<T, T>("add", BAdd(), a, b, out);
    case ML_BIN_SUB: return run_binary<T, T>("sub", BSub(), a, b, out);
    case ML_BIN_MUL: return run_binary<T, T>("mul", BMul(), a, b, out);
    case ML_BIN_MAXIMUM: return run_binary<T, T>("maximum", BMax(), a, b, out);
    case ML_BIN_MINIMUM: return run_binary<T, T>("minimum", BMin(), a, b, out);
    COMPARE_CASES(T)
    default:
        return ml_error_set("this op needs floating point tensors, got %s", ml_dtype_name(a->dtype));
    }
}

static int cu_binary(ml_binary_op opc, const ml_tensor *a, const ml_tensor *b, ml_tensor *out) {
    switch (a->dtype) {
    case ML_F32: return float_binary<float>(opc, a, b, out);
    case ML_F64: return float_binary<double>(opc, a, b, out);
    case ML_I64: return int_binary<int64_t>(opc, a, b, out);
    case ML_U8: return int_binary<uint8_t>(opc, a, b, out);
    default: return 0;
    }
}

/* --- ops with a number --- */
template <class T>
struct Axpy {
    T s;
    __device__ __forceinline__ T operator()(T u, T v) const { return (T)(u + s * v); }
};

static int cu_axpy(const ml_tensor *a, double alpha, const ml_tensor *b, ml_tensor *out) {
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

static int cu_clamp(const ml_tensor *x, double lo, double hi, ml_tensor *out) {
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

static int cu_clamp_backward(const ml_tensor *g, const ml_tensor *x, double lo, double hi,
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
    __device__ __forceinline__ T operator()(T v) const { return cu_pow(v, p); }
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

static int cu_pow_scalar(const ml_tensor *x, double p, ml_tensor *out) {
    switch (x->dtype) {
    case ML_F32:
        if (p == 2.0) return run_unary<float, float>("pow", USquare(), x, out);
        if (p == 0.5) return run_unary<float, float>("pow", USqrt(), x, out);
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
        return p == (T)0 ? (T)0 : u * p * cu_pow(v, q);
    }
};
struct PowBwdF32 { /* the CPU's float32 rule: no p == 0 special case */
    float p, q;
    __device__ __forceinline__ float operator()(float u, float v) const { return u * p * powf(v, q); }
};

static int cu_pow_scalar_backward(const ml_tensor *g, const ml_tensor *x, double p, ml_tensor *out) {
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

static int cu_fill(ml_tensor *out, double value) {
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

static int cu_copy(const ml_tensor *src, ml_tensor *dst) {
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

static int cu_where(const ml_tensor *cond, const ml_tensor *a, const ml_tensor *b, ml_tensor *out) {
    const ml_tensor *ts[4] = {out, cond, a, b};
    ML_CU_DISPATCH_ALL(out->dtype, {
        WhereF<T> f{(const uint8_t *)ml_data(cond), (const T *)ml_data(a), (const T *)ml_data(b),
                    (T *)ml_data(out)};
        return ml_cu_map("where", f, 4, ts);
    })
    return 0;
}

const ml_elementwise_ops ml_cuda_elementwise = {
    /* unary */ cu_unary,
    /* binary */ cu_binary,
    /* axpy */ cu_axpy,
    /* clamp */ cu_clamp,
    /* clamp_backward */ cu_clamp_backward,
    /* pow_scalar */ cu_pow_scalar,
    /* pow_scalar_backward */ cu_pow_scalar_backward,
    /* fill */ cu_fill,
    /* copy */ cu_copy,
    /* where */ cu_where,
};
