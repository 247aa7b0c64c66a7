/* The CPU kernels are compiled once per ISA level and the backend picks one set at
 * run time (src/cpu/capability.h), as PyTorch's CPU_CAPABILITY builds do: a build
 * runs on any x86-64 and still uses AVX-512 where the CPU has it.
 *
 * CMake compiles every kernel file of src/cpu/ (all but backend.c, capability.c,
 * memory.c, parallel.c, iter.c, small_gemm.c) three times, with -DML_ISA=default
 * (baseline x86-64), avx2 (-march=x86-64-v3: AVX2, FMA) and avx512 (x86-64-v4),
 * and force-includes this header there, which gives the only external names of
 * those files, their family tables, the level as a suffix (ml_cpu_reduce becomes
 * ml_cpu_reduce_avx512). A kernel file must define no other external symbol: a
 * new one is a "multiple definition" link error until it is static or listed here.
 * Code inside may test the ISA with the compiler's macros (__AVX512F__, __FMA__). */
#ifndef ML_CPU_ISA_H
#define ML_CPU_ISA_H

#ifdef ML_ISA
#define ML_ISA_PASTE2(name, level) name##_##level
#define ML_ISA_PASTE(name, level) ML_ISA_PASTE2(name, level)
#define ML_ISA_NAME(name) ML_ISA_PASTE(name, ML_ISA)

#define ml_cpu_data ML_ISA_NAME(ml_cpu_data)
#define ml_cpu_elementwise ML_ISA_NAME(ml_cpu_elementwise)
#define ml_cpu_index ML_ISA_NAME(ml_cpu_index)
#define ml_cpu_loss ML_ISA_NAME(ml_cpu_loss)
#define ml_cpu_matmul ML_ISA_NAME(ml_cpu_matmul)
#define ml_cpu_optim ML_ISA_NAME(ml_cpu_optim)
#define ml_cpu_reduce ML_ISA_NAME(ml_cpu_reduce)
#define ml_cpu_softmax ML_ISA_NAME(ml_cpu_softmax)
#endif

#endif
