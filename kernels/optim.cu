/* CUDA kernels of the optim family (contract: src/backend/optim.h): one fused
 * pass per parameter, a thread per element reading the gradient and updating the
 * moments and the parameter in place. The arithmetic is the CPU kernel's
 * (src/cpu/optim.c, PyTorch 1.13's single-tensor updates): the scalars are
 * computed on the host in double and rounded to the parameter's dtype first, and
 * each element goes through the same operations in the same order. */
#include <math.h>

#include "common.cuh"

template <class T>
struct adam_scalars {
    T b1, b2, omb1, omb2, wd, eps, decay, inv_bc2s, step_size;
    bool decoupled, l2, maximize, ams;
};

template <class T>
__global__ void k_adam(T *__restrict__ p, const T *__restrict__ gr, T *__restrict__ m,
                       T *__restrict__ v, T *__restrict__ vm, int64_t n, adam_scalars<T> s) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        T g = s.maximize ? -gr[i] : gr[i];
        T pi = p[i];
        if (s.decoupled) pi = pi * s.decay;
        else if (s.l2) g = g + s.wd * pi;
        T mi = m[i] * s.b1 + s.omb1 * g;
        T vi = v[i] * s.b2 + s.omb2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        if (s.ams) {
            T mx = vm[i] > vi ? vm[i] : vi;
            vm[i] = mx;
            vi = mx;
        }
        T denom = cu_sqrt(vi) * s.inv_bc2s + s.eps; /* as the CPU kernel: a multiply by 1 / sqrt(1 - beta2^t) */
        p[i] = pi - s.step_size * (mi / denom);
    }
}

template <class T>
static void adam_launch(ml_tensor *param, const ml_tensor *grad, ml_tensor *exp_avg,
                        ml_tensor *exp_avg_sq, ml_tensor *max_exp_avg_sq, const ml_adam_args *a,
                        int64_t n) {
    adam_scalars<T> s;
    s.b1 = (T)a->beta1;
    s.b2 = (T)a->beta2;
    s.omb1 = (T)(1 - a->beta1);
    s.omb2 = (T)(1 - a->beta2);
    s.wd = (T)a->weight_decay;
    s.eps = (T)a->eps;
    s.decay = (T)(1 - a->lr * a->weight_decay);
    s.inv_bc2s = (T)(1 / sqrt(1 - pow(a->beta2, (double)a->step)));
    s.step_size = (T)(a->lr / (1 - pow(a->beta1, (double)a->step)));
    s.decoupled = a->decoupled;
    s.l2 = !a->decoupled && a->weight_decay != 0;
    s.maximize = a->maximize;
    s.ams = a->amsgrad;
    k_adam<T><<<ml_cu_blocks(n), ML_CU_THREADS, 0, ml_cu_stream()>>>(
        (T *)ml_data(param), (const T *)ml_data(grad), (T *)ml_data(exp_avg),
        (T *)ml_data(exp_avg_sq), a->amsgrad ? (T *)ml_data(max_exp_avg_sq) : (T *)NULL, n, s);
}

static int cu_optim_adam_step(ml_tensor *param, const ml_tensor *grad, ml_tensor *exp_avg,
                        ml_tensor *exp_avg_sq, ml_tensor *max_exp_avg_sq, const ml_adam_args *a) {
    const char *fname = a->decoupled ? "adamw_step" : "adam_step";
    int64_t n = ml_numel(param);
    if (param->dtype != ML_F32 && param->dtype != ML_F64)
        return ml_error_set("%s: parameters must be float32 or float64, got %s", fname,
                            ml_dtype_name(param->dtype));
    if (n == 0) return 0;
    if (param->dtype == ML_F32) adam_launch<float>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, a, n);
    else adam_launch<double>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, a, n);
    ML_CU_LAUNCHED(fname);
    return 0;
}

template <class T>
struct sgd_scalars {
    T lr, wd, mom, omd;
    bool l2, first, nesterov, maximize;
};

template <class T>
__global__ void k_sgd(T *__restrict__ p, const T *__restrict__ gr, T *__restrict__ buf, int64_t n,
                      sgd_scalars<T> s) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        T g = s.maximize ? -gr[i] : gr[i];
        T pi = p[i];
        if (s.l2) g = g + s.wd * pi;
        if (buf) {
            T b = s.first ? g : buf[i] * s.mom + s.omd * g;
            buf[i] = b;
            g = s.nesterov ? g + s.mom * b : b;
        }
        p[i] = pi - s.lr * g;
    }
}

template <class T>
static void sgd_launch(ml_tensor *param, const ml_tensor *grad, ml_tensor *momentum_buf,
                       const ml_sgd_args *a, int64_t n) {
    sgd_scalars<T> s;
    s.lr = (T)a->lr;
    s.wd = (T)a->weight_decay;
    s.mom = (T)a->momentum;
    s.omd = (T)(1 - a->dampening);
    s.l2 = a->weight_decay != 0;
    s.first = a->first_step;
    s.nesterov = a->nesterov;
    s.maximize = a->maximize;
    k_sgd<T><<<ml_cu_blocks(n), ML_CU_THREADS, 0, ml_cu_stream()>>>(
        (T *)ml_data(param), (const T *)ml_data(grad),
        momentum_buf ? (T *)ml_data(momentum_buf) : (T *)NULL, n, s);
}

static int cu_optim_sgd_step(ml_tensor *param, const ml_tensor *grad, ml_tensor *momentum_buf,
                       const ml_sgd_args *a) {
    int64_t n = ml_numel(param);
    if (param->dtype != ML_F32 && param->dtype != ML_F64)
        return ml_error_set("sgd_step: parameters must be float32 or float64, got %s",
                            ml_dtype_name(param->dtype));
    if (n == 0) return 0;
    if (param->dtype == ML_F32) sgd_launch<float>(param, grad, momentum_buf, a, n);
    else sgd_launch<double>(param, grad, momentum_buf, a, n);
    ML_CU_LAUNCHED("sgd_step");
    return 0;
}

/* The updates of n parameters: one launch each, in order (a launch per parameter
 * costs a few microseconds; a fused multi-tensor launch is left for when a GPU
 * shows it matters). */
static int cu_optim_adam_step_multi(int n, ml_tensor *const *params, ml_tensor *const *grads,
                                    ml_tensor *const *exp_avgs, ml_tensor *const *exp_avg_sqs,
                                    ml_tensor *const *max_exp_avg_sqs, const ml_adam_args *args) {
    for (int i = 0; i < n; i++)
        if (cu_optim_adam_step(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i],
                               max_exp_avg_sqs[i], &args[i]))
            return -1;
    return 0;
}

const ml_optim_ops ml_cuda_optim = {ML_OPTIM_ENTRIES(ML_BACKEND_ENTRY, cu_optim_)};
