/* nll_loss / cross_entropy, the portable reference, for one element type: included
 * by loss_class.c once per type (no include guard on purpose) with T, the name
 * suffix ML_LOSS_SUF, CL_EXP (T's exp: the vectorisable ml_expf_clamped for float,
 * libm's exp for double) and CL_SIMD_SHORT / CL_SIMD_SHORT_SUM (the simd pragmas
 * of rows shorter than a vector) defined.
 *
 * The input is [n, c, inner]; row r = (i, j) has its c classes at base + k * inner,
 * base = i * c * inner + j. Each row: its logsumexp (max, then the exps' sum in
 * double), its loss term in double, and with a grad_cache its gradient. */

#define CL_PRAGMA(s) _Pragma(s)

/* One row of c classes at stride st (the callers pass a literal 1 when the class
 * dim is the last, so the inlined copy has unit stride and vectorises). */
static inline T ML_LOSS_FN(row_max)(const T *x, int64_t c, int64_t st) {
    T m = -INFINITY;
    _Pragma("omp simd reduction(max:m)")
    for (int64_t k = 0; k < c; k++) m = x[k * st] > m ? x[k * st] : m;
    return m;
}

/* The sum of exp(x - m) over the row, in double. */
static inline double ML_LOSS_FN(row_sumexp)(const T *x, int64_t c, int64_t st, T m) {
    double s = 0;
    _Pragma("omp simd reduction(+:s)")
    for (int64_t k = 0; k < c; k++) s += (double)CL_EXP(x[k * st] - m);
    return s;
}

/* row_sumexp for rows shorter than a full vector (c < 32, unit stride), in half
 * vectors: at full width the loop ran scalar. */
static inline double ML_LOSS_FN(row_sumexp_short)(const T *x, int64_t c, T m) {
    double s = 0;
    CL_PRAGMA(CL_SIMD_SHORT_SUM)
    for (int64_t k = 0; k < c; k++) s += (double)CL_EXP(x[k] - m);
    return s;
}

/* g = pa * softmax(x) - sub (- sub * w[k] with class weights w) */
static inline void ML_LOSS_FN(row_grad)(const T *x, int64_t c, int64_t st, T lse, T pa, T sub,
                                       const T *w, T *g) {
    if (w) {
        _Pragma("omp simd")
        for (int64_t k = 0; k < c; k++) g[k * st] = pa * CL_EXP(x[k * st] - lse) - sub * w[k];
    } else {
        _Pragma("omp simd")
        for (int64_t k = 0; k < c; k++) g[k * st] = pa * CL_EXP(x[k * st] - lse) - sub;
    }
}

/* row_grad for short rows (c < 32, unit stride) */
static inline void ML_LOSS_FN(row_grad_short)(const T *x, int64_t c, T lse, T pa, T sub,
                                             const T *w, T *g) {
    if (w) {
        CL_PRAGMA(CL_SIMD_SHORT)
        for (int64_t k = 0; k < c; k++) g[k] = pa * CL_EXP(x[k] - lse) - sub * w[k];
    } else {
        CL_PRAGMA(CL_SIMD_SHORT)
        for (int64_t k = 0; k < c; k++) g[k] = pa * CL_EXP(x[k] - lse) - sub;
    }
}

/* What every row of one call shares. */
typedef struct {
    const T *X, *W, *TP;   /* input, class weights or NULL, probabilities (_PROBS) */
    const int64_t *TI;     /* class ids (not _PROBS) */
    T *O;                  /* "none": the per-row losses; else NULL */
    T *GC;                 /* forward: the gradient, when wanted; backward: grad_input */
    const T *G;            /* backward: grad_out */
    double *LSE;           /* each row's logsumexp, or NULL */
    int64_t C, IN, ign;
    double ls, lsc, wtot;  /* label smoothing, ls / c, the class weights' sum */
    double gsc;            /* forward: the gradient's scale (1 / norm for "mean") */
    double s;              /* backward: the reduced loss's grad_out (/ norm) */
    bool none;
    ml_loss_kind kind;
    ml_loss_slots *slots;
} ML_LOSS_FN(class_job);

