/* The CPU elementwise kernels of one element type. src/cpu/elementwise.c includes
 * this file once per dtype, with defined:
 *   T               the element type: float, double, int64_t, uint8_t
 *   SUF             its suffix in the names made here: f32, f64, i64, u8
 *   ML_IF_float(...)  its argument for a floating type, nothing for an integer one
 * and ml_map_loop functions come out, named <kernel>_<SUF>: for each op of the
 * lists (elementwise_ops.h) that the type's domain allows, unary_<name>,
 * unary_backward_<name> (float types, ops that are not masks) and binary_<name>;
 * and the kernels outside
 * the lists (axpy, fill, where, copy_from_<SUF of the source>).
 *
 * Each op is a plain function of elements (op_<name>, grad_<name>): what a
 * debugger steps into. The loops (map1s, map2, ...) take it as a function pointer and
 * are always inlined into each op's kernel, where the pointer is a constant: the
 * compiler inlines the op into the loop and vectorises it, as a C++ template would.
 * The loops' names say what they take: 1, 2 or 3 operands, s: two constants of the
 * loop (an op's parameters, bounds, a factor), m: a uint8 mask out. */

#define FN(name) ML_CAT(name, SUF)

/* --- loops: p[0] the output, p[1..] the operands, st their strides (map.h) --- */

/* out = f(a, s, t): s, t constants of the loop (an op's parameters, bounds, a power) */
static ML_ALWAYS_INLINE void FN(map1s)(T (*f)(T, T, T), T s, T t, void *const *p,
                                       const int64_t *st, int64_t n) {
    T *o = (T *)p[0];
    const T *a = (const T *)p[1];
    if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(a[i], s, t);
    } else {
        for (int64_t i = 0; i < n; i++) o[i * st[0]] = f(a[i * st[1]], s, t);
    }
}

/* uint8 out = f(a, s, t): a mask of one operand (isnan) */
static ML_ALWAYS_INLINE void FN(map1sm)(uint8_t (*f)(T, T, T), T s, T t, void *const *p,
                                        const int64_t *st, int64_t n) {
    uint8_t *o = (uint8_t *)p[0];
    const T *a = (const T *)p[1];
    if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(a[i], s, t);
    } else {
        for (int64_t i = 0; i < n; i++) o[i * st[0]] = f(a[i * st[1]], s, t);
    }
}

/* out = f(a, b); an operand that is one broadcast number (stride 0: t * 2, 1 - t)
 * is read once, so the loop over the other vectorises */
