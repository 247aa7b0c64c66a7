/* Casts between dtypes, the same on every device.
 *
 * In C and CUDA a float that is NaN or out of an integer type's range converts
 * with undefined behaviour, and the devices really differ (x86 gives INT64_MIN, a
 * GPU saturates). Moonlight defines these casts as PyTorch's CPU does on x86:
 *  - float -> int64: truncation toward zero; NaN and values outside [-2^63, 2^63)
 *    give INT64_MIN (what cvttsd2si returns);
 *  - float -> uint8: through int64, keeping the low 8 bits (300.7 -> 44,
 *    -1.5 -> 255, NaN -> 0, 1e10 -> 0, 3000000001.0 -> 1).
 * The CPU kernels (src/cpu/elementwise.c) use ML_CAST, the CUDA kernels ml_cast. */
#ifndef ML_CAST_H
#define ML_CAST_H

#include <stdint.h>

#if defined(__CUDACC__)
#define ML_CAST_FN static __host__ __device__ __forceinline__
#else
#define ML_CAST_FN static inline
#endif

ML_CAST_FN int64_t ml_float_to_i64(double v) {
    return v >= -9223372036854775808.0 && v < 9223372036854775808.0 ? (int64_t)v : INT64_MIN;
}

ML_CAST_FN uint8_t ml_float_to_u8(double v) { return (uint8_t)ml_float_to_i64(v); }

#ifndef __cplusplus
/* ML_CAST(DT, v): (DT)v for a dtype's C type DT (float, double, int64_t, uint8_t). */
#define ML_CAST(DT, v) ML_CAST_##DT(v)
#define ML_CAST_float(v) ((float)(v))
#define ML_CAST_double(v) ((double)(v))
#define ML_CAST_int64_t(v)                                                             \
    _Generic((v), float: ml_float_to_i64((double)(v)), double: ml_float_to_i64((double)(v)), \
             default: (int64_t)(v))
#define ML_CAST_uint8_t(v)                                                             \
    _Generic((v), float: ml_float_to_u8((double)(v)), double: ml_float_to_u8((double)(v)), \
             default: (uint8_t)(v))
#else
#include <type_traits>
extern "C++" {
/* ml_cast<D>(v): (D)v for the dtypes' C++ types. */
template <class D, class S>
ML_CAST_FN D ml_cast(S v) {
    if constexpr (std::is_floating_point<S>::value && std::is_same<D, int64_t>::value)
        return ml_float_to_i64((double)v);
    else if constexpr (std::is_floating_point<S>::value && std::is_same<D, uint8_t>::value)
        return ml_float_to_u8((double)v);
    else
        return (D)v;
}
}
#endif

#endif
