/* Inside the CPU loss family: what its files share. Not a public header.
 *
 *   loss.c                the family's table (ml_cpu_loss): picks a kernel per call
 *   loss_elementwise.c    mse .. gaussian_nll, forward / backward, and scale_grad
 *     loss_elementwise_t.h  their body, included once per element type
 *   loss_class.c          nll / cross_entropy: the portable reference, any dtype and
 *     loss_class_t.h        layout (its body, once per element type)
 *   loss_class_small.c    float32 cross_entropy, < 32 classes, class dim last: 16
 *                         rows at a time in portable C (the vector build's loops)
 *   loss_class_avx512.c   float32 cross_entropy, class dim last, with AVX-512
 *                         intrinsics (compiled to nothing without __AVX512F__)
 *
 * The fast paths compute what the reference computes, to float32 rounding; the
 * tests compare them (tests/c/test_loss.c, tests/lua/loss_small_classes_spec.lua).
 *
 * Deterministic sums: a forward pass cuts its elements (rows for the class kinds)
 * into blocks fixed by the sizes alone, sums each block in a fixed order into its
 * own slot (ml_loss_slots) under ml_parallel_blocks, and adds the slots in block
 * order (parallel.h), so the result does not depend on the thread count. */
#ifndef ML_CPU_LOSS_CPU_H
#define ML_CPU_LOSS_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "../backend.h"
#include "../backend/loss_formulas.h"
#include "parallel.h"

/* --- per-block partial sums ------------------------------------------------ */

#define ML_LOSS_STACK_SLOTS 64

/* The partial loss sum and the bad-data flag of each block of a forward pass; on
 * the stack up to ML_LOSS_STACK_SLOTS blocks, else on the heap. Not to be copied
 * (the pointers point into it). */
typedef struct ml_loss_slots {
    int64_t n;
    double *sum;
    unsigned char *bad;
    double sum_buf[ML_LOSS_STACK_SLOTS];
    unsigned char bad_buf[ML_LOSS_STACK_SLOTS];
    void *heap;
} ml_loss_slots;

/* ml_loss_slots_init beyond ML_LOSS_STACK_SLOTS blocks. */
int ml_loss_slots_init_heap(ml_loss_slots *s, int64_t nb, ml_loss_kind kind);

/* Slots for nb blocks, zeroed. Returns 0, or -1 with ml_error set (out of memory,
 * naming the loss). Inline: a loss on the MLP's [128, 10] is a few hundred
 * nanoseconds, and its one block should not pay for more than it uses. */
static inline int ml_loss_slots_init(ml_loss_slots *s, int64_t nb, ml_loss_kind kind) {
    if (nb > ML_LOSS_STACK_SLOTS) return ml_loss_slots_init_heap(s, nb, kind);
    s->n = nb;
    s->heap = NULL;
    s->sum = s->sum_buf;
    s->bad = s->bad_buf;
    for (int64_t b = 0; b < nb; b++) {
        s->sum[b] = 0;
        s->bad[b] = 0;
    }
    return 0;
}

void ml_loss_slots_free(ml_loss_slots *s);
/* The slots' sums added in block order. */
static inline double ml_loss_slots_sum(const ml_loss_slots *s) { return ml_sum_slots(s->sum, s->n); }
/* Whether any block found bad data. */
static inline bool ml_loss_slots_bad(const ml_loss_slots *s) {
    unsigned char bad = 0;
    for (int64_t b = 0; b < s->n; b++) bad |= s->bad[b];
    return bad != 0;
}

/* The reduced loss from the sum of the per-element losses: / norm for "mean". */
static inline double ml_loss_reduce(const ml_loss_params *p, double sum) {
    return p->reduction == ML_REDUCTION_MEAN ? sum / p->norm : sum;
}
/* The factor of a reduced loss's gradient: grad_out, / norm for "mean". */
static inline double ml_loss_grad_scale(const ml_loss_params *p, double grad_out) {
    return p->reduction == ML_REDUCTION_MEAN ? grad_out / p->norm : grad_out;
}

/* --- elementwise kinds (loss_elementwise.c) ---------------------------------- */

int ml_cpu_ew_forward_f(ml_loss_args *a, ml_tensor *out);
int ml_cpu_ew_forward_d(ml_loss_args *a, ml_tensor *out);
int ml_cpu_ew_backward_f(const ml_loss_args *a, const ml_tensor *grad_out,
                         ml_tensor *grad_input, ml_tensor *grad_extra);
