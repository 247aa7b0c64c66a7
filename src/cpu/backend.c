/* The CPU backend's op table: one family table per file of src/cpu/. */
#include "../backend.h"

extern const ml_memory_ops ml_cpu_memory;
extern const ml_elementwise_ops ml_cpu_elementwise;
extern const ml_reduce_ops ml_cpu_reduce;
extern const ml_matmul_ops ml_cpu_matmul;
extern const ml_softmax_ops ml_cpu_softmax;
extern const ml_optim_ops ml_cpu_optim;
extern const ml_loss_ops ml_cpu_loss;
extern const ml_data_ops ml_cpu_data;
extern const ml_index_ops ml_cpu_index;

static const ml_backend cpu_backend = {
    .name = "cpu",
    .device = ML_CPU,
    .memory = &ml_cpu_memory,
    .elementwise = &ml_cpu_elementwise,
    .reduce = &ml_cpu_reduce,
    .matmul = &ml_cpu_matmul,
    .softmax = &ml_cpu_softmax,
    .optim = &ml_cpu_optim,
    .loss = &ml_cpu_loss,
    .data = &ml_cpu_data,
    .index = &ml_cpu_index,
};

const ml_backend *ml_cpu_backend(void) { return &cpu_backend; }
