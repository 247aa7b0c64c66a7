/* Backend family: the embedding's weight gradient (its forward is the index
 * family's index_select of weight rows).
 *
 * Contract: the positions of the ids, grouped by id, come as a CSR built by
 * ops/embedding.c (a stable counting sort, so each id's positions are in
 * increasing order and the padding id is left out): for segment u < nseg,
 * rows[u] is the id and order[starts[u] .. starts[u + 1]) the positions i whose
 * id it is. Then
 *   gw[rows[u], :] = scale_u * sum over those i, in that order, of g[i, :]
 * with scale_u = 1 / (starts[u + 1] - starts[u]) when scale_by_freq, else 1.
 * g [N, D] and gw [V, D] contiguous, gw zeroed by the caller; order, starts
 * and rows int64 on g's device. A fixed order of additions per row, with no
 * atomics: the same bits on every run and thread count. */
#ifndef ML_BACKEND_EMBEDDING_H
#define ML_BACKEND_EMBEDDING_H

#include "../tensor.h"
#include "table.h"

/* The family's entries (see table.h): dense_backward, as above. */
#define ML_EMBEDDING_ENTRIES(X, P)                                                       \
    X(P, int, dense_backward,                                                            \
      (const ml_tensor *g, const ml_tensor *order, const ml_tensor *starts,               \
       const ml_tensor *rows, int64_t nseg, bool scale_by_freq, ml_tensor *gw))

typedef struct ml_embedding_ops {
    ML_EMBEDDING_ENTRIES(ML_BACKEND_FIELD, _)
} ml_embedding_ops;

#endif
