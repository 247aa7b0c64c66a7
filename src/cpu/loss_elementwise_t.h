/* The elementwise losses' CPU kernels for one element type: included by
 * loss_elementwise.c once per type (no include guard on purpose) with T, the name
 * suffix ML_LOSS_SUF and ML_LOSS_M defined. ML_LOSS_FN(name) is name_f / name_d.
 *
 * The per-element formulas are loss_formulas.h's. The loops below are written once
 * and inlined with the kind and the options that decide their shape (a weight, a
 * gradient to store, "none") as compile-time constants, so each variant is a
 * branch-free loop over arrays that are there: gcc vectorised the loops of the
 * older code with AVX-512 masked loads and stores through the pointers that are
 * NULL when an option is absent, and a masked access to an unmapped page takes a
 * microcode assist on this CPU (mse_loss forward+backward [128, 10]: 3.7 -> 7 us). */

#define EW_LANES 16 /* a block's partial sums: 16 in double, added pairwise */
#define EW_INLINE static inline __attribute__((always_inline))

typedef struct {
    const T *restrict X, *restrict TG, *restrict W, *restrict E;
    T *restrict O;  /* "none": the per-element losses; else NULL */
    T *restrict GC; /* mse_loss's gradient, when wanted */
    T beta, eps, two_s;
    bool log_target, log_input, full;
    ml_loss_kind kind;
    ml_loss_slots *slots;
} ML_LOSS_FN(ew_fwd_job);

/* Element i's loss (times its weight when has_w); raises *bad for bad data. */
EW_INLINE T ML_LOSS_FN(ew_loss_at)(const ML_LOSS_FN(ew_fwd_job) *j, const ml_loss_kind kind,
                                   const bool has_w, int64_t i, int *bad) {
    const T x = j->X[i], t = j->TG[i];
    T l = 0;
    switch (kind) {
    case ML_LOSS_MSE: l = ML_LOSS_FN(ml_mse_loss)(x, t); break;
    case ML_LOSS_L1: l = ML_LOSS_FN(ml_l1_loss)(x, t); break;
    case ML_LOSS_SMOOTH_L1: l = ML_LOSS_FN(ml_smooth_l1_loss)(x, t, j->beta); break;
    case ML_LOSS_BCE:
        *bad |= !ML_LOSS_FN(ml_bce_input_ok)(x);
        l = ML_LOSS_FN(ml_bce_loss)(x, t);
        break;
    case ML_LOSS_BCE_LOGITS:
        l = j->E ? ML_LOSS_FN(ml_bce_logits_pw_loss)(x, t, j->E[i])
                 : ML_LOSS_FN(ml_bce_logits_loss)(x, t);
        break;
    case ML_LOSS_KL_DIV:
        l = j->log_target ? ML_LOSS_FN(ml_kl_div_log_target_loss)(x, t)
                          : ML_LOSS_FN(ml_kl_div_loss)(x, t);
        break;
    case ML_LOSS_POISSON_NLL:
        l = ML_LOSS_FN(ml_poisson_nll_loss)(x, t, j->log_input, j->eps);
        if (j->full && ML_LOSS_FN(ml_poisson_stirling_applies)(t))
            l += ML_LOSS_FN(ml_poisson_stirling)(t);
        break;
    case ML_LOSS_GAUSSIAN_NLL: {
        const T v = j->E[i];
        *bad |= !ML_LOSS_FN(ml_gaussian_nll_var_ok)(v);
        l = ML_LOSS_FN(ml_gaussian_nll_loss)(x, t, ML_LOSS_FN(ml_gaussian_nll_var)(v, j->eps),
                                             j->full);
        break;
    }
    default: break;
    }
    if (has_w) l *= j->W[i];
    return l;
}

/* Elements [lo, hi) of block blk: the losses stored ("none") or summed into the
 * block's slot (16 lanes in double, lane k taking elements lo + k, lo + 16 + k,
 * ..., then the lanes added pairwise: an order fixed by lo and hi alone); mse's
 * gradient stored too when store_g. The job is copied in first: read through j,
 * its fields (two_s, a float) could be changed by the stores to O and GC as far as
 * the compiler knows, and it kept the loop scalar reloading them. Each chunk of 16
 * takes two loops, the losses then their lanes, which gcc vectorises where one loop
 * doing both stayed scalar. */
