/* embedding: checks, the forward through the index family's index_select (rows
 * of the weight), and a backward that sums the gradient's rows per id in a fixed
 * order: the positions of each id are grouped on the host by a stable counting
 * sort (a CSR: src/backend/embedding.h), then one backend call adds each id's
 * rows. On a device the ids are copied to the host for that (one wait), as the
 * forward's range check already does. */
#include "embedding.h"

#include <stdlib.h>

#include "../autograd.h"
#include "../backend.h"
#include "../error.h"
#include "creation.h"
#include "elementwise.h"
#include "index.h"

#define SHAPE(t, buf) ml_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

/* A view of the contiguous t with another shape of as many elements (no autograd). */
static ml_tensor *reshaped(const ml_tensor *t, int ndim, const int64_t *shape) {
    int64_t strides[ML_MAX_DIMS];
    ml_contiguous_strides(ndim, shape, strides);
    return ml_view_raw(t, ndim, shape, strides, t->offset);
}

/* A host int64 tensor [n] (n may be 0), or NULL. */
static ml_tensor *host_i64(int64_t n) { return ml_tensor_empty(ML_I64, ML_CPU, 1, &n); }

/* The CSR of ids [n] (host, checked in [0, v)): order (positions grouped by id,
 * increasing within an id), starts [nseg + 1], rows [nseg] (the ids present but
 * pad, increasing). pad < 0: none. */
static int build_csr(const int64_t *ids, int64_t n, int64_t v, int64_t pad, ml_tensor **order,
                     ml_tensor **starts, ml_tensor **rows, int64_t *nseg) {
    int64_t *count = calloc((size_t)(v > 0 ? v : 1), sizeof(int64_t));
    if (!count) return ml_error_set("embedding: out of memory for %lld counts", (long long)v);
    int64_t kept = 0, segs = 0;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] != pad) {
            if (count[ids[i]]++ == 0) segs++;
            kept++;
        }
    *order = host_i64(kept);
    *starts = *order ? host_i64(segs + 1) : NULL;
    *rows = *starts ? host_i64(segs) : NULL;
    if (!*rows) {
        free(count);
        return -1;
    }
    int64_t *op = ml_data(*order), *sp = ml_data(*starts), *rp = ml_data(*rows);
    /* count[id] becomes the next free slot of id in order */
    int64_t at = 0, u = 0;
    for (int64_t id = 0; id < v; id++) {
        if (!count[id]) continue;
        rp[u] = id;
        sp[u++] = at;
        const int64_t c = count[id];
        count[id] = at;
        at += c;
    }
    sp[u] = at;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] != pad) op[count[ids[i]]++] = i;
    free(count);
    *nseg = segs;
    return 0;
}

static int embedding_backward(ml_node *node, ml_tensor *g, ml_tensor **gin) {
    ml_tensor *ids = node->saved[0];
    const int64_t v = node->ints[0], d = node->ints[1], pad = node->ints[2];
    const bool scale = node->ints[3];
    const ml_device dev = g->storage->device;
    int64_t n = ml_numel(ids), gshape[2] = {n, d}, nseg = 0;
    ml_tensor *hids = ml_to_device(ids, ML_CPU);
    ml_tensor *order = NULL, *starts = NULL, *rows = NULL, *gw = NULL, *g2 = NULL;
    int rc = hids ? build_csr(ml_data(hids), n, v, pad, &order, &starts, &rows, &nseg) : -1;
    if (!rc && dev != ML_CPU) { /* the CSR to the gradient's device */
        ml_tensor *t[3] = {order, starts, rows};
        for (int k = 0; k < 3 && !rc; k++) {
            ml_tensor *moved = ml_to_device(t[k], dev);
            ml_tensor_release(t[k]);
            t[k] = moved;
            if (!moved) rc = -1;
        }
        order = t[0];
        starts = t[1];
        rows = t[2];
    }
    ml_tensor *gc = rc ? NULL : ml_as_contiguous(g);
    g2 = gc ? reshaped(gc, 2, gshape) : NULL;
    gw = g2 ? ml_zeros(g->dtype, dev, node->in_ndim[1], node->in_shape[1]) : NULL;
    const ml_embedding_ops *eo = gw ? ml_need_embedding(gw, "embedding") : NULL;
    if (!eo || (nseg > 0 && eo->dense_backward(g2, order, starts, rows, nseg, scale, gw))) {
        ml_tensor_release(gw);
        gw = NULL;
    }
    ml_tensor_release(hids);
    ml_tensor_release(order);
    ml_tensor_release(starts);
    ml_tensor_release(rows);
    ml_tensor_release(gc);
    ml_tensor_release(g2);
    gin[1] = gw;
    return gw ? 0 : -1;
}

