/* The emulated GPU's built-in vector types (the part of CUDA's vector_types.h the
 * kernels use or are likely to): dim3, uint3 and the 2- and 4-wide vectors with
 * CUDA's alignment, so a kernel that loads a uint4 reads 16 aligned bytes as on a
 * GPU, plus their make_ functions. */
#ifndef ML_EMU_TYPES_H
#define ML_EMU_TYPES_H

#ifdef __cplusplus
#define ML_EMU_ALIGN(n) alignas(n)
#else
#define ML_EMU_ALIGN(n) _Alignas(n)
#endif

#define ML_EMU_VEC2(NAME, T, AL)                                                       \
    typedef struct ML_EMU_ALIGN(AL) NAME { T x, y; } NAME;                              \
    static inline NAME make_##NAME(T x, T y) { NAME v = {x, y}; return v; }
#define ML_EMU_VEC4(NAME, T, AL)                                                       \
    typedef struct ML_EMU_ALIGN(AL) NAME { T x, y, z, w; } NAME;                        \
    static inline NAME make_##NAME(T x, T y, T z, T w) { NAME v = {x, y, z, w}; return v; }

ML_EMU_VEC2(char2, signed char, 2)
ML_EMU_VEC4(char4, signed char, 4)
ML_EMU_VEC2(uchar2, unsigned char, 2)
ML_EMU_VEC4(uchar4, unsigned char, 4)
ML_EMU_VEC2(int2, int, 8)
ML_EMU_VEC4(int4, int, 16)
ML_EMU_VEC2(uint2, unsigned int, 8)
ML_EMU_VEC4(uint4, unsigned int, 16)
ML_EMU_VEC2(float2, float, 8)
ML_EMU_VEC4(float4, float, 16)
ML_EMU_VEC2(longlong2, long long, 16)
ML_EMU_VEC2(ulonglong2, unsigned long long, 16)
ML_EMU_VEC2(double2, double, 16)

typedef struct uint3 { unsigned int x, y, z; } uint3;
static inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) {
    uint3 v = {x, y, z};
    return v;
}

#ifdef __cplusplus
/* A launch's grid or block size: missing sizes are 1. */
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
#else
typedef struct dim3 { unsigned int x, y, z; } dim3;
#endif

#endif
