/* Backend tables from one list per family.
 *
 * Each family header lists its entries once, with their types:
 *
 *   #define ML_OPTIM_ENTRIES(X, P)
 *       X(P, int, adam_step, (ml_tensor *param, ...))
 *       X(P, int, sgd_step, (ml_tensor *param, ...))
 *   typedef struct ml_optim_ops { ML_OPTIM_ENTRIES(ML_BACKEND_FIELD, _) } ml_optim_ops;
 *
 * and a backend defines its table from the same list with its own prefix:
 *
 *   const ml_optim_ops ml_cpu_optim = {ML_OPTIM_ENTRIES(ML_BACKEND_ENTRY, cpu_optim_)};
 *
 * which names cpu_optim_adam_step, cpu_optim_sgd_step, ... in the struct's order
 * (positional, so C++ builds the CUDA tables alike). A table and its struct cannot
 * drift apart, and a kernel that is not written is an undeclared identifier: a
 * compile error, never a NULL found at run time.
 *
 * Every family's table is made this way (memory, elementwise, matmul, softmax,
 * optim, index, data; loss has its own), except that a family whose entries are its
 * op list has one kernel per op: reduce (ML_REDUCE_OPS in reduce.h) names each
 * backend's cpu_reduce_sum, cu_reduce_sum, ... from the list. The elementwise ops'
 * lists (elementwise_ops.h) go one level down: the entries take the op, and each
 * backend expands the lists into its own dispatch. */
#ifndef ML_BACKEND_TABLE_H
#define ML_BACKEND_TABLE_H

#define ML_BACKEND_FIELD(P, ret, name, params) ret(*name) params;
#define ML_BACKEND_ENTRY(P, ret, name, params) P##name,

#endif