EW_INLINE void ML_LOSS_FN(ew_fwd_range)(const ML_LOSS_FN(ew_fwd_job) *jp, int64_t blk,
                                        int64_t lo, int64_t hi, const ml_loss_kind kind,
                                        const bool none, const bool has_w, const bool store_g) {
    const ML_LOSS_FN(ew_fwd_job) j = *jp;
    int bad = 0;
    if (none) {
        for (int64_t i = lo; i < hi; i++) {
            j.O[i] = ML_LOSS_FN(ew_loss_at)(&j, kind, has_w, i, &bad);
            if (store_g) j.GC[i] = j.two_s * (j.X[i] - j.TG[i]);
        }
    } else {
        double lane[EW_LANES] = {0};
        T v[EW_LANES];
        int64_t i = lo;
        for (; i + EW_LANES <= hi; i += EW_LANES) {
            for (int k = 0; k < EW_LANES; k++) {
                v[k] = ML_LOSS_FN(ew_loss_at)(&j, kind, has_w, i + k, &bad);
                if (store_g) j.GC[i + k] = j.two_s * (j.X[i + k] - j.TG[i + k]);
            }
            for (int k = 0; k < EW_LANES; k++) lane[k] += (double)v[k];
        }
        for (int k = 0; i + k < hi; k++) {
            lane[k] += (double)ML_LOSS_FN(ew_loss_at)(&j, kind, has_w, i + k, &bad);
            if (store_g) j.GC[i + k] = j.two_s * (j.X[i + k] - j.TG[i + k]);
        }
        /* the lanes added pairwise (8 + 4 + 2 + 1 adds in 4 steps): one after the
         * other they were a chain of 16 dependent adds on the way to the result */
        for (int w = EW_LANES / 2; w >= 1; w /= 2)
            for (int k = 0; k < w; k++) lane[k] += lane[k + w];
        j.slots->sum[blk] = lane[0];
    }
    j.slots->bad[blk] = bad != 0;
}

/* ew_fwd_range with the options that shape the loop as constants (has_w only for
 * the kinds that take a weight, store_g only for mse). */
EW_INLINE void ML_LOSS_FN(ew_fwd_kind)(const ML_LOSS_FN(ew_fwd_job) *j, int64_t blk,
                                       int64_t lo, int64_t hi, const ml_loss_kind kind) {
    const bool has_w = (kind == ML_LOSS_BCE || kind == ML_LOSS_BCE_LOGITS) && j->W;
    const bool store_g = kind == ML_LOSS_MSE && j->GC;
    if (j->O) {
        if (has_w) ML_LOSS_FN(ew_fwd_range)(j, blk, lo, hi, kind, true, true, false);
        else if (store_g) ML_LOSS_FN(ew_fwd_range)(j, blk, lo, hi, kind, true, false, true);
        else ML_LOSS_FN(ew_fwd_range)(j, blk, lo, hi, kind, true, false, false);
    } else {
        if (has_w) ML_LOSS_FN(ew_fwd_range)(j, blk, lo, hi, kind, false, true, false);
        else if (store_g) ML_LOSS_FN(ew_fwd_range)(j, blk, lo, hi, kind, false, false, true);
        else ML_LOSS_FN(ew_fwd_range)(j, blk, lo, hi, kind, false, false, false);
    }
}

/* One block of a forward pass (an ml_block_fn). */
static void ML_LOSS_FN(ew_fwd_block)(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    const ML_LOSS_FN(ew_fwd_job) *j = ctx;
    switch (j->kind) {
    case ML_LOSS_MSE: ML_LOSS_FN(ew_fwd_kind)(j, blk, lo, hi, ML_LOSS_MSE); break;
    case ML_LOSS_L1: ML_LOSS_FN(ew_fwd_kind)(j, blk, lo, hi, ML_LOSS_L1); break;
    case ML_LOSS_SMOOTH_L1: ML_LOSS_FN(ew_fwd_kind)(j, blk, lo, hi, ML_LOSS_SMOOTH_L1); break;
    case ML_LOSS_BCE: ML_LOSS_FN(ew_fwd_kind)(j, blk, lo, hi, ML_LOSS_BCE); break;
    case ML_LOSS_BCE_LOGITS: ML_LOSS_FN(ew_fwd_kind)(j, blk, lo, hi, ML_LOSS_BCE_LOGITS); break;
    case ML_LOSS_KL_DIV: ML_LOSS_FN(ew_fwd_kind)(j, blk, lo, hi, ML_LOSS_KL_DIV); break;
    case ML_LOSS_POISSON_NLL: ML_LOSS_FN(ew_fwd_kind)(j, blk, lo, hi, ML_LOSS_POISSON_NLL); break;
    case ML_LOSS_GAUSSIAN_NLL: ML_LOSS_FN(ew_fwd_kind)(j, blk, lo, hi, ML_LOSS_GAUSSIAN_NLL); break;
    default: break;
    }
}

