/* The CPU backend's op table: one family table per kernel file of src/cpu/, from
 * the set compiled for the capability level the CPU runs (capability.h, isa.h).
 * The allocator is one for all levels. */
#include "../backend.h"
#include "capability.h"

extern const ml_memory_ops ml_cpu_memory;

/* One level's family tables, named by src/cpu/isa.h, and its backend. */
#define LEVEL_TABLES(L)                                                                \
    extern const ml_elementwise_ops ml_cpu_elementwise_##L;                            \
    extern const ml_reduce_ops ml_cpu_reduce_##L;                                      \
    extern const ml_matmul_ops ml_cpu_matmul_##L;                                      \
    extern const ml_softmax_ops ml_cpu_softmax_##L;                                    \
    extern const ml_optim_ops ml_cpu_optim_##L;                                        \
    extern const ml_loss_ops ml_cpu_loss_##L;                                          \
    extern const ml_data_ops ml_cpu_data_##L;                                          \
    extern const ml_index_ops ml_cpu_index_##L;                                        \
    extern const ml_sort_ops ml_cpu_sort_##L;                                          \
    extern const ml_conv_ops ml_cpu_conv_##L;                                          \
    extern const ml_pool_ops ml_cpu_pool_##L;                                          \
    extern const ml_batchnorm_ops ml_cpu_batchnorm_##L;                                \
    extern const ml_norm_ops ml_cpu_norm_##L;                                          \
    extern const ml_embedding_ops ml_cpu_embedding_##L;
#define LEVEL_BACKEND(L)                                                               \
    {                                                                                  \
        .name = "cpu", .device = ML_CPU, .memory = &ml_cpu_memory,                     \
        .elementwise = &ml_cpu_elementwise_##L, .reduce = &ml_cpu_reduce_##L,          \
        .matmul = &ml_cpu_matmul_##L, .softmax = &ml_cpu_softmax_##L,                  \
        .optim = &ml_cpu_optim_##L, .loss = &ml_cpu_loss_##L, .data = &ml_cpu_data_##L, \
        .index = &ml_cpu_index_##L, .sort = &ml_cpu_sort_##L,                          \
        .conv = &ml_cpu_conv_##L, .pool = &ml_cpu_pool_##L,                            \
        .batchnorm = &ml_cpu_batchnorm_##L,                                            \
        .norm = &ml_cpu_norm_##L, .embedding = &ml_cpu_embedding_##L,                  \
    }

LEVEL_TABLES(default)
#ifdef ML_CPU_LEVELS_X86
LEVEL_TABLES(avx2)
LEVEL_TABLES(avx512)
#endif

/* ORDER ml_cpu_capability_level */
static const ml_backend levels[] = {
    LEVEL_BACKEND(default),
#ifdef ML_CPU_LEVELS_X86
    LEVEL_BACKEND(avx2),
    LEVEL_BACKEND(avx512),
#endif
};

const ml_backend *ml_cpu_backend(void) { return &levels[ml_cpu_capability()]; }