static void ML_LOSS_FN(class_job_init)(ML_LOSS_FN(class_job) *j, const ml_loss_args *a) {
    memset(j, 0, sizeof *j);
    j->X = (const T *)ml_data(a->input);
    j->W = a->weight ? (const T *)ml_data(a->weight) : NULL;
    j->kind = a->p.kind;
    if (a->p.kind == ML_LOSS_CROSS_ENTROPY_PROBS) j->TP = (const T *)ml_data(a->target);
    else j->TI = (const int64_t *)ml_data(a->target);
    j->C = a->p.cls.c;
    j->IN = a->p.cls.inner;
    j->ign = a->p.cls.ignore_index;
    j->ls = a->p.cls.label_smoothing;
    j->lsc = a->p.cls.label_smoothing / (double)a->p.cls.c;
    double wtot = 0;
    if (j->W) for (int64_t k = 0; k < j->C; k++) wtot += (double)j->W[k];
    else wtot = (double)j->C;
    j->wtot = wtot;
    j->none = a->p.reduction == ML_REDUCTION_NONE;
}

/* Row r's gradient for a grad_out of sc (times 1 / norm for "mean"), into GX;
 * lse_d: the row's logsumexp. Rows that count for nothing get zeros. */
static inline void ML_LOSS_FN(class_row_grad)(const ML_LOSS_FN(class_job) *j, int64_t r,
                                              double sc, double lse_d, T *GX) {
    const int64_t C = j->C, IN = j->IN, i = r / IN, q = r % IN;
    const T *x = j->X + i * C * IN + q, *W = j->W;
    T *gx = GX + i * C * IN + q;
    const double ls = j->ls, lsc = j->lsc;
    if (j->kind == ML_LOSS_CROSS_ENTROPY_PROBS) {
        /* d/dx_k of -sum_m w_m t'_m log_softmax(x)_m, t' = (1 - ls) t + ls / c:
         * softmax(x)_k sum_m w_m t'_m - w_k t'_k */
        const T *t = j->TP + i * C * IN + q;
        double swt = 0;
        for (int64_t k = 0; k < C; k++)
            swt += (W ? (double)W[k] : 1.0) * ((double)t[k * IN] * (1 - ls) + lsc);
        for (int64_t k = 0; k < C; k++) {
            const double p = exp((double)x[k * IN] - lse_d);
            const double wk = (W ? (double)W[k] : 1.0) * ((double)t[k * IN] * (1 - ls) + lsc);
            gx[k * IN] = (T)(sc * (p * swt - wk));
        }
        return;
    }
    const int64_t t = j->TI[r];
    if (t == j->ign || t < 0 || t >= C) {
        for (int64_t k = 0; k < C; k++) gx[k * IN] = 0;
        return;
    }
    const double wt = W ? (double)W[t] : 1.0;
    if (j->kind == ML_LOSS_NLL) {
        for (int64_t k = 0; k < C; k++) gx[k * IN] = 0;
        gx[t * IN] = (T)(-sc * wt);
        return;
    }
    /* cross_entropy with ids: the probabilities' case with t' = (1 - ls) [k == t]
     * + ls / c: pa softmax(x)_k - sub (w_k), then a1 off the target's class */
    const T lse = (T)lse_d;
    const T a1 = (T)(sc * (1 - ls) * wt), a2 = (T)(sc * lsc * j->wtot);
    const T pa = a1 + a2;
    const T sub = (T)(sc * lsc);
    const T *wl = ls > 0 ? W : NULL;
    if (IN == 1 && C < 32) ML_LOSS_FN(row_grad_short)(x, C, lse, pa, sub, wl, gx);
    else if (IN == 1) ML_LOSS_FN(row_grad)(x, C, 1, lse, pa, sub, wl, gx);
    else ML_LOSS_FN(row_grad)(x, C, IN, lse, pa, sub, wl, gx);
    gx[t * IN] -= a1;
}

/* Rows [lo, hi) of block blk: the losses ("none") or their sum in row order into
 * the block's slot; logsumexps and gradients when wanted. */
