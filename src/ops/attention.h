/* Attention: torch.nn.functional.scaled_dot_product_attention (PyTorch 2.x
 * semantics), built from the batched matmul, softmax and elementwise ops, so its
 * backward is theirs and it runs on every device that has them. */
#ifndef ML_OPS_ATTENTION_H
#define ML_OPS_ATTENTION_H

#include "../tensor.h"

/* q [*, L, E], k [*, S, E], v [*, S, Ev] (float; batch dims broadcast as matmul's)
 * -> [*, L, Ev] = dropout(softmax(q @ k^T * scale + mask)) @ v.
 *  - mask NULL; a float tensor added to the scores (differentiable); or a uint8
 *    (bool) tensor where 1 takes part and 0 is masked (-inf). It must broadcast
 *    to the scores' shape [*, L, S] (else an error naming both shapes).
 *  - is_causal: position j > i masked (the upper triangle of [L, S], top-left
 *    aligned); not together with a mask.
 *  - dropout_p in [0, 1]: dropout of the attention weights, the kept ones scaled
 *    by 1 / (1 - p), the mask drawn from ml's generator.
 *  - scale: NAN for 1 / sqrt(E).
 * weights: when not NULL, receives the attention weights [*, L, S] (after
 * dropout, as torch 1.13's multi-head attention returns them): a new reference. */
ml_tensor *ml_scaled_dot_product_attention(ml_tensor *q, ml_tensor *k, ml_tensor *v,
                                           ml_tensor *mask, bool is_causal, double dropout_p,
                                           double scale, ml_tensor **weights);

#endif