/* Forward of an elementwise kind (contract: backend/loss.h); mse_loss writes its
 * gradient into a->grad_cache when given (2 (x - t), / norm for "mean"). */
int ML_LOSS_FN(ml_cpu_ew_forward)(ml_loss_args *a, ml_tensor *out) {
    const ml_loss_kind kind = a->p.kind;
    if (ml_loss_is_class_kind(kind))
        return ml_error_set("%s: not an elementwise loss", ml_loss_name(kind));
    const int64_t n = ml_numel(a->input);
    const bool none = a->p.reduction == ML_REDUCTION_NONE;
    ml_loss_slots slots;
    if (ml_loss_slots_init(&slots, ml_nblocks(n, ML_SUM_BLOCK), kind)) return -1;
    const double eps = kind == ML_LOSS_GAUSSIAN_NLL ? a->p.gaussian_nll.eps : a->p.poisson_nll.eps;
    const ML_LOSS_FN(ew_fwd_job) j = {
        .X = (const T *)ml_data(a->input),
        .TG = (const T *)ml_data(a->target),
        .W = a->weight ? (const T *)ml_data(a->weight) : NULL,
        .E = a->extra ? (const T *)ml_data(a->extra) : NULL,
        .O = none ? (T *)ml_data(out) : NULL,
        .GC = kind == ML_LOSS_MSE && a->grad_cache ? (T *)ml_data(a->grad_cache) : NULL,
        .beta = (T)a->p.smooth_l1.beta,
        .eps = (T)eps,
        /* (a division: only when there is a gradient to scale) */
        .two_s = !a->grad_cache ? (T)0
                 : (T)(a->p.reduction == ML_REDUCTION_MEAN ? 2.0 / a->p.norm : 2.0),
        .log_target = a->p.kl_div.log_target,
        .log_input = a->p.poisson_nll.log_input,
        .full = kind == ML_LOSS_GAUSSIAN_NLL ? a->p.gaussian_nll.full : a->p.poisson_nll.full,
        .kind = kind,
        .slots = &slots,
    };
    ml_parallel_blocks(n, ML_SUM_BLOCK, ML_PAR_MIN, ML_LOSS_FN(ew_fwd_block), (void *)&j);
    const bool bad = ml_loss_slots_bad(&slots);
    const double sum = ml_loss_slots_sum(&slots);
    ml_loss_slots_free(&slots);
    if (bad && kind == ML_LOSS_BCE)
        return ml_error_set("binary_cross_entropy: all elements of input should be between 0 "
                            "and 1 (probabilities; use binary_cross_entropy_with_logits for "
                            "logits)");
    if (bad) return ml_error_set("gaussian_nll_loss: var has negative entries");
    if (!none) *(T *)ml_data(out) = (T)ml_loss_reduce(&a->p, sum);
    return 0;
}

/* --- backward ------------------------------------------------------------------ */

typedef struct {
    const T *restrict X, *restrict TG, *restrict W, *restrict E, *restrict G;
    T *restrict GX, *restrict GE;
    T s; /* the reduced loss's grad_out (/ norm for "mean") */
    T beta, eps;
    bool log_target, log_input, none;
    ml_loss_kind kind;
} ML_LOSS_FN(ew_bwd_job);

/* Elements [lo, hi) of the gradients (dl/dx into GX, dl/dvar into GE), each
 * element's derivative times its grad_out (G[i] for "none", else s) and weight. */
