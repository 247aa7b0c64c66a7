/* Normalisation layers: layer_norm and group_norm (torch.nn.functional's), with
 * their backward for the input, the weight and the bias. */
#ifndef ML_OPS_NORM_H
#define ML_OPS_NORM_H

#include "../tensor.h"

/* x [*, normalized_shape...] normalised over its last nshape dims, which must be
 * normalized_shape; w and b (NULL: none) of shape normalized_shape, cast to x's
 * dtype. Returns y of x's shape (float32 or float64 x only). */
ml_tensor *ml_layer_norm(ml_tensor *x, int nshape, const int64_t *normalized_shape,
                         ml_tensor *w, ml_tensor *b, double eps);
/* x [N, C, *] normalised over each of groups groups of C / groups channels (and
 * all of *); w and b (NULL: none) of shape [C]. Returns y of x's shape. */
ml_tensor *ml_group_norm(ml_tensor *x, int64_t groups, ml_tensor *w, ml_tensor *b, double eps);

#endif
