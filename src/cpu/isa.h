/* The CPU kernels are compiled once per ISA level and the backend picks one set at
 * run time (src/cpu/capability.h), as PyTorch's CPU_CAPABILITY builds do: a build
 * runs on any x86-64 and still uses AVX-512 where the CPU has it.
 *
 * CMake compiles every kernel file of src/cpu/ (all but backend.c, capability.c,
 * iter.c, map.c, memory.c, parallel.c, small_gemm.c) three times, with -DML_ISA=default
 * (baseline x86-64), avx2 (-march=x86-64-v3: AVX2, FMA) and avx512 (x86-64-v4),
 * and force-includes this header there, which gives the external names of those
 * files (their family tables, and the functions the loss files share) the level as
 * a suffix (ml_cpu_reduce becomes ml_cpu_reduce_avx512). A new external symbol in a
 * kernel file is a "multiple definition" link error until it is static or listed
 * here.
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
#define ml_cpu_sort ML_ISA_NAME(ml_cpu_sort)
/* convolution, pooling, batch norm (issue 16) */
#define ml_cpu_conv ML_ISA_NAME(ml_cpu_conv)
#define ml_cpu_pool ML_ISA_NAME(ml_cpu_pool)
#define ml_cpu_batchnorm ML_ISA_NAME(ml_cpu_batchnorm)
/* normalisation, embeddings (issue 16) */
#define ml_cpu_norm ML_ISA_NAME(ml_cpu_norm)
#define ml_cpu_embedding ML_ISA_NAME(ml_cpu_embedding)

/* the loss files' shared functions (src/cpu/loss_cpu.h) */
#define ml_loss_slots_init_heap ML_ISA_NAME(ml_loss_slots_init_heap)
#define ml_loss_slots_free ML_ISA_NAME(ml_loss_slots_free)
#define ml_cpu_ew_forward_f ML_ISA_NAME(ml_cpu_ew_forward_f)
#define ml_cpu_ew_forward_d ML_ISA_NAME(ml_cpu_ew_forward_d)
#define ml_cpu_ew_backward_f ML_ISA_NAME(ml_cpu_ew_backward_f)
#define ml_cpu_ew_backward_d ML_ISA_NAME(ml_cpu_ew_backward_d)
#define ml_cpu_scale_grad_f ML_ISA_NAME(ml_cpu_scale_grad_f)
#define ml_cpu_scale_grad_d ML_ISA_NAME(ml_cpu_scale_grad_d)
#define ml_cpu_class_block_rows ML_ISA_NAME(ml_cpu_class_block_rows)
#define ml_cpu_class_min_parallel ML_ISA_NAME(ml_cpu_class_min_parallel)
#define ml_cpu_class_norm ML_ISA_NAME(ml_cpu_class_norm)
#define ml_cpu_bad_class_id ML_ISA_NAME(ml_cpu_bad_class_id)
#define ml_cpu_class_forward_f ML_ISA_NAME(ml_cpu_class_forward_f)
#define ml_cpu_class_forward_d ML_ISA_NAME(ml_cpu_class_forward_d)
#define ml_cpu_class_backward_f ML_ISA_NAME(ml_cpu_class_backward_f)
#define ml_cpu_class_backward_d ML_ISA_NAME(ml_cpu_class_backward_d)
#define ml_cpu_ce_small ML_ISA_NAME(ml_cpu_ce_small)
#define ml_cpu_ce_small_forward ML_ISA_NAME(ml_cpu_ce_small_forward)
#define ml_cpu_ce_small_backward ML_ISA_NAME(ml_cpu_ce_small_backward)
#define ml_cpu_ce16_forward ML_ISA_NAME(ml_cpu_ce16_forward)
#define ml_cpu_ce_rows16_forward ML_ISA_NAME(ml_cpu_ce_rows16_forward)
#define ml_cpu_ce16_backward_block ML_ISA_NAME(ml_cpu_ce16_backward_block)
#define ml_cpu_ce_row_of ML_ISA_NAME(ml_cpu_ce_row_of)
#endif

#endif
