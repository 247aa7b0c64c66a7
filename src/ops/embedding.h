/* Embeddings: torch.nn.functional.embedding. */
#ifndef ML_OPS_EMBEDDING_H
#define ML_OPS_EMBEDDING_H

#include "../tensor.h"

/* weight [V, D] (float) looked up at ids (int64 0-based ids, any shape): out
 * [*ids, D]. An id outside [0, V) is an error naming it and V. has_pad: row
 * padding_idx (in [-V, V); negative counts from the end) gets no gradient.
 * scale_grad_by_freq: each row's gradient is divided by how often its id occurs
 * in ids. Backward (weight only): a deterministic sum per id, no atomics. */
ml_tensor *ml_embedding(ml_tensor *ids, ml_tensor *weight, bool has_pad, int64_t padding_idx,
                        bool scale_grad_by_freq);

#endif
