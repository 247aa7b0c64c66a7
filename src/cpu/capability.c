/* The CPU capability level (capability.h). */
#include "capability.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[ML_CPU_CAPABILITY_COUNT] = {"default", "avx2", "avx512"};

const char *ml_cpu_capability_name(ml_cpu_capability_level level) {
    return level >= 0 && level < ML_CPU_CAPABILITY_COUNT ? level_names[level] : "?";
}

/* The best level this build has kernels for and this CPU (and its OS) runs. */
static ml_cpu_capability_level best_level(void) {
#if defined(ML_CPU_LEVELS_X86) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return ML_CPU_AVX512;
    if (__builtin_cpu_supports("x86-64-v3")) return ML_CPU_AVX2;
#endif
    return ML_CPU_DEFAULT;
}

static ml_cpu_capability_level chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    chosen = best_level();
    const char *want = getenv("MOONLIGHT_CPU_CAPABILITY");
    if (!want || !*want) return;
    for (int l = 0; l < ML_CPU_CAPABILITY_COUNT; l++) {
        if (strcmp(want, level_names[l]) != 0) continue;
        if (l <= (int)chosen) chosen = (ml_cpu_capability_level)l;
        else
            fprintf(stderr, "moonlight: MOONLIGHT_CPU_CAPABILITY=%s is above what this CPU "
                            "runs; using %s\n", want, level_names[chosen]);
        return;
    }
    fprintf(stderr, "moonlight: MOONLIGHT_CPU_CAPABILITY=%s is not a level (expected default, "
                    "avx2 or avx512); using %s\n", want, level_names[chosen]);
}

ml_cpu_capability_level ml_cpu_capability(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}
