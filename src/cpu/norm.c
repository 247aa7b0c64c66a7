/* CPU kernels of the norm family (contract: src/backend/norm.h): layer_norm and
 * group_norm forward and backward, a row at a time (norm_rows.h, per type).
 * Forward: rows split over threads (any split gives the same bits). Backward:
 * rows cut into blocks fixed by the shape (ml_norm_row_block), each block's
 * partial weight and bias gradients in its own slot, the slots added in block
 * order, so the result is the same on 1 thread or 2. */
#include <math.h>
#include <stdlib.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"

/* One call's work. slot_w / slot_b: [nblocks, groups * segs] partial sums, or NULL. */
typedef struct {
    const ml_norm_geom *geo;
    const void *x, *w, *b, *g;
    void *y, *mean, *rstd, *gx;
    double *slot_w, *slot_b;
} norm_job;

#define T float
#define SUFFIX f32
#include "norm_rows.h"
#undef T
#undef SUFFIX

#define T double
#define SUFFIX f64
#include "norm_rows.h"
#undef T
#undef SUFFIX

static const void *data_or_null(const ml_tensor *t) { return t ? ml_data(t) : NULL; }

/* Rows of fewer elements than ML_PAR_MIN in all stay on the calling thread. */
static int64_t min_rows(int64_t n) { return ML_PAR_MIN / (n > 0 ? n : 1) + 1; }

static int cpu_norm_forward(const ml_tensor *x, const ml_tensor *w, const ml_tensor *b,
                            const ml_norm_geom *geo, ml_tensor *y, ml_tensor *mean,
                            ml_tensor *rstd) {
    norm_job jb = {geo, ml_data(x), data_or_null(w), data_or_null(b), NULL,
                   ml_data(y), ml_data(mean), ml_data(rstd), NULL, NULL, NULL};
    ml_range_fn fn;
    if (x->dtype == ML_F32) fn = norm_forward_rows_f32;
    else if (x->dtype == ML_F64) fn = norm_forward_rows_f64;
    else return ml_error_set("norm: needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
    ml_parallel_for(geo->rows, min_rows(geo->n), fn, &jb);
    return 0;
}

/* out[k] = the slots' column k added in block order, cast to out's dtype. */
static void combine(const double *slots, int64_t nblk, int64_t naff, ml_tensor *out) {
    for (int64_t k = 0; k < naff; k++) {
        double s = 0;
        for (int64_t blk = 0; blk < nblk; blk++) s += slots[blk * naff + k];
        if (out->dtype == ML_F32) ((float *)ml_data(out))[k] = (float)s;
        else ((double *)ml_data(out))[k] = s;
    }
}

static int cpu_norm_backward(const ml_tensor *x, const ml_tensor *w, const ml_tensor *mean,
                             const ml_tensor *rstd, const ml_tensor *g, const ml_norm_geom *geo,
                             ml_tensor *gx, ml_tensor *gw, ml_tensor *gb) {
    ml_block_fn fn;
    if (x->dtype == ML_F32) fn = norm_backward_block_f32;
    else if (x->dtype == ML_F64) fn = norm_backward_block_f64;
    else return ml_error_set("norm: needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
    const int64_t naff = geo->groups * geo->segs, rb = ml_norm_row_block(geo->rows, geo->n);
    const int64_t nblk = ml_nblocks(geo->rows, rb);
    double *slots = NULL;
    if ((gw || gb) && nblk > 0 && naff > 0) {
        slots = calloc((size_t)(2 * nblk * naff), sizeof(double));
        if (!slots) return ml_error_set("norm: out of memory for %lld partial sums",
                                        (long long)(2 * nblk * naff));
    }
    norm_job jb = {geo, ml_data(x), data_or_null(w), NULL, ml_data(g),
                   NULL, (void *)ml_data(mean), (void *)ml_data(rstd), gx ? ml_data(gx) : NULL,
                   gw && slots ? slots : NULL, gb && slots ? slots + nblk * naff : NULL};
    ml_parallel_blocks(geo->rows, rb, min_rows(geo->n), fn, &jb);
    if (gw && slots) combine(slots, nblk, naff, gw);
    if (gb && slots) combine(slots + nblk * naff, nblk, naff, gb);
    /* no rows (or no affine values): the sums are zero */
    if (gw && !slots && naff > 0) combine(NULL, 0, naff, gw);
    if (gb && !slots && naff > 0) combine(NULL, 0, naff, gb);
    free(slots);
    return 0;
}

const ml_norm_ops ml_cpu_norm = {ML_NORM_ENTRIES(ML_BACKEND_ENTRY, cpu_norm_)};
