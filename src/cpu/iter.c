#include "iter.h"

#include <string.h>

void ml_iter_init(ml_iter *it, int n, const ml_tensor *const *t) {
    it->n = n;
    it->ndim = 0;
    /* drop size-1 dims, then merge neighbours that are contiguous in every tensor */
    for (int d = 0; d < t[0]->ndim; d++) {
        if (t[0]->shape[d] == 1) continue;
        int nd = it->ndim;
        bool merge = nd > 0;
        for (int k = 0; merge && k < n; k++)
            merge = it->strides[k][nd - 1] == t[k]->strides[d] * t[0]->shape[d];
        if (merge) {
            it->shape[nd - 1] *= t[0]->shape[d];
            for (int k = 0; k < n; k++) it->strides[k][nd - 1] = t[k]->strides[d];
        } else {
            it->shape[nd] = t[0]->shape[d];
            for (int k = 0; k < n; k++) it->strides[k][nd] = t[k]->strides[d];
            it->ndim++;
        }
    }
    if (ml_numel(t[0]) == 0) { /* nothing to visit: one empty run */
        it->ndim = 1;
        it->shape[0] = 0;
        for (int k = 0; k < n; k++) it->strides[k][0] = 0;
    }
}