EW_INLINE void ML_LOSS_FN(ew_bwd_range)(const ML_LOSS_FN(ew_bwd_job) *jp, int64_t lo,
                                        int64_t hi, const ml_loss_kind kind, const bool none,
                                        const bool has_w, const bool has_gx, const bool has_ge) {
    const ML_LOSS_FN(ew_bwd_job) jl = *jp, *j = &jl; /* see ew_fwd_range */
    for (int64_t i = lo; i < hi; i++) {
        const T x = j->X[i], t = j->TG[i];
        T gx = 0, ge = 0;
        switch (kind) {
        case ML_LOSS_MSE: gx = ML_LOSS_FN(ml_mse_grad)(x, t); break;
        case ML_LOSS_L1: gx = ML_LOSS_FN(ml_l1_grad)(x, t); break;
        case ML_LOSS_SMOOTH_L1: gx = ML_LOSS_FN(ml_smooth_l1_grad)(x, t, j->beta); break;
        case ML_LOSS_BCE: gx = ML_LOSS_FN(ml_bce_grad)(x, t); break;
        case ML_LOSS_BCE_LOGITS:
            gx = j->E ? ML_LOSS_FN(ml_bce_logits_pw_grad)(x, t, j->E[i])
                      : ML_LOSS_FN(ml_bce_logits_grad)(x, t);
            break;
        case ML_LOSS_KL_DIV:
            gx = j->log_target ? ML_LOSS_FN(ml_kl_div_log_target_grad)(t)
                               : ML_LOSS_FN(ml_kl_div_grad)(t);
            break;
        case ML_LOSS_POISSON_NLL:
            gx = ML_LOSS_FN(ml_poisson_nll_grad)(x, t, j->log_input, j->eps);
            break;
        case ML_LOSS_GAUSSIAN_NLL: {
            const T v = ML_LOSS_FN(ml_gaussian_nll_var)(j->E[i], j->eps);
            gx = ML_LOSS_FN(ml_gaussian_nll_grad)(x, t, v);
            ge = ML_LOSS_FN(ml_gaussian_nll_grad_var)(x, t, v);
            break;
        }
        default: break;
        }
        T sc = none ? j->G[i] : j->s;
        if (has_w) sc *= j->W[i];
        if (has_gx) j->GX[i] = sc * gx;
        if (has_ge) j->GE[i] = sc * ge;
    }
}

/* ew_bwd_range with its shape as constants (see ew_fwd_kind). */
EW_INLINE void ML_LOSS_FN(ew_bwd_kind)(const ML_LOSS_FN(ew_bwd_job) *j, int64_t lo, int64_t hi,
                                       const ml_loss_kind kind) {
    const bool has_w = (kind == ML_LOSS_BCE || kind == ML_LOSS_BCE_LOGITS) && j->W;
    const bool has_ge = kind == ML_LOSS_GAUSSIAN_NLL && j->GE;
    const bool has_gx = j->GX != NULL;
    if (j->none) {
        if (has_w) ML_LOSS_FN(ew_bwd_range)(j, lo, hi, kind, true, true, has_gx, false);
        else if (has_ge) ML_LOSS_FN(ew_bwd_range)(j, lo, hi, kind, true, false, has_gx, true);
        else if (has_gx) ML_LOSS_FN(ew_bwd_range)(j, lo, hi, kind, true, false, true, false);
    } else {
        if (has_w) ML_LOSS_FN(ew_bwd_range)(j, lo, hi, kind, false, true, has_gx, false);
        else if (has_ge) ML_LOSS_FN(ew_bwd_range)(j, lo, hi, kind, false, false, has_gx, true);
        else if (has_gx) ML_LOSS_FN(ew_bwd_range)(j, lo, hi, kind, false, false, true, false);
    }
}

/* One range of a backward pass (an ml_range_fn). */
static void ML_LOSS_FN(ew_bwd_block)(void *ctx, int64_t lo, int64_t hi) {
    const ML_LOSS_FN(ew_bwd_job) *j = ctx;
    switch (j->kind) {
    case ML_LOSS_MSE: ML_LOSS_FN(ew_bwd_kind)(j, lo, hi, ML_LOSS_MSE); break;
    case ML_LOSS_L1: ML_LOSS_FN(ew_bwd_kind)(j, lo, hi, ML_LOSS_L1); break;
    case ML_LOSS_SMOOTH_L1: ML_LOSS_FN(ew_bwd_kind)(j, lo, hi, ML_LOSS_SMOOTH_L1); break;
    case ML_LOSS_BCE: ML_LOSS_FN(ew_bwd_kind)(j, lo, hi, ML_LOSS_BCE); break;
    case ML_LOSS_BCE_LOGITS: ML_LOSS_FN(ew_bwd_kind)(j, lo, hi, ML_LOSS_BCE_LOGITS); break;
    case ML_LOSS_KL_DIV: ML_LOSS_FN(ew_bwd_kind)(j, lo, hi, ML_LOSS_KL_DIV); break;
    case ML_LOSS_POISSON_NLL: ML_LOSS_FN(ew_bwd_kind)(j, lo, hi, ML_LOSS_POISSON_NLL); break;
    case ML_LOSS_GAUSSIAN_NLL: ML_LOSS_FN(ew_bwd_kind)(j, lo, hi, ML_LOSS_GAUSSIAN_NLL); break;
    default: break;
    }
}

/* Backward of an elementwise kind from the saved operands (contract:
 * backend/loss.h). Each element's gradient depends on that element alone, so the
 * threads may split the range anywhere. */
