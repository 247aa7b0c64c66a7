/* Which compiled set of CPU kernels runs (src/cpu/isa.h): the best level the CPU
 * and the build have, or a lower one forced by the environment variable
 * MOONLIGHT_CPU_CAPABILITY=default|avx2|avx512 (PyTorch's ATEN_CPU_CAPABILITY), so
 * that the portable path can be tested on any machine. A level above what the CPU
 * has is refused with a warning on stderr and the best one taken. Chosen once, on
 * first use; ml.backends.cpu.get_cpu_capability() reads it. */
#ifndef ML_CPU_CAPABILITY_H
#define ML_CPU_CAPABILITY_H

typedef enum {
    ML_CPU_DEFAULT, /* baseline x86-64 (SSE2), or any other architecture */
    ML_CPU_AVX2,    /* x86-64-v3: AVX2, FMA, BMI */
    ML_CPU_AVX512,  /* x86-64-v4: AVX-512 F, BW, CD, DQ, VL */
    ML_CPU_CAPABILITY_COUNT
} ml_cpu_capability_level;

ml_cpu_capability_level ml_cpu_capability(void);
/* "default", "avx2", "avx512" */
const char *ml_cpu_capability_name(ml_cpu_capability_level level);

#endif
