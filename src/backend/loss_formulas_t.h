/* The elementwise losses' per-element formulas for one element type T; included by
 * loss_formulas.h once per type (no include guard on purpose), with T, the name
 * suffix ML_LOSS_SUF and ML_LOSS_M (the math function of T: logf or log) defined.
 *
 * x is the input, t the target; "loss" functions give the element's loss, "grad"
 * functions its derivative w.r.t. x (for a grad_out of 1, before any weight or
 * mean's divisor). Each is the exact sequence of operations the kernels have
 * always used, so values do not change with the move here. */

/* mse_loss: (x - t)^2 */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_mse_loss)(T x, T t) {
    const T d = x - t;
    return d * d;
}
/* 2 (x - t) (the backward kernel's; the forward that makes the gradient scales
 * x - t by 2 / norm at once) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_mse_grad)(T x, T t) { return 2 * (x - t); }

/* l1_loss: |x - t| */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_l1_loss)(T x, T t) { return ML_LOSS_M(fabs)(x - t); }
/* sign(x - t): 0 at a tie and for NaN */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_l1_grad)(T x, T t) {
    const T d = x - t;
    return (T)((d > 0) - (d < 0));
}

/* smooth_l1_loss: 0.5 z^2 / beta below beta, z - 0.5 beta above (z = |x - t|) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_smooth_l1_loss)(T x, T t, T beta) {
    const T z = ML_LOSS_M(fabs)(x - t);
    return z < beta ? (T)0.5 * z * z / beta : z - (T)0.5 * beta;
}
/* as torch's kernel: at beta = 0 a tie gets -1, not sign(0) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_smooth_l1_grad)(T x, T t, T beta) {
    const T d = x - t;
    return d <= -beta ? (T)-1 : d >= beta ? (T)1 : d / beta;
}

/* binary_cross_entropy: x must be a probability (NaN is not) */
ML_HOST_DEVICE static inline bool ML_LOSS_FN(ml_bce_input_ok)(T x) { return x >= 0 && x <= 1; }
/* -(t log x + (1 - t) log(1 - x)), each log clamped at -100 as torch */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_bce_loss)(T x, T t) {
    T l1 = ML_LOSS_M(log1p)(-x), l0 = ML_LOSS_M(log)(x);
    l1 = l1 < (T)ML_LOSS_LOG_MIN ? (T)ML_LOSS_LOG_MIN : l1;
    l0 = l0 < (T)ML_LOSS_LOG_MIN ? (T)ML_LOSS_LOG_MIN : l0;
    return (t - 1) * l1 - t * l0;
}
/* (x - t) / max(x (1 - x), 1e-12) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_bce_grad)(T x, T t) {
    T den = (1 - x) * x;
    den = den < (T)ML_LOSS_BCE_EPS ? (T)ML_LOSS_BCE_EPS : den;
    return (x - t) / den;
}

/* -log(sigmoid(x)) in its stable form: max(-x, 0) + log1p(exp(-|x|)) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_softplus_neg)(T x) {
    return (x < 0 ? -x : (T)0) + ML_LOSS_M(log1p)(ML_LOSS_M(exp)(-ML_LOSS_M(fabs)(x)));
}
/* sigmoid(x) without overflow: exp(-|x|) is at most 1 */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_sigmoid_stable)(T x) {
    const T ex = ML_LOSS_M(exp)(-ML_LOSS_M(fabs)(x));
    return x >= 0 ? 1 / (1 + ex) : ex / (1 + ex);
}
/* binary_cross_entropy_with_logits: (1 - t) x - log(sigmoid(x)) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_bce_logits_loss)(T x, T t) {
    return (1 - t) * x + ML_LOSS_FN(ml_softplus_neg)(x);
}
/* with pos_weight pw: (1 - t) x - (1 + (pw - 1) t) log(sigmoid(x)) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_bce_logits_pw_loss)(T x, T t, T pw) {
    const T lw = (T)1 + (pw - 1) * t;
    return (1 - t) * x + lw * ML_LOSS_FN(ml_softplus_neg)(x);
}
/* sigmoid(x) - t */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_bce_logits_grad)(T x, T t) {
    return ML_LOSS_FN(ml_sigmoid_stable)(x) - t;
}
/* (pw t + 1 - t) sigmoid(x) - pw t */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_bce_logits_pw_grad)(T x, T t, T pw) {
    const T pt = pw * t;
    return (pt + 1 - t) * ML_LOSS_FN(ml_sigmoid_stable)(x) - pt;
}

/* kl_div (input x holds log-probabilities): t (log t - x), xlogy(0, 0) = 0 */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_kl_div_loss)(T x, T t) {
    const T xl = t == 0 ? (T)0 : t * ML_LOSS_M(log)(t);
    return xl - t * x;
}
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_kl_div_grad)(T t) { return -t; }
/* log_target: the target holds log-probabilities too: exp(t) (t - x) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_kl_div_log_target_loss)(T x, T t) {
    return ML_LOSS_M(exp)(t) * (t - x);
}
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_kl_div_log_target_grad)(T t) {
    return -ML_LOSS_M(exp)(t);
}

/* poisson_nll_loss: exp(x) - t x (log_input), else x - t log(x + eps) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_poisson_nll_loss)(T x, T t, bool log_input, T eps) {
    return log_input ? ML_LOSS_M(exp)(x) - t * x : x - t * ML_LOSS_M(log)(x + eps);
}
/* full = true adds Stirling's approximation of log(t!) where t > 1 (only there) */
ML_HOST_DEVICE static inline bool ML_LOSS_FN(ml_poisson_stirling_applies)(T t) { return t > 1; }
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_poisson_stirling)(T t) {
    return t * ML_LOSS_M(log)(t) - t + (T)0.5 * ML_LOSS_M(log)((T)ML_LOSS_2PI * t);
}
/* exp(x) - t (log_input), else 1 - t / (x + eps) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_poisson_nll_grad)(T x, T t, bool log_input, T eps) {
    return log_input ? ML_LOSS_M(exp)(x) - t : 1 - t / (x + eps);
}

/* gaussian_nll_loss: var must not be negative; below eps it is eps for the value
 * (the gradient flows through as through torch's clone: see ml_gaussian_nll_grad_var) */
ML_HOST_DEVICE static inline bool ML_LOSS_FN(ml_gaussian_nll_var_ok)(T v) { return !(v < 0); }
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_gaussian_nll_var)(T v, T eps) { return v < eps ? eps : v; }
/* 0.5 (log v + (x - t)^2 / v), plus 0.5 log(2 pi) with full; v already clamped */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_gaussian_nll_loss)(T x, T t, T v, bool full) {
    const T d = x - t;
    T l = (T)0.5 * (ML_LOSS_M(log)(v) + d * d / v);
    if (full) l += (T)(0.5 * ML_LOSS_LN_2PI);
    return l;
}
/* d/dx: (x - t) / v */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_gaussian_nll_grad)(T x, T t, T v) { return (x - t) / v; }
/* d/dvar: 0.5 (1 / v - (x - t)^2 / v^2) */
ML_HOST_DEVICE static inline T ML_LOSS_FN(ml_gaussian_nll_grad_var)(T x, T t, T v) {
    const T d = x - t;
    return (T)0.5 * (1 / v - d * d / (v * v));
}