int ML_LOSS_FN(ml_cpu_ew_backward)(const ml_loss_args *a, const ml_tensor *grad_out,
                                   ml_tensor *grad_input, ml_tensor *grad_extra) {
    const ml_loss_kind kind = a->p.kind;
    if (ml_loss_is_class_kind(kind))
        return ml_error_set("%s: not an elementwise loss", ml_loss_name(kind));
    const T *G = (const T *)ml_data(grad_out);
    const bool none = a->p.reduction == ML_REDUCTION_NONE;
    const double eps = kind == ML_LOSS_GAUSSIAN_NLL ? a->p.gaussian_nll.eps : a->p.poisson_nll.eps;
    const ML_LOSS_FN(ew_bwd_job) j = {
        .X = (const T *)ml_data(a->input),
        .TG = (const T *)ml_data(a->target),
        .W = a->weight ? (const T *)ml_data(a->weight) : NULL,
        .E = a->extra ? (const T *)ml_data(a->extra) : NULL,
        .G = G,
        .GX = grad_input ? (T *)ml_data(grad_input) : NULL,
        .GE = grad_extra ? (T *)ml_data(grad_extra) : NULL,
        .s = none ? (T)0 : (T)ml_loss_grad_scale(&a->p, (double)G[0]),
        .beta = (T)a->p.smooth_l1.beta,
        .eps = (T)eps,
        .log_target = a->p.kl_div.log_target,
        .log_input = a->p.poisson_nll.log_input,
        .none = none,
        .kind = kind,
    };
    ml_parallel_for(ml_numel(a->input), ML_PAR_MIN, ML_LOSS_FN(ew_bwd_block), (void *)&j);
    return 0;
}

/* --- scale_grad ------------------------------------------------------------------ */

typedef struct {
    const T *restrict G;
    T *restrict GX;
    T g;               /* a reduced loss's grad_out */
    int64_t c, inner;  /* class kinds' "none": row (i, j)'s classes at (i c + k) inner + j */
} ML_LOSS_FN(scale_job);

static void ML_LOSS_FN(scale_by_scalar)(void *ctx, int64_t lo, int64_t hi) {
    const ML_LOSS_FN(scale_job) *j = ctx;
    T *restrict GX = j->GX;
    const T g = j->g;
    for (int64_t i = lo; i < hi; i++) GX[i] *= g;
}

static void ML_LOSS_FN(scale_by_element)(void *ctx, int64_t lo, int64_t hi) {
    const ML_LOSS_FN(scale_job) *j = ctx;
    T *restrict GX = j->GX;
    const T *restrict G = j->G;
    for (int64_t i = lo; i < hi; i++) GX[i] *= G[i];
}

/* Rows [lo, hi) of the batch dim: each class's gradient times its row's grad_out;
 * a zero (an ignored row) stays zero whatever grad_out is (inf, NaN). */
static void ML_LOSS_FN(scale_by_row)(void *ctx, int64_t lo, int64_t hi) {
    const ML_LOSS_FN(scale_job) *j = ctx;
    const int64_t C = j->c, IN = j->inner;
    for (int64_t i = lo; i < hi; i++) {
        const T *g = j->G + i * IN;
        for (int64_t k = 0; k < C; k++) {
            T *gx = j->GX + (i * C + k) * IN;
            for (int64_t q = 0; q < IN; q++) gx[q] = gx[q] != 0 ? gx[q] * g[q] : gx[q];
        }
    }
}

int ML_LOSS_FN(ml_cpu_scale_grad)(const ml_loss_params *p, const ml_tensor *grad_out,
                                  ml_tensor *grad) {
    ML_LOSS_FN(scale_job) j = {
        .G = (const T *)ml_data(grad_out), .GX = (T *)ml_data(grad),
        .c = p->cls.c, .inner = p->cls.inner,
    };
    const int64_t n = ml_numel(grad);
    if (p->reduction != ML_REDUCTION_NONE) {
        j.g = j.G[0];
        if (j.g == (T)1) return 0; /* what loss:backward() seeds: nothing to do */
        ml_parallel_for(n, ML_PAR_MIN, ML_LOSS_FN(scale_by_scalar), &j);
    } else if (!ml_loss_is_class_kind(p->kind)) {
        ml_parallel_for(n, ML_PAR_MIN, ML_LOSS_FN(scale_by_element), &j);
    } else {
        const int64_t row = p->cls.c * p->cls.inner; /* elements per batch entry */
        ml_parallel_for(p->cls.n, ML_PAR_MIN / (row > 0 ? row : 1) + 1,
                        ML_LOSS_FN(scale_by_row), &j);
    }
    return 0;
}

#undef EW_LANES
#undef EW_INLINE