static void ML_LOSS_FN(class_fwd_block)(void *ctx, int64_t blk, int64_t lo, int64_t hi) {
    const ML_LOSS_FN(class_job) *j = ctx;
    const int64_t C = j->C, IN = j->IN;
    const T *W = j->W;
    const double ls = j->ls, lsc = j->lsc;
    double acc = 0;
    int bad = 0;
    for (int64_t r = lo; r < hi; r++) {
        const int64_t i = r / IN, q = r % IN;
        const T *x = j->X + i * C * IN + q;
        double l = 0, lse = 0;
        if (j->kind != ML_LOSS_NLL) {
            const T m = IN == 1 ? ML_LOSS_FN(row_max)(x, C, 1) : ML_LOSS_FN(row_max)(x, C, IN);
            const double s = IN != 1 ? ML_LOSS_FN(row_sumexp)(x, C, IN, m)
                             : C < 32 ? ML_LOSS_FN(row_sumexp_short)(x, C, m)
                                      : ML_LOSS_FN(row_sumexp)(x, C, 1, m);
            lse = (double)m + log(s);
            if (j->LSE) j->LSE[r] = lse;
            if (j->GC) ML_LOSS_FN(class_row_grad)(j, r, j->gsc, lse, j->GC);
        }
        if (j->kind == ML_LOSS_CROSS_ENTROPY_PROBS) {
            const T *t = j->TP + i * C * IN + q;
            for (int64_t k = 0; k < C; k++) {
                const double tk = (double)t[k * IN] * (1 - ls) + lsc;
                l -= (W ? (double)W[k] : 1.0) * tk * ((double)x[k * IN] - lse);
            }
        } else {
            const int64_t t = j->TI[r];
            if (t != j->ign) {
                if (t < 0 || t >= C) {
                    bad = 1;
                } else {
                    const double wt = W ? (double)W[t] : 1.0;
                    if (j->kind == ML_LOSS_NLL) {
                        l = -wt * (double)x[t * IN];
                    } else {
                        l = -(1 - ls) * wt * ((double)x[t * IN] - lse);
                        if (ls > 0) {
                            double sm = 0;
                            for (int64_t k = 0; k < C; k++)
                                sm += (W ? (double)W[k] : 1.0) * ((double)x[k * IN] - lse);
                            l -= lsc * sm;
                        }
                    }
                }
            }
        }
        if (j->O) j->O[r] = (T)l;
        else acc += l;
    }
    j->slots->sum[blk] = acc;
    j->slots->bad[blk] = (unsigned char)bad;
}

int ML_LOSS_FN(ml_cpu_class_forward)(ml_loss_args *a, ml_tensor *out) {
    const int64_t rows = a->p.cls.n * a->p.cls.inner, C = a->p.cls.c;
    const int64_t R = ml_cpu_class_block_rows(C);
    ml_loss_slots slots;
    if (ml_loss_slots_init(&slots, ml_nblocks(rows, R), a->p.kind)) return -1;
    ML_LOSS_FN(class_job) j;
    ML_LOSS_FN(class_job_init)(&j, a);
    j.O = j.none ? (T *)ml_data(out) : NULL;
    j.GC = a->grad_cache ? (T *)ml_data(a->grad_cache) : NULL;
    j.LSE = a->aux ? (double *)ml_data(a->aux) : NULL;
    j.gsc = a->p.reduction == ML_REDUCTION_MEAN ? 1.0 / a->p.norm : 1.0;
    j.slots = &slots;
    ml_parallel_blocks(rows, R, ml_cpu_class_min_parallel(C), ML_LOSS_FN(class_fwd_block), &j);
    const bool bad = ml_loss_slots_bad(&slots);
    const double sum = ml_loss_slots_sum(&slots);
    ml_loss_slots_free(&slots);
    if (bad) return ml_cpu_bad_class_id(a);
    if (!j.none) *(T *)ml_data(out) = (T)ml_loss_reduce(&a->p, sum);
    return 0;
}

/* Rows [lo, hi) of the backward pass: each row's gradient from its saved
 * logsumexp (the rows are independent: any split gives the same values). */
static void ML_LOSS_FN(class_bwd_range)(void *ctx, int64_t lo, int64_t hi) {
    const ML_LOSS_FN(class_job) *j = ctx;
    for (int64_t r = lo; r < hi; r++)
        ML_LOSS_FN(class_row_grad)(j, r, j->none ? (double)j->G[r] : j->s,
                                   j->LSE ? j->LSE[r] : 0, j->GC);
}

int ML_LOSS_FN(ml_cpu_class_backward)(const ml_loss_args *a, const ml_tensor *grad_out,
                                      ml_tensor *grad_input) {
    ML_LOSS_FN(class_job) j;
    ML_LOSS_FN(class_job_init)(&j, a);
    j.G = (const T *)ml_data(grad_out);
    j.GC = (T *)ml_data(grad_input);
    j.LSE = a->aux ? (double *)ml_data(a->aux) : NULL;
    j.s = j.none ? 0 : ml_loss_grad_scale(&a->p, (double)j.G[0]);
    ml_parallel_for(a->p.cls.n * a->p.cls.inner, ml_cpu_class_min_parallel(a->p.cls.c),
                    ML_LOSS_FN(class_bwd_range), &j);
    return 0;
}

#undef CL_PRAGMA
