/* CPU kernel of the embedding family (contract: src/backend/embedding.h): the
 * weight gradient as a sum per id over the CSR of its positions
 * (embedding_segments.h, per type). Segments (ids) are independent and split over
 * threads; within one, the rows of g are added in the order of their positions,
 * so the bits never depend on the thread count. */
#include "../backend.h"
#include "../error.h"
#include "parallel.h"

typedef struct {
    const void *g;
    const int64_t *order, *starts, *rows;
    int64_t d;
    bool scale_by_freq;
    void *gw;
} embedding_job;

#define T float
#define SUFFIX f32
#include "embedding_segments.h"
#undef T
#undef SUFFIX

#define T double
#define SUFFIX f64
#include "embedding_segments.h"
#undef T
#undef SUFFIX

static int cpu_embedding_dense_backward(const ml_tensor *g, const ml_tensor *order,
                                        const ml_tensor *starts, const ml_tensor *rows,
                                        int64_t nseg, bool scale_by_freq, ml_tensor *gw) {
    const int64_t d = gw->ndim == 2 ? gw->shape[1] : 1;
    embedding_job jb = {ml_data(g), ml_data(order), ml_data(starts), ml_data(rows), d,
                        scale_by_freq, ml_data(gw)};
    ml_range_fn fn;
    if (g->dtype == ML_F32) fn = embedding_segments_f32;
    else if (g->dtype == ML_F64) fn = embedding_segments_f64;
    else return ml_error_set("embedding: needs a floating point weight, got %s", ml_dtype_name(g->dtype));
    /* a segment's work is its count times d: split by segments once the whole
     * gradient is worth a fork */
    const int64_t total = ml_numel(g);
    ml_parallel_for(nseg, total >= ML_PAR_MIN ? 1 : nseg + 1, fn, &jb);
    return 0;
}

const ml_embedding_ops ml_cpu_embedding = {ML_EMBEDDING_ENTRIES(ML_BACKEND_ENTRY, cpu_embedding_)};