int ml_cpu_ew_backward_d(const ml_loss_args *a, const ml_tensor *grad_out,
                         ml_tensor *grad_input, ml_tensor *grad_extra);
/* The family's scale_grad for a float32 / float64 gradient (any kind). */
int ml_cpu_scale_grad_f(const ml_loss_params *p, const ml_tensor *grad_out, ml_tensor *grad);
int ml_cpu_scale_grad_d(const ml_loss_params *p, const ml_tensor *grad_out, ml_tensor *grad);

/* --- class kinds: shared ------------------------------------------------------ */

/* Rows per summed block of a class loss with c classes: about ML_SUM_BLOCK
 * elements, a multiple of 16 (the small-class kernels' row blocks never straddle
 * two), at least 16. */
int64_t ml_cpu_class_block_rows(int64_t c);
/* Rows below which a class loss runs on the calling thread (ML_PAR_MIN elements). */
int64_t ml_cpu_class_min_parallel(int64_t c);

/* The divisor of "mean" for class ids (nll, cross_entropy): the summed weight (1
 * each without weights) of the rows whose id is not ignore_index, added in row
 * order on the calling thread, so every kernel and every thread count gets the
 * same bits. Sets a->p.norm. Returns -1 (nothing set, no error) when an id is
 * neither ignore_index nor in [0, c). */
int ml_cpu_class_norm(ml_loss_args *a);
/* The error for a class id outside [0, c) that is not ignore_index: names the
 * first one in row order. Returns -1. */
int ml_cpu_bad_class_id(const ml_loss_args *a);

/* --- class kinds: the portable reference (loss_class.c) -------------------------
 * Any float dtype, any [n, c, inner]; with a grad_cache (cross_entropy*), the
 * gradient in the same pass. Forward expects p.norm already set for "mean"
 * (ml_cpu_class_norm, or n * inner for _PROBS). */
int ml_cpu_class_forward_f(ml_loss_args *a, ml_tensor *out);
int ml_cpu_class_forward_d(ml_loss_args *a, ml_tensor *out);
int ml_cpu_class_backward_f(const ml_loss_args *a, const ml_tensor *grad_out,
                            ml_tensor *grad_input);
int ml_cpu_class_backward_d(const ml_loss_args *a, const ml_tensor *grad_out,
                            ml_tensor *grad_input);

/* --- float32 cross_entropy with few classes (loss_class_small.c) ---------------- */

#define ML_CE_LANES 16   /* rows per block of the small-class kernels */
#define ML_CE_SMALL_C 32 /* "few": fewer classes than this */

/* Whether the small-class kernels take a cross_entropy call: float32, class ids,
 * class dim last (inner 1), 1 <= c < 32. */
bool ml_cpu_ce_small(const ml_loss_args *a);
/* Forward without a grad_cache and without label smoothing (portable C; the
 * AVX-512 build has ml_cpu_ce16_forward instead). p.norm set for "mean". */
int ml_cpu_ce_small_forward(ml_loss_args *a, ml_tensor *out);
/* Backward from the saved logsumexps (aux), except label smoothing with weights. */
int ml_cpu_ce_small_backward(const ml_loss_args *a, const ml_tensor *grad_out,
                             ml_tensor *grad_input);

/* --- float32 cross_entropy, class dim last, AVX-512 (loss_class_avx512.c) ------- */

#if defined(__AVX512F__)
/* c < 32, no label smoothing; with or without a grad_cache. p.norm set for "mean". */
int ml_cpu_ce16_forward(ml_loss_args *a, ml_tensor *out);
/* Any c (label smoothing too), one pass per row; with or without a grad_cache. */
int ml_cpu_ce_rows16_forward(ml_loss_args *a, ml_tensor *out);
/* The inner loop of ml_cpu_ce_small_backward's 16-row block: gb[e] for the block's
 * ne elements from each row's coefficients (lse, pa, sub, keep: 16 each). */
void ml_cpu_ce16_backward_block(const float *xb, int32_t ne, const int32_t *row,
                                const float *lse, const float *pa, const float *sub,
                                const float *keep, float *gb);
#endif

/* The element -> row table of a block of 16 rows of c classes (row[j * c + k] = j),
 * per thread, made again only when c changes. */
const int32_t *ml_cpu_ce_row_of(int32_t c);

#endif
