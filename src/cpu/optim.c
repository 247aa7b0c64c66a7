/* CPU kernels of the optim family: each optimizer step is one fused pass over a
 * parameter, reading its gradient and updating moments and the parameter in
 * place. The arithmetic follows torch.optim's (PyTorch 1.13) single-tensor
 * updates, in the parameter's dtype with the scalars rounded to it first, so the
 * trajectories match PyTorch's to rounding. */
#include <math.h>

#include "../backend.h"
#include "../error.h"

#define ML_OMP_MIN 32768

/* One Adam/AdamW update of n elements. The flags are compile-time constants at each
 * expansion (see ADAM_VARIANT), so every variant is a branch-free loop over
 * non-aliasing arrays that the compiler vectorises. */
#define ADAM_BODY(T, SQRT, DECOUPLED, L2, MAXIMIZE, AMS)                               \
    _Pragma("omp parallel for simd if (n > ML_OMP_MIN)")                               \
    for (int64_t i = 0; i < n; i++) {                                                  \
        T g = (MAXIMIZE) ? -gr[i] : gr[i];                                             \
        T pi = p[i];                                                                   \
        if (DECOUPLED) pi = pi * decay;                                                \
        if (L2) g = g + wd * pi;                                                       \
        T mi = m[i] * b1 + omb1 * g;                                                   \
        T vi = v[i] * b2 + omb2 * (g * g);                                             \
        m[i] = mi;                                                                     \
        v[i] = vi;                                                                     \
        if (AMS) {                                                                     \
            T mx = vm[i] > vi ? vm[i] : vi;                                            \
            vm[i] = mx;                                                                \
            vi = mx;                                                                   \
        }                                                                              \
        T denom = SQRT(vi) * inv_bc2s + eps;                                           \
        p[i] = pi - step_size * (mi / denom);                                          \
    }

#define ADAM_LOOP(T, SQRT)                                                             \
    do {                                                                               \
        T *restrict p = (T *)ml_data(param), *restrict m = (T *)ml_data(exp_avg);      \
        T *restrict v = (T *)ml_data(exp_avg_sq);                                      \
        const T *restrict gr = (const T *)ml_data(grad);                               \
        T *restrict vm = a->amsgrad ? (T *)ml_data(max_exp_avg_sq) : NULL;             \
        const T b1 = (T)a->beta1, b2 = (T)a->beta2, omb1 = (T)(1 - a->beta1);          \
        const T omb2 = (T)(1 - a->beta2), wd = (T)a->weight_decay, eps = (T)a->eps;    \
        const T decay = (T)(1 - a->lr * a->weight_decay);                              \
        /* torch divides sqrt(v) by sqrt(1 - beta2^t); a multiply by its reciprocal     \
         * (within an ulp of it) spares one of the loop's two vector divisions, which \
         * with the sqrt bound the loop */                                            \
        const T inv_bc2s = (T)(1 / sqrt(1 - pow(a->beta2, (double)a->step)));          \
        const T step_size = (T)(a->lr / (1 - pow(a->beta1, (double)a->step)));         \
        const bool decoupled = a->decoupled, l2 = !a->decoupled && a->weight_decay != 0; \
        (void)wd; (void)decay; (void)vm;                                               \
        if (!a->maximize && !a->amsgrad && !decoupled && !l2) {                        \
            ADAM_BODY(T, SQRT, 0, 0, 0, 0) /* the common case: plain Adam */           \
        } else if (!a->maximize && !a->amsgrad && decoupled) {                         \
            ADAM_BODY(T, SQRT, 1, 0, 0, 0) /* AdamW */                                 \
        } else {                                                                       \
            const bool maximize = a->maximize, ams = a->amsgrad;                       \
            ADAM_BODY(T, SQRT, decoupled, l2, maximize, ams)                           \
        }                                                                              \
    } while (0)

static int cpu_adam_step(ml_tensor *param, const ml_tensor *grad, ml_tensor *exp_avg,
                         ml_tensor *exp_avg_sq, ml_tensor *max_exp_avg_sq, const ml_adam_args *a) {
    int64_t n = ml_numel(param);
    switch (param->dtype) {
    case ML_F32: ADAM_LOOP(float, sqrtf); return 0;
    case ML_F64: ADAM_LOOP(double, sqrt); return 0;
    default: return ml_error_set("adam_step: parameters must be float32 or float64, got %s",
                                 ml_dtype_name(param->dtype));
    }
}

#define SGD_LOOP(T)                                                                    \
    do {                                                                               \
        T *p = (T *)ml_data(param);                                                    \
        const T *gr = (const T *)ml_data(grad);                                        \
        T *buf = momentum_buf ? (T *)ml_data(momentum_buf) : NULL;                     \
        const T lr = (T)a->lr, wd = (T)a->weight_decay, mom = (T)a->momentum;          \
        const T omd = (T)(1 - a->dampening);                                           \
        const bool l2 = a->weight_decay != 0, first = a->first_step;                   \
        const bool nesterov = a->nesterov, maximize = a->maximize;                     \
        _Pragma("omp parallel for if (n > ML_OMP_MIN)")                                \
        for (int64_t i = 0; i < n; i++) {                                              \
            T g = maximize ? -gr[i] : gr[i];                                           \
            T pi = p[i];                                                               \
            if (l2) g = g + wd * pi;                                                   \
            if (buf) {                                                                 \
                T b = first ? g : buf[i] * mom + omd * g;                              \
                buf[i] = b;                                                            \
                g = nesterov ? g + mom * b : b;                                        \
            }                                                                          \
            p[i] = pi - lr * g;                                                        \
        }                                                                              \
    } while (0)

static int cpu_sgd_step(ml_tensor *param, const ml_tensor *grad, ml_tensor *momentum_buf,
                        const ml_sgd_args *a) {
    int64_t n = ml_numel(param);
    switch (param->dtype) {
    case ML_F32: SGD_LOOP(float); return 0;
    case ML_F64: SGD_LOOP(double); return 0;
    default: return ml_error_set("sgd_step: parameters must be float32 or float64, got %s",
                                 ml_dtype_name(param->dtype));
    }
}

const ml_optim_ops ml_cpu_optim = {
    .adam_step = cpu_adam_step,
    .sgd_step = cpu_sgd_step,
};
