/* The backend op table: the one place that knows about a device.
 *
 * Ops (src/ops/) check shapes, allocate outputs, record autograd, and reach the
 * device only through this table; the CPU (src/cpu/) and CUDA (kernels/) backends
 * are implementations of it, one struct per op family, as in ggml. A family a
 * backend has not got is NULL, and ops report that as an error. */
#ifndef ML_BACKEND_H
#define ML_BACKEND_H

#include "backend/data.h"
#include "backend/elementwise.h"
#include "backend/index.h"
#include "backend/loss.h"
#include "backend/matmul.h"
#include "backend/memory.h"
#include "backend/optim.h"
#include "backend/reduce.h"
#include "backend/softmax.h"
#include "backend/sort.h"
/* convolution, pooling, batch norm (issue 16) */
#include "backend/batchnorm.h"
#include "backend/conv.h"
#include "backend/pool.h"
/* normalisation, embeddings (issue 16) */
#include "backend/embedding.h"
#include "backend/norm.h"

typedef struct ml_backend {
    const char *name;
    ml_device device;
    const ml_memory_ops *memory;
    const ml_elementwise_ops *elementwise;
    const ml_reduce_ops *reduce;
    const ml_matmul_ops *matmul;
    const ml_softmax_ops *softmax;
    const ml_loss_ops *loss;
    const ml_optim_ops *optim;
    const ml_index_ops *index;
    const ml_data_ops *data;
    const ml_sort_ops *sort; /* sort, cumsum (issue 16) */
    /* convolution, pooling, batch norm (issue 16) */
    const ml_conv_ops *conv;
    const ml_pool_ops *pool;
    const ml_batchnorm_ops *batchnorm;
    /* normalisation, embeddings (issue 16) */
    const ml_norm_ops *norm;
    const ml_embedding_ops *embedding;
} ml_backend;

/* The backend of a device, or NULL with ml_error set ("cuda: no GPU ..."). */
const ml_backend *ml_backend_get(ml_device dev);
/* The backend for tensor t (never NULL: a tensor exists only on a usable device). */
const ml_backend *ml_backend_of(const ml_tensor *t);

/* Each backend's table; ml_cuda_backend() is NULL when CUDA is not compiled in or
 * no GPU is present (and sets ml_error to say which). */
const ml_backend *ml_cpu_backend(void);
const ml_backend *ml_cuda_backend(void);

/* Ops reach a family only through these: ml_need_<family>(t, "op") is t's
 * backend's family, or NULL with "op: not available on <device>" set when that
 * backend lacks it (a NULL family is never dereferenced). */
int ml_backend_missing(const ml_tensor *t, const char *op);
#define ML_BACKEND_NEED(FAMILY)                                                         \
    static inline const ml_##FAMILY##_ops *ml_need_##FAMILY(const ml_tensor *t,        \
                                                            const char *op) {          \
        const ml_##FAMILY##_ops *ops = ml_backend_of(t)->FAMILY;                        \
        if (!ops) ml_backend_missing(t, op);                                            \
        return ops;                                                                     \
    }
ML_BACKEND_NEED(elementwise)
ML_BACKEND_NEED(reduce)
ML_BACKEND_NEED(matmul)
ML_BACKEND_NEED(softmax)
ML_BACKEND_NEED(loss)
ML_BACKEND_NEED(optim)
ML_BACKEND_NEED(index)
ML_BACKEND_NEED(data)
ML_BACKEND_NEED(sort)
ML_BACKEND_NEED(conv)
ML_BACKEND_NEED(pool)
ML_BACKEND_NEED(batchnorm)
ML_BACKEND_NEED(norm)
ML_BACKEND_NEED(embedding)
#undef ML_BACKEND_NEED

#endif
