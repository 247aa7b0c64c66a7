/* Optimizer updates: argument checks, then one fused backend pass. */
#include "optim.h"

#include <stdlib.h>

#include "../backend.h"
#include "../error.h"
#include "elementwise.h"

/* state must match param exactly: shape, dtype, device, contiguous */
static int check_state(const char *fname, const char *what, const ml_tensor *param,
                       const ml_tensor *s) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    if (!ml_same_shape(param, s))
        return ml_error_set("%s: %s has shape %s, the parameter %s", fname, what,
                            ml_shape_str(s->ndim, s->shape, a, sizeof a),
                            ml_shape_str(param->ndim, param->shape, b, sizeof b));
    if (s->dtype != param->dtype)
        return ml_error_set("%s: %s is %s, the parameter %s", fname, what, ml_dtype_name(s->dtype),
                            ml_dtype_name(param->dtype));
    if (s->storage->device != param->storage->device)
        return ml_error_set("%s: %s is on %s, the parameter on %s", fname, what,
                            ml_device_name(s->storage->device),
                            ml_device_name(param->storage->device));
    if (!ml_is_contiguous(s))
        return ml_error_set("%s: %s must be contiguous", fname, what);
    return 0;
}

/* The gradient as a contiguous tensor of param's dtype (a new reference). */
static ml_tensor *prepare(const char *fname, const ml_tensor *param, ml_tensor *grad) {
    char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
    if (!ml_dtype_is_float(param->dtype))
        return ml_error_set("%s: parameters must be floating point, got %s", fname,
                            ml_dtype_name(param->dtype)), NULL;
    if (!ml_is_contiguous(param))
        return ml_error_set("%s: the parameter must be contiguous", fname), NULL;
    if (!ml_same_shape(param, grad))
        return ml_error_set("%s: gradient has shape %s, the parameter %s", fname,
                            ml_shape_str(grad->ndim, grad->shape, a, sizeof a),
                            ml_shape_str(param->ndim, param->shape, b, sizeof b)), NULL;
    if (ml_check_same_device(fname, param, grad)) return NULL;
    if (grad->dtype == param->dtype && ml_is_contiguous(grad)) return ml_tensor_retain(grad);
    ml_tensor *c = ml_contiguous_copy(grad);
    if (!c || c->dtype == param->dtype) return c;
    ml_tensor *out = ml_tensor_empty_like(param);
    if (out && ml_copy_(out, c)) {
        ml_tensor_release(out);
        out = NULL;
    }
    ml_tensor_release(c);
    return out;
}

static const ml_optim_ops *optim_ops(const char *fname, const ml_tensor *param) {
    return ml_need_optim(param, fname);
}

/* The checks of one parameter's Adam update; returns its gradient ready for the
 * kernel (a new reference) or NULL with ml_error set. */
static ml_tensor *adam_prepare(ml_tensor *param, ml_tensor *grad, ml_tensor *exp_avg,
                               ml_tensor *exp_avg_sq, ml_tensor *max_exp_avg_sq,
                               const ml_adam_args *a, const ml_optim_ops **ops) {
    const char *fname = a->decoupled ? "adamw_step" : "adam_step";
    if (a->step < 1)
        return ml_error_set("%s: step must be >= 1, got %lld", fname, (long long)a->step), NULL;
    if (a->amsgrad && !max_exp_avg_sq)
        return ml_error_set("%s: amsgrad needs the max_exp_avg_sq state", fname), NULL;
    if (check_state(fname, "exp_avg", param, exp_avg) ||
        check_state(fname, "exp_avg_sq", param, exp_avg_sq) ||
        (a->amsgrad && check_state(fname, "max_exp_avg_sq", param, max_exp_avg_sq)))
        return NULL;
    *ops = optim_ops(fname, param);
    return *ops ? prepare(fname, param, grad) : NULL;
}

int ml_adam_step(ml_tensor *param, ml_tensor *grad, ml_tensor *exp_avg, ml_tensor *exp_avg_sq,
                 ml_tensor *max_exp_avg_sq, const ml_adam_args *a) {
    const ml_optim_ops *ops = NULL;
    ml_tensor *g = adam_prepare(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, a, &ops);
    if (!g) return -1;
    int rc = ops->adam_step(param, g, exp_avg, exp_avg_sq, a->amsgrad ? max_exp_avg_sq : NULL, a);
    ml_tensor_release(g);
    return rc;
}

int ml_adam_step_multi(int n, ml_tensor *const *params, ml_tensor *const *grads,
                       ml_tensor *const *exp_avgs, ml_tensor *const *exp_avg_sqs,
                       ml_tensor *const *max_exp_avg_sqs, const ml_adam_args *args) {
    if (n <= 0) return 0;
    ml_tensor **ready = calloc((size_t)n * 2, sizeof *ready); /* grads, then the vmax list */
    if (!ready) return ml_error_set("adam_step: out of memory for %d parameters", n);
    ml_tensor **vmax = ready + n;
    const ml_optim_ops *ops = NULL;
    bool one_device = true;
    int rc = 0, i;
    for (i = 0; i < n && rc == 0; i++) {
        const ml_optim_ops *o = NULL;
        ready[i] = adam_prepare(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i],
                                max_exp_avg_sqs[i], &args[i], &o);
        if (!ready[i]) rc = -1;
        vmax[i] = args[i].amsgrad ? max_exp_avg_sqs[i] : NULL;
        if (i > 0 && o != ops) one_device = false;
        ops = o;
    }
    if (rc == 0 && one_device)
        rc = ops->adam_step_multi(n, params, ready, exp_avgs, exp_avg_sqs, vmax, args);
    else
        for (int k = 0; k < n && rc == 0; k++)
            rc = ml_need_optim(params[k], "adam_step")->adam_step(params[k], ready[k], exp_avgs[k],
                                                                  exp_avg_sqs[k], vmax[k], &args[k]);
    for (int k = 0; k < n; k++) ml_tensor_release(ready[k]);
    free(ready);
    return rc;
}

int ml_sgd_step(ml_tensor *param, ml_tensor *grad, ml_tensor *momentum_buf, const ml_sgd_args *a) {
    const char *fname = "sgd_step";
    if (momentum_buf && check_state(fname, "momentum_buffer", param, momentum_buf)) return -1;
    const ml_optim_ops *ops = optim_ops(fname, param);
    ml_tensor *g = ops ? prepare(fname, param, grad) : NULL;
    if (!g) return -1;
    int rc = ops->sgd_step(param, g, momentum_buf, a);
    ml_tensor_release(g);
    return rc;
}
