/* CPU kernels of the loss family (contract: src/backend/loss.h): the table, which
 * picks the kernel for each call, and the per-block partial sums every forward pass
 * adds up. The kernels are in loss_elementwise.c, loss_class.c (the portable
 * reference of the class losses) and the float32 cross_entropy fast paths
 * loss_class_small.c / loss_class_avx512.c (see loss_cpu.h). */
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "loss_cpu.h"

int ml_loss_slots_init_heap(ml_loss_slots *s, int64_t nb, ml_loss_kind kind) {
    s->n = nb;
    s->heap = calloc((size_t)nb, sizeof(double) + 1);
    if (!s->heap)
        return ml_error_set("%s: out of memory for %lld partial sums", ml_loss_name(kind),
                            (long long)nb);
    s->sum = s->heap;
    s->bad = (unsigned char *)(s->sum + nb);
    return 0;
}

void ml_loss_slots_free(ml_loss_slots *s) {
    free(s->heap);
    s->heap = NULL;
}

/* 0 for a float32 / float64 input, else -1 with the error naming the loss. */
static int check_dtype(const ml_loss_args *a) {
    if (a->input->dtype == ML_F32 || a->input->dtype == ML_F64) return 0;
    return ml_error_set("%s: needs a floating point input, got %s", ml_loss_name(a->p.kind),
                        ml_dtype_name(a->input->dtype));
}

/* The class kinds' forward: the divisor of "mean" first (the gradient made in the
 * pass needs it), then the fastest kernel for the call. */
static int class_forward(ml_loss_args *a, ml_tensor *out) {
    const bool f32 = a->input->dtype == ML_F32;
    if (a->p.kind != ML_LOSS_CROSS_ENTROPY_PROBS && a->p.reduction == ML_REDUCTION_MEAN &&
        ml_cpu_class_norm(a))
        return ml_cpu_bad_class_id(a);
#if defined(__AVX512F__)
    if (f32 && a->p.kind == ML_LOSS_CROSS_ENTROPY && a->p.cls.inner == 1) {
        if (ml_cpu_ce_small(a) && a->p.cls.label_smoothing == 0) return ml_cpu_ce16_forward(a, out);
        return ml_cpu_ce_rows16_forward(a, out);
    }
#else
    if (ml_cpu_ce_small(a) && a->p.cls.label_smoothing == 0 && !a->grad_cache)
        return ml_cpu_ce_small_forward(a, out);
#endif
    return f32 ? ml_cpu_class_forward_f(a, out) : ml_cpu_class_forward_d(a, out);
}

/* The table's entries (contracts: backend/loss.h's ML_LOSS_ENTRIES). */
static int cpu_loss_forward(ml_loss_args *a, ml_tensor *out) {
    if (check_dtype(a)) return -1;
    if (ml_loss_is_class_kind(a->p.kind)) return class_forward(a, out);
    return a->input->dtype == ML_F32 ? ml_cpu_ew_forward_f(a, out) : ml_cpu_ew_forward_d(a, out);
}

static int cpu_loss_backward(const ml_loss_args *a, const ml_tensor *grad_out,
                             ml_tensor *grad_input, ml_tensor *grad_extra) {
    if (check_dtype(a)) return -1;
    const bool f32 = a->input->dtype == ML_F32;
    if (ml_loss_is_class_kind(a->p.kind)) {
        if (!grad_input) return 0;
        if (ml_cpu_ce_small(a) && !(a->p.cls.label_smoothing > 0 && a->weight))
            return ml_cpu_ce_small_backward(a, grad_out, grad_input);
        return f32 ? ml_cpu_class_backward_f(a, grad_out, grad_input)
                   : ml_cpu_class_backward_d(a, grad_out, grad_input);
    }
    return f32 ? ml_cpu_ew_backward_f(a, grad_out, grad_input, grad_extra)
               : ml_cpu_ew_backward_d(a, grad_out, grad_input, grad_extra);
}

static int cpu_loss_scale_grad(const ml_loss_params *p, const ml_tensor *grad_out,
                               ml_tensor *grad) {
    switch (grad->dtype) {
    case ML_F32: return ml_cpu_scale_grad_f(p, grad_out, grad);
    case ML_F64: return ml_cpu_scale_grad_d(p, grad_out, grad);
    default:
        return ml_error_set("%s: needs a floating point gradient, got %s", ml_loss_name(p->kind),
                            ml_dtype_name(grad->dtype));
    }
}

const ml_loss_ops ml_cpu_loss = {ML_LOSS_ENTRIES(ML_BACKEND_ENTRY, cpu_loss_)};