static ML_ALWAYS_INLINE void FN(map2)(T (*f)(T, T), void *const *p, const int64_t *st,
                                      int64_t n) {
    T *o = (T *)p[0];
    const T *a = (const T *)p[1], *b = (const T *)p[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(a[i], b[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
        const T bv = b[0];
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(a[i], bv);
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
        const T av = a[0];
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(av, b[i]);
    } else {
        for (int64_t i = 0; i < n; i++) o[i * st[0]] = f(a[i * st[1]], b[i * st[2]]);
    }
}

/* uint8 out = f(a, b): comparisons (map2's cases, a mask out) */
static ML_ALWAYS_INLINE void FN(map2m)(uint8_t (*f)(T, T), void *const *p, const int64_t *st,
                                       int64_t n) {
    uint8_t *o = (uint8_t *)p[0];
    const T *a = (const T *)p[1], *b = (const T *)p[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(a[i], b[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
        const T bv = b[0];
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(a[i], bv);
    } else {
        for (int64_t i = 0; i < n; i++) o[i * st[0]] = f(a[i * st[1]], b[i * st[2]]);
    }
}

/* out = f(a, b, s, t) */
static ML_ALWAYS_INLINE void FN(map2s)(T (*f)(T, T, T, T), T s, T t, void *const *p,
                                       const int64_t *st, int64_t n) {
    T *o = (T *)p[0];
    const T *a = (const T *)p[1], *b = (const T *)p[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(a[i], b[i], s, t);
    } else {
        for (int64_t i = 0; i < n; i++) o[i * st[0]] = f(a[i * st[1]], b[i * st[2]], s, t);
    }
}

/* out = f(a, b, c, s, t) */
static ML_ALWAYS_INLINE void FN(map3s)(T (*f)(T, T, T, T, T), T s, T t, void *const *p,
                                       const int64_t *st, int64_t n) {
    T *o = (T *)p[0];
    const T *a = (const T *)p[1], *b = (const T *)p[2], *c = (const T *)p[3];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = f(a[i], b[i], c[i], s, t);
    } else {
        for (int64_t i = 0; i < n; i++)
            o[i * st[0]] = f(a[i * st[1]], b[i * st[2]], c[i * st[3]], s, t);
    }
}

/* --- the lists' ops --------------------------------------------------------- */

/* unary forward, for the types of the op's domain. The op's parameters (the list's
 * params column) arrive as the loop's constants p0_, p1_ (arg: ML_UN_MAX_PARAMS
 * doubles, ml_unary_params), and ML_UNP_BIND names them for the expression. */
#define UNARY_RESULT_same T
#define UNARY_RESULT_mask uint8_t
#define UNARY_MAP_same FN(map1s)
#define UNARY_MAP_mask FN(map1sm)
#define UNARY_FORWARD(NAME, name, Node, domain, result, params, forward, backward, saves)     \
    ML_IF_##domain(                                                                           \
    static inline UNARY_RESULT_##result FN(op_##name)(T x, T p0_, T p1_) {                    \
        ML_UNP_BIND_##params                                                                  \
        return (UNARY_RESULT_##result)(forward);                                              \
    }                                                                                         \
    static void FN(unary_##name)(void *const *p, const int64_t *st, int64_t n, const void *arg) { \
        const double *pa = (const double *)arg;                                               \
        UNARY_MAP_##result(FN(op_##name), (T)pa[0], (T)pa[1], p, st, n);                      \
    })
ML_UNARY_OPS(UNARY_FORWARD)
#undef UNARY_FORWARD
#undef UNARY_RESULT_same
#undef UNARY_RESULT_mask
#undef UNARY_MAP_same
#undef UNARY_MAP_mask

/* unary backward (float types, ops whose result is not a mask): the gradient's
 * parameters are g and the saved tensors only, so a rule that reads an unsaved one
 * does not compile; then the op's parameters, as in the forward */
#define ML_IF_DIFF_same(...) __VA_ARGS__
#define ML_IF_DIFF_mask(...)
#define GRAD_PARAMS_none T g
#define GRAD_PARAMS_x T g, T x
#define GRAD_PARAMS_y T g, T y
#define GRAD_PARAMS_xy T g, T x, T y
#define GRAD_MAP_none FN(map1s)
#define GRAD_MAP_x FN(map2s)
#define GRAD_MAP_y FN(map2s)
#define GRAD_MAP_xy FN(map3s)
#define UNARY_BACKWARD(NAME, name, Node, domain, result, params, forward, backward, saves)    \
    ML_IF_DIFF_##result(                                                                      \
    static inline T FN(grad_##name)(GRAD_PARAMS_##saves, T p0_, T p1_) {                      \
        ML_UNP_BIND_##params                                                                  \
        return (void)g, (T)(backward);                                                        \
    }                                                                                         \
    static void FN(unary_backward_##name)(void *const *p, const int64_t *st, int64_t n,       \
                                          const void *arg) {                                  \
        const double *pa = (const double *)arg;                                               \
        GRAD_MAP_##saves(FN(grad_##name), (T)pa[0], (T)pa[1], p, st, n);                      \
    })
ML_IF_float(ML_UNARY_OPS(UNARY_BACKWARD))
#undef UNARY_BACKWARD
#undef ML_IF_DIFF_same
#undef ML_IF_DIFF_mask
#undef GRAD_PARAMS_none
#undef GRAD_PARAMS_x
#undef GRAD_PARAMS_y
#undef GRAD_PARAMS_xy
#undef GRAD_MAP_none
#undef GRAD_MAP_x
#undef GRAD_MAP_y
#undef GRAD_MAP_xy

/* binary forward, for the types of the op's domain; a mask's element is uint8 */
#define RESULT_same T
#define RESULT_mask uint8_t
#define BINARY_MAP_same FN(map2)
#define BINARY_MAP_mask FN(map2m)
#define BINARY_FORWARD(NAME, name, Node, domain, result, forward, backward, saves)           \
    ML_IF_##domain(                                                                           \
    static inline RESULT_##result FN(op_##name)(T a, T b) {                                   \
        return (RESULT_##result)(forward);                                                    \
    }                                                                                         \
    static void FN(binary_##name)(void *const *p, const int64_t *st, int64_t n, const void *arg) { \
        (void)arg;                                                                            \
        BINARY_MAP_##result(FN(op_##name), p, st, n);                                         \
    })