ml_tensor *ml_embedding(ml_tensor *ids, ml_tensor *weight, bool has_pad, int64_t padding_idx,
                        bool scale_grad_by_freq) {
    const char *fname = "embedding";
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    if (ids->dtype != ML_I64)
        return ml_error_set("%s: ids must be an int64 tensor of 0-based ids, got %s (use :long())",
                            fname, ml_dtype_name(ids->dtype)), NULL;
    if (weight->ndim != 2 || !ml_dtype_is_float(weight->dtype))
        return ml_error_set("%s: weight must be a float matrix [num_embeddings, embedding_dim], "
                            "got %s of shape %s", fname, ml_dtype_name(weight->dtype),
                            SHAPE(weight, a)), NULL;
    if (ml_check_same_device(fname, ids, weight)) return NULL;
    const int64_t v = weight->shape[0], d = weight->shape[1];
    if (ids->ndim + 1 > ML_MAX_DIMS)
        return ml_error_set("%s: ids of shape %s have too many dims (at most %d)", fname,
                            SHAPE(ids, a), ML_MAX_DIMS - 1), NULL;
    int64_t pad = -1;
    if (has_pad) {
        if (padding_idx < -v || padding_idx >= v)
            return ml_error_set("%s: padding_idx %lld must be within num_embeddings %lld (-%lld..%lld)",
                                fname, (long long)padding_idx, (long long)v, (long long)v,
                                (long long)v - 1), NULL;
        pad = padding_idx < 0 ? padding_idx + v : padding_idx;
    }
    ml_tensor *idc = ml_as_contiguous(ids);
    if (!idc) return NULL;
    const int64_t n = ml_numel(idc);
    int64_t lo = 0, hi = 0;
    if (n > 0 && ml_index_bounds(idc, &lo, &hi)) {
        ml_tensor_release(idc);
        return NULL;
    }
    if (n > 0 && (lo < 0 || hi >= v)) {
        ml_tensor_release(idc);
        return ml_error_set("%s: id %lld out of range for num_embeddings %lld (ids are 0-based, "
                            "0..%lld; ids of shape %s, weight of shape %s)", fname,
                            (long long)(lo < 0 ? lo : hi), (long long)v, (long long)v - 1,
                            SHAPE(ids, a), SHAPE(weight, b)), NULL;
    }
    int64_t shape[ML_MAX_DIMS], flat[2] = {n, d};
    for (int i = 0; i < ids->ndim; i++) shape[i] = ids->shape[i];
    shape[ids->ndim] = d;
    ml_tensor *wc = ml_as_contiguous(weight);
    ml_tensor *id1 = wc ? reshaped(idc, 1, &n) : NULL;
    ml_tensor *out = id1 ? ml_tensor_empty(weight->dtype, weight->storage->device, ids->ndim + 1, shape) : NULL;
    ml_tensor *out2 = out ? reshaped(out, 2, flat) : NULL;
    const ml_index_ops *io = out2 ? ml_need_index(weight, fname) : NULL;
    if (!io || (n * d > 0 && io->index_select(wc, 0, id1, out2))) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor *in[2] = {NULL, weight};
    ml_node *node = out ? ml_node_attach(out, "EmbeddingBackward", embedding_backward, 2, in) : NULL;
    if (node) {
        node->ints[0] = v;
        node->ints[1] = d;
        node->ints[2] = pad;
        node->ints[3] = scale_grad_by_freq;
        ml_node_save(node, idc);
    }
    ml_tensor_release(idc);
    ml_tensor_release(wc);
    ml_tensor_release(id1);
    ml_tensor_release(out2);
    return out;
}
