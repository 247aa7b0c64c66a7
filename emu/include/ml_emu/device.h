/* The device side of the emulated GPU: qualifiers, built-in variables, barriers,
 * warp shuffles and votes, atomics and the intrinsics a kernel may call, for
 * kernels compiled as host C++ (included by the emulator's cuda_runtime.h).
 *
 * A launch runs one block at a time; each thread of the block is a fiber on the
 * launching host thread (emu/src/scheduler.cpp). A fiber runs until it reaches
 * __syncthreads(), a warp operation or its end, then the next one runs, so:
 *  - __syncthreads() is a real barrier, and one that only part of the block
 *    reaches (a thread returned while others wait) fails the launch;
 *  - a shuffle or vote exchanges values among the lanes of its mask (warps of
 *    32 consecutive threads), once every lane of the mask has reached it: a lane
 *    of the mask that exited or waits elsewhere fails the launch, and so does
 *    reading a lane outside the mask;
 *  - atomics are plain read-modify-writes: no two fibers run at once, and
 *    launches from different host threads are serialised.
 * threadIdx is the running fiber's; blockIdx, blockDim and gridDim the launch's. */
#ifndef ML_EMU_DEVICE_H
#define ML_EMU_DEVICE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "types.h"

#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
/* __shared__ declarations are rewritten by emu/launch_rewrite.lua */

namespace ml_emu {
/* Set by the scheduler: threadIdx before each fiber runs, the others per launch. */
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;

enum warp_kind { WARP_SYNC, SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, VOTE_BALLOT };

/* The block barrier; returns how many threads passed a non-zero pred. */
int block_barrier(int pred);
/* A warp operation of the calling thread among the lanes of mask: waits until all
 * of them reached one (with the same mask and kind), then returns, per kind, the
 * value of the source lane (shuffles), the ballot of the lanes' values (votes),
 * or 0 (__syncwarp). */
uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t value, int arg, int width);
/* The lanes of the calling thread's warp that have not exited. */
unsigned active_mask(void);
/* Registers a __shared__ variable of the running block (see launch_rewrite.lua);
 * the first thread to reach it fills it with garbage. Returns true. */
bool shared_static(void *var, size_t bytes);
/* The launch's dynamic shared memory (extern __shared__). */
void *shared_dynamic(void);

/* A shuffle of any value of up to 8 bytes, as its bits. */
template <class T>
inline T shuffle(warp_kind kind, unsigned mask, T v, int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "a shuffle moves a value of at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = warp_op(kind, mask, bits, arg, width);
    memcpy(&v, &bits, sizeof v);
    return v;
}
} // namespace ml_emu

#define threadIdx (static_cast<const uint3 &>(::ml_emu::thread_idx))
#define blockIdx (static_cast<const uint3 &>(::ml_emu::block_idx))
#define blockDim (static_cast<const dim3 &>(::ml_emu::block_dim))
#define gridDim (static_cast<const dim3 &>(::ml_emu::grid_dim))
constexpr int warpSize = 32;

inline void __syncthreads() { (void)::ml_emu::block_barrier(0); }
inline int __syncthreads_count(int pred) { return ::ml_emu::block_barrier(pred != 0); }
inline int __syncthreads_and(int pred) {
    return ::ml_emu::block_barrier(pred != 0) == (int)(blockDim.x * blockDim.y * blockDim.z);
}
inline int __syncthreads_or(int pred) { return ::ml_emu::block_barrier(pred != 0) != 0; }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)::ml_emu::warp_op(::ml_emu::WARP_SYNC, mask, 0, 0, 32);
}
/* One fiber runs at a time: every store is already visible to the others. */
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    return ::ml_emu::shuffle(::ml_emu::SHFL_IDX, mask, v, src_lane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return ::ml_emu::shuffle(::ml_emu::SHFL_UP, mask, v, (int)delta, width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return ::ml_emu::shuffle(::ml_emu::SHFL_DOWN, mask, v, (int)delta, width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return ::ml_emu::shuffle(::ml_emu::SHFL_XOR, mask, v, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    return (unsigned)::ml_emu::warp_op(::ml_emu::VOTE_BALLOT, mask, pred != 0, 0, 32);
}
inline int __all_sync(unsigned mask, int pred) { return (__ballot_sync(mask, pred) & mask) == mask; }
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline unsigned __activemask() { return ::ml_emu::active_mask(); }

/* Atomics: the overloads CUDA has, each a plain read-modify-write. */
#define ML_EMU_ATOMIC(NAME, T, EXPR)                                                   \
    inline T NAME(T *address, T val) {                                                 \
        T old = *address;                                                              \
        *address = (EXPR);                                                             \
        return old;                                                                    \
    }
#define ML_EMU_ATOMIC_INTS(NAME, EXPR)                                                 \
    ML_EMU_ATOMIC(NAME, int, EXPR)                                                     \
    ML_EMU_ATOMIC(NAME, unsigned int, EXPR)                                            \
    ML_EMU_ATOMIC(NAME, unsigned long long, EXPR)
ML_EMU_ATOMIC_INTS(atomicAdd, old + val)
ML_EMU_ATOMIC(atomicAdd, float, old + val)
ML_EMU_ATOMIC(atomicAdd, double, old + val)
ML_EMU_ATOMIC(atomicSub, int, old - val)
ML_EMU_ATOMIC(atomicSub, unsigned int, old - val)
ML_EMU_ATOMIC_INTS(atomicExch, val)
ML_EMU_ATOMIC(atomicExch, float, val)
ML_EMU_ATOMIC_INTS(atomicMax, old > val ? old : val)
ML_EMU_ATOMIC(atomicMax, long long, old > val ? old : val)
ML_EMU_ATOMIC_INTS(atomicMin, old < val ? old : val)
ML_EMU_ATOMIC(atomicMin, long long, old < val ? old : val)
ML_EMU_ATOMIC_INTS(atomicAnd, old & val)
ML_EMU_ATOMIC_INTS(atomicOr, old | val)
ML_EMU_ATOMIC_INTS(atomicXor, old ^ val)
ML_EMU_ATOMIC(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
ML_EMU_ATOMIC(atomicDec, unsigned int, (old == 0u || old > val) ? val : old - 1u)
#undef ML_EMU_ATOMIC_INTS
#undef ML_EMU_ATOMIC
#define ML_EMU_ATOMIC_CAS(T)                                                           \
    inline T atomicCAS(T *address, T compare, T val) {                                 \
        T old = *address;                                                              \
        if (old == compare) *address = val;                                            \
        return old;                                                                    \
    }
ML_EMU_ATOMIC_CAS(int)
ML_EMU_ATOMIC_CAS(unsigned int)
ML_EMU_ATOMIC_CAS(unsigned long long)
ML_EMU_ATOMIC_CAS(unsigned short)
#undef ML_EMU_ATOMIC_CAS

/* Intrinsics: bit counts, read-only loads, fast math (here the exact functions). */
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
template <class T>
inline T __ldg(const T *p) { return *p; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }

#endif