ML_BINARY_OPS(BINARY_FORWARD)
#undef BINARY_FORWARD
#undef RESULT_same
#undef RESULT_mask
#undef BINARY_MAP_same
#undef BINARY_MAP_mask

/* --- kernels outside the lists (every type) ----------------------------------- */

/* out = a + s * b; arg: the double alpha */
static inline T FN(op_axpy)(T a, T b, T s, T unused) { return (void)unused, (T)(a + s * b); }
static void FN(axpy)(void *const *p, const int64_t *st, int64_t n, const void *arg) {
    FN(map2s)(FN(op_axpy), (T)(*(const double *)arg), 0, p, st, n);
}

/* clamp: a NaN stays NaN; arg: the bounds as two T (the type's limits where a bound
 * is not given). static inline: clamp is not defined for every dtype (no uint8). */
static inline T FN(op_clamp)(T v, T lo, T hi) {
    return ml_isnan(v) ? v : (v < lo ? lo : (v > hi ? hi : v));
}
static inline void FN(clamp)(void *const *p, const int64_t *st, int64_t n, const void *arg) {
    const T *b = (const T *)arg;
    FN(map1s)(FN(op_clamp), b[0], b[1], p, st, n);
}

/* clamp's gradient (float types): g where lo <= x <= hi, else 0 */
static inline T FN(op_clamp_grad)(T g, T v, T lo, T hi) { return v >= lo && v <= hi ? g : 0; }
static inline void FN(clamp_backward)(void *const *p, const int64_t *st, int64_t n,
                                      const void *arg) {
    const T *b = (const T *)arg;
    FN(map2s)(FN(op_clamp_grad), b[0], b[1], p, st, n);
}

/* out = value; arg: the T value. p[0] only. */
static void FN(fill)(void *const *p, const int64_t *st, int64_t n, const void *arg) {
    T *o = (T *)p[0];
    const T v = *(const T *)arg;
    if (st[0] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = v;
    } else {
        for (int64_t i = 0; i < n; i++) o[i * st[0]] = v;
    }
}

/* out = cond ? a : b; p[1] the uint8 condition */
static void FN(where)(void *const *p, const int64_t *st, int64_t n, const void *arg) {
    (void)arg;
    T *o = (T *)p[0];
    const uint8_t *c = (const uint8_t *)p[1];
    const T *a = (const T *)p[2], *b = (const T *)p[3];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = c[i] ? a[i] : b[i];
    } else {
        for (int64_t i = 0; i < n; i++) o[i * st[0]] = c[i * st[1]] ? a[i * st[2]] : b[i * st[3]];
    }
}

/* out (T) = src (S) converted as src/cast.h defines it (C's conversion, but NaN and
 * out-of-range floats to integers as PyTorch's CPU): copy_from_<SSUF>, one per
 * source type */
#define CAST_TO_T_(DT, v) ML_CAST(DT, v) /* T expanded before ML_CAST pastes it */
#define COPY_FROM(S, SSUF)                                                                    \
    static void ML_CAT(FN(copy_from), SSUF)(void *const *p, const int64_t *st, int64_t n,     \
                                            const void *arg) {                                \
        (void)arg;                                                                            \
        T *o = (T *)p[0];                                                                     \
        const S *s = (const S *)p[1];                                                         \
        if (st[0] == 1 && st[1] == 1) {                                                       \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = CAST_TO_T_(T, s[i]);   \
        } else {                                                                              \
            for (int64_t i = 0; i < n; i++) o[i * st[0]] = CAST_TO_T_(T, s[i * st[1]]);       \
        }                                                                                     \
    }
COPY_FROM(float, f32)
COPY_FROM(double, f64)
COPY_FROM(int64_t, i64)
COPY_FROM(uint8_t, u8)
#undef COPY_FROM
#undef CAST_TO_T_

#undef FN
