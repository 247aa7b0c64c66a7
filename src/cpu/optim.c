/* CPU kernels of the optim family: each optimizer step is one fused pass over a
 * parameter, reading its gradient and updating moments and the parameter in
 * place. The arithmetic follows torch.optim's (PyTorch 1.13) single-tensor
 * updates, in the parameter's dtype with the scalars rounded to it first, so the
 * trajectories match PyTorch's to rounding. */
#include <math.h>
#include <stdlib.h>

#include "../backend.h"
#include "../error.h"
#include "parallel.h"

/* One Adam/AdamW update of elements [lo, hi). The flags are compile-time constants
 * at each expansion (see ADAM_LOOP), so every variant is a branch-free loop over
 * non-aliasing arrays that the compiler vectorises. */
#define ADAM_BODY(T, SQRT, DECOUPLED, L2, MAXIMIZE, AMS)                               \
    _Pragma("omp simd")                                                                \
    for (int64_t i = lo; i < hi; i++) {                                                \
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
        T *restrict p = (T *)ml_data(s->param), *restrict m = (T *)ml_data(s->exp_avg); \
        T *restrict v = (T *)ml_data(s->exp_avg_sq);                                   \
        const T *restrict gr = (const T *)ml_data(s->grad);                            \
        T *restrict vm = a->amsgrad ? (T *)ml_data(s->max_exp_avg_sq) : NULL;          \
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

/* One parameter's tensors. */
typedef struct {
    ml_tensor *param, *exp_avg, *exp_avg_sq, *max_exp_avg_sq;
    const ml_tensor *grad;
} adam_set;

/* The update of elements [lo, hi) of one parameter (dtypes checked by the caller). */
static void adam_range(const adam_set *s, const ml_adam_args *a, int64_t lo, int64_t hi) {
    if (s->param->dtype == ML_F32) ADAM_LOOP(float, sqrtf);
    else ADAM_LOOP(double, sqrt);
}

static int check_float(const ml_tensor *param) {
    if (param->dtype == ML_F32 || param->dtype == ML_F64) return 0;
    return ml_error_set("adam_step: parameters must be float32 or float64, got %s",
                        ml_dtype_name(param->dtype));
}

/* Parameters laid end to end as one range of `total` elements, which the threads
 * split evenly (ranges start on 16-element boundaries, so no two threads write one
 * cache line of a parameter, each parameter's storage starting on one): each walks
 * the parameters its range covers. One fork/join for the whole model, and the small
 * parameters (biases) no longer run on one thread after the big ones. */
typedef struct {
    int n;
    const adam_set *sets;
    const ml_adam_args *args;
} adam_job;

static void adam_job_range(void *ctx, int64_t lo, int64_t hi) {
    const adam_job *j = ctx;
    int64_t base = 0;
    for (int i = 0; i < j->n && base < hi; i++) {
        const int64_t len = ml_numel(j->sets[i].param);
        const int64_t a = lo > base ? lo - base : 0, b = hi - base < len ? hi - base : len;
        if (a < b) adam_range(&j->sets[i], &j->args[i], a, b);
        base += len;
    }
}

static void adam_sets(int n, const adam_set *sets, const ml_adam_args *args, int64_t total) {
    adam_job job = {n, sets, args};
    ml_parallel_for(total, ML_PAR_MIN, adam_job_range, &job);
}

static int cpu_optim_adam_step(ml_tensor *param, const ml_tensor *grad, ml_tensor *exp_avg,
                         ml_tensor *exp_avg_sq, ml_tensor *max_exp_avg_sq, const ml_adam_args *a) {
    if (check_float(param)) return -1;
    const adam_set s = {param, exp_avg, exp_avg_sq, max_exp_avg_sq, grad};
    adam_sets(1, &s, a, ml_numel(param));
    return 0;
}

static int cpu_optim_adam_step_multi(int n, ml_tensor *const *params, ml_tensor *const *grads,
                               ml_tensor *const *exp_avgs, ml_tensor *const *exp_avg_sqs,
                               ml_tensor *const *max_exp_avg_sqs, const ml_adam_args *args) {
    adam_set *sets = malloc(sizeof *sets * (size_t)(n > 0 ? n : 1));
    if (!sets) return ml_error_set("adam_step: out of memory for %d parameters", n);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (check_float(params[i])) {
            free(sets);
            return -1;
        }
        sets[i] = (adam_set){params[i], exp_avgs[i], exp_avg_sqs[i], max_exp_avg_sqs[i], grads[i]};
        total += ml_numel(params[i]);
    }
    adam_sets(n, sets, args, total);
    free(sets);
    return 0;
}

typedef struct {
    ml_tensor *param, *momentum_buf;
    const ml_tensor *grad;
    const ml_sgd_args *a;
} sgd_job;

/* One SGD update of elements [lo, hi), torch.optim.SGD's single-tensor arithmetic. */
#define SGD_RANGE(T)                                                                   \
    do {                                                                               \
        const sgd_job *j = ctx;                                                        \
        const ml_sgd_args *a = j->a;                                                   \
        T *p = (T *)ml_data(j->param);                                                 \
        const T *gr = (const T *)ml_data(j->grad);                                     \
        T *buf = j->momentum_buf ? (T *)ml_data(j->momentum_buf) : NULL;               \
        const T lr = (T)a->lr, wd = (T)a->weight_decay, mom = (T)a->momentum;          \
        const T omd = (T)(1 - a->dampening);                                           \
        const bool l2 = a->weight_decay != 0, first = a->first_step;                   \
        const bool nesterov = a->nesterov, maximize = a->maximize;                     \
        for (int64_t i = lo; i < hi; i++) {                                            \
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

static void sgd_range_f32(void *ctx, int64_t lo, int64_t hi) { SGD_RANGE(float); }
static void sgd_range_f64(void *ctx, int64_t lo, int64_t hi) { SGD_RANGE(double); }

static int cpu_optim_sgd_step(ml_tensor *param, const ml_tensor *grad, ml_tensor *momentum_buf,
                              const ml_sgd_args *a) {
    sgd_job job = {param, momentum_buf, grad, a};
    switch (param->dtype) {
    case ML_F32: ml_parallel_for(ml_numel(param), ML_PAR_MIN, sgd_range_f32, &job); return 0;
    case ML_F64: ml_parallel_for(ml_numel(param), ML_PAR_MIN, sgd_range_f64, &job); return 0;
    default: return ml_error_set("sgd_step: parameters must be float32 or float64, got %s",
                                 ml_dtype_name(param->dtype));
    }
}

const ml_optim_ops ml_cpu_optim = {ML_OPTIM_ENTRIES(ML_BACKEND_ENTRY, cpu_optim_)};
