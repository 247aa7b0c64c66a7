/* CUDA kernels of the loss family (contract: src/backend/loss.h). The formulas,
 * clamps and divisors are the CPU kernels' (src/cpu/loss.c, PyTorch 1.13's), in
 * the same order of operations per element.
 *
 * Forward: one kernel computes the per-element (or per-row) losses, writing them
 * for "none" or summing them in double per block; a one-block kernel adds the
 * block sums in a fixed order (deterministic) and writes the reduced loss,
 * divided on the device by the mean's divisor (the summed weights of the counted
 * targets for nll/cross_entropy). A kernel that finds bad data raises a status
 * flag; the host reads the status back (one wait on the stream) only for the
 * kinds that can have bad data or must return the divisor: bce, gaussian_nll and
 * the class kinds. mse, l1, smooth_l1, bce_with_logits, kl_div and poisson_nll
 * never wait.
 *
 * Class kinds: a thread per row when rows are short or strided (inner > 1), a
 * warp per row when the class dim is the last one and has 32 classes or more
 * (coalesced loads, shuffle reductions). Backward: one kernel, the gradient
 * already scaled by grad_out (read on the device) and the mean's divisor. */
#include <math.h>

#include "common.cuh"

#define LN_2PI 1.8378770664093454835606594728112
#define BCE_EPS 1e-12
#define ML_2PI 6.283185307179586476925286766559
#define MAX_PARTIALS 1024

struct loss_params {
    int kind;
    bool none, mean;
    double norm, beta, eps, ls;
    bool log_input, full, log_target;
    int64_t n, c, inner, ignore;
};

static loss_params params_of(const ml_loss_args *a) {
    loss_params p;
    p.kind = a->kind;
    p.none = a->reduction == ML_REDUCTION_NONE;
    p.mean = a->reduction == ML_REDUCTION_MEAN;
    p.norm = a->norm;
    p.beta = a->beta;
    p.eps = a->eps;
    p.ls = a->label_smoothing;
    p.log_input = a->log_input;
    p.full = a->full;
    p.log_target = a->log_target;
    p.n = a->n;
    p.c = a->c;
    p.inner = a->inner;
    p.ignore = a->ignore_index;
    return p;
}

static bool is_class_kind(ml_loss_kind k) { return k >= ML_LOSS_NLL && k < ML_LOSS_COUNT; }

/* --- elementwise losses --- */

template <class T>
__device__ __forceinline__ T ew_loss(const loss_params &p, T x, T t, const T *E, int64_t i,
                                     bool &bad) {
    const T beta = (T)p.beta, eps = (T)p.eps;
    T l = 0;
    switch (p.kind) {
    case ML_LOSS_MSE: {
        T d = x - t;
        l = d * d;
    } break;
    case ML_LOSS_L1: l = cu_abs(x - t); break;
    case ML_LOSS_SMOOTH_L1: {
        T z = cu_abs(x - t);
        l = z < beta ? (T)0.5 * z * z / beta : z - (T)0.5 * beta;
    } break;
    case ML_LOSS_BCE: {
        if (!(x >= 0 && x <= 1)) bad = true;
        T l1 = cu_log1p(-x), l0 = cu_log(x);
        l1 = l1 < (T)-100 ? (T)-100 : l1;
        l0 = l0 < (T)-100 ? (T)-100 : l0;
        l = (t - 1) * l1 - t * l0;
    } break;
    case ML_LOSS_BCE_LOGITS: {
        T sp = (x < 0 ? -x : (T)0) + cu_log1p(cu_exp(-cu_abs(x)));
        T lw = E ? (T)1 + (E[i] - 1) * t : (T)1;
        l = (1 - t) * x + lw * sp;
    } break;
    case ML_LOSS_KL_DIV:
        if (p.log_target) l = cu_exp(t) * (t - x);
        else {
            T xl = t == 0 ? (T)0 : t * cu_log(t);
            l = xl - t * x;
        }
        break;
    case ML_LOSS_POISSON_NLL:
        l = p.log_input ? cu_exp(x) - t * x : x - t * cu_log(x + eps);
        if (p.full && t > 1) l += t * cu_log(t) - t + (T)0.5 * cu_log((T)ML_2PI * t);
        break;
    case ML_LOSS_GAUSSIAN_NLL: {
        T v = E[i];
        if (v < 0) bad = true;
        v = v < eps ? eps : v;
        T d = x - t;
        l = (T)0.5 * (cu_log(v) + d * d / v);
        if (p.full) l += (T)(0.5 * LN_2PI);
    } break;
    default: break;
    }
    return l;
}

template <class T>
__global__ void k_ew_forward(loss_params p, const T *__restrict__ X, const T *__restrict__ TG,
                             const T *__restrict__ W, const T *__restrict__ E, T *__restrict__ O,
                             int64_t n, double *__restrict__ partial, ml_cu_status *st) {
    double acc = 0;
    bool bad = false;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        T l = ew_loss<T>(p, X[i], TG[i], E, i, bad);
        if (W) l *= W[i];
        if (p.none) O[i] = l;
        else acc += (double)l;
    }
    if (bad) ml_cu_flag(st, 0);
    if (!p.none) {
        acc = ml_cu_block_sum(acc);
        if (threadIdx.x == 0) partial[blockIdx.x] = acc;
    }
}

/* The reduced loss from the block sums (and, for the class kinds, the summed
 * weights, which are then the mean's divisor); both also go to the status. */
template <class T>
__global__ void k_finish(const double *__restrict__ pacc, const double *__restrict__ pw, int nb,
                         T *__restrict__ O, bool mean, double norm, ml_cu_status *st) {
    double a = 0, w = 0;
    for (int k = threadIdx.x; k < nb; k += blockDim.x) {
        if (pacc) a += pacc[k];
        if (pw) w += pw[k];
    }
    a = ml_cu_block_sum(a);
    w = ml_cu_block_sum(w);
    if (threadIdx.x == 0) {
        st->acc = a;
        st->wsum = w;
        if (O) {
            double d = pw ? w : norm;
            O[0] = (T)(mean ? a / d : a);
        }
    }
}

template <class T>
__global__ void k_ew_backward(loss_params p, const T *__restrict__ X, const T *__restrict__ TG,
                              const T *__restrict__ W, const T *__restrict__ E,
                              const T *__restrict__ G, T *__restrict__ GX, T *__restrict__ GE,
                              int64_t n) {
    const T beta = (T)p.beta, eps = (T)p.eps;
    const T s = p.none ? (T)0 : (T)(p.mean ? (double)G[0] / p.norm : (double)G[0]);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        T x = X[i], t = TG[i], gx = 0, ge = 0;
        switch (p.kind) {
        case ML_LOSS_MSE: gx = 2 * (x - t); break;
        case ML_LOSS_L1: {
            double d = (double)(x - t);
            gx = (T)((d > 0) - (d < 0));
        } break;
        case ML_LOSS_SMOOTH_L1: {
            T d = x - t;
            /* as torch: at beta = 0 a tie gets -1, not sign(0) */
            gx = d <= -beta ? (T)-1 : d >= beta ? (T)1 : d / beta;
        } break;
        case ML_LOSS_BCE: {
            T den = (1 - x) * x;
            den = den < (T)BCE_EPS ? (T)BCE_EPS : den;
            gx = (x - t) / den;
        } break;
        case ML_LOSS_BCE_LOGITS: {
            T ex = cu_exp(-cu_abs(x));
            T sig = x >= 0 ? 1 / (1 + ex) : ex / (1 + ex);
            if (E) {
                T pt = E[i] * t;
                gx = (pt + 1 - t) * sig - pt;
            } else {
                gx = sig - t;
            }
        } break;
        case ML_LOSS_KL_DIV: gx = p.log_target ? -cu_exp(t) : -t; break;
        case ML_LOSS_POISSON_NLL: gx = p.log_input ? cu_exp(x) - t : 1 - t / (x + eps); break;
        case ML_LOSS_GAUSSIAN_NLL: {
            T v = E[i];
            v = v < eps ? eps : v;
            T d = x - t;
            gx = d / v;
            ge = (T)0.5 * (1 / v - d * d / (v * v));
        } break;
        default: break;
        }
        T sc = p.none ? G[i] : s;
        if (W) sc *= W[i];
        if (GX) GX[i] = sc * gx;
        if (GE) GE[i] = sc * ge;
    }
}

/* --- losses over a class dim ---
 * Rows r = (i, j) of [n, c, inner] have their classes at base + k * inner. A group
 * of G lanes (1, or a warp) takes a row; lane l handles classes l, l + G, ... */

template <int G, class T>
__device__ __forceinline__ T group_sum(T v) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <int G, class T>
__device__ __forceinline__ T group_max(T v) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) {
        T u = __shfl_xor_sync(0xffffffffu, v, o);
        v = u > v ? u : v;
    }
    return v;
}

template <int G, class T>
__global__ void k_class_forward(loss_params p, const T *__restrict__ X, const T *__restrict__ W,
                                const int64_t *__restrict__ TI, const T *__restrict__ TP,
                                double *__restrict__ LSE, T *__restrict__ O,
                                double *__restrict__ pacc, double *__restrict__ pw,
                                ml_cu_status *st) {
    const int64_t C = p.c, IN = p.inner, rows = p.n * p.inner;
    const int lane = G == 1 ? 0 : (int)(threadIdx.x % G);
    const int64_t group = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / G;
    const int64_t groups = (int64_t)gridDim.x * blockDim.x / G;
    const double ls = p.ls, lsc = ls / (double)C;
    double acc = 0, wsum = 0;
    for (int64_t r = group; r < rows; r += groups) {
        const int64_t i = r / IN, j = r - i * IN;
        const T *x = X + i * C * IN + j;
        double l = 0, lse = 0;
        if (p.kind != ML_LOSS_NLL) {
            T m = -INFINITY;
            for (int64_t k = lane; k < C; k += G) m = x[k * IN] > m ? x[k * IN] : m;
            m = group_max<G>(m);
            double s = 0;
            for (int64_t k = lane; k < C; k += G) s += (double)cu_exp(x[k * IN] - m);
            s = group_sum<G>(s);
            lse = (double)m + log(s);
            if (lane == 0) LSE[r] = lse;
        }
        if (p.kind == ML_LOSS_CROSS_ENTROPY_PROBS) {
            const T *t = TP + i * C * IN + j;
            for (int64_t k = lane; k < C; k += G) {
                double tk = (double)t[k * IN] * (1 - ls) + lsc;
                l -= (W ? (double)W[k] : 1.0) * tk * ((double)x[k * IN] - lse);
            }
            l = group_sum<G>(l);
        } else {
            const int64_t t = TI[r];
            if (t != p.ignore) {
                if (t < 0 || t >= C) {
                    if (lane == 0) ml_cu_flag(st, (long long)t);
                } else {
                    const double wt = W ? (double)W[t] : 1.0;
                    wsum += lane == 0 ? wt : 0.0;
                    if (p.kind == ML_LOSS_NLL) {
                        l = -wt * (double)x[t * IN];
                    } else {
                        l = -(1 - ls) * wt * ((double)x[t * IN] - lse);
                        if (ls > 0) {
                            double sm = 0;
                            for (int64_t k = lane; k < C; k += G)
                                sm += (W ? (double)W[k] : 1.0) * ((double)x[k * IN] - lse);
                            sm = group_sum<G>(sm);
                            l -= lsc * sm;
                        }
                    }
                }
            }
        }
        if (lane == 0) {
            if (p.none) O[r] = (T)l;
            else acc += l;
        }
    }
    acc = ml_cu_block_sum(acc);
    wsum = ml_cu_block_sum(wsum);
    if (threadIdx.x == 0) {
        pacc[blockIdx.x] = acc;
        pw[blockIdx.x] = wsum;
    }
}

template <int G, class T>
__global__ void k_class_backward(loss_params p, const T *__restrict__ X, const T *__restrict__ W,
                                 const int64_t *__restrict__ TI, const T *__restrict__ TP,
                                 const double *__restrict__ LSE, const T *__restrict__ GO,
                                 T *__restrict__ GX) {
    const int64_t C = p.c, IN = p.inner, rows = p.n * p.inner;
    const int lane = G == 1 ? 0 : (int)(threadIdx.x % G);
    const int64_t group = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / G;
    const int64_t groups = (int64_t)gridDim.x * blockDim.x / G;
    const double s = p.none ? 0 : p.mean ? (double)GO[0] / p.norm : (double)GO[0];
    const double ls = p.ls, lsc = ls / (double)C;
    double wtot = (double)C;
    if (W && ls > 0 && p.kind == ML_LOSS_CROSS_ENTROPY) {
        wtot = 0;
        for (int64_t k = lane; k < C; k += G) wtot += (double)W[k];
        wtot = group_sum<G>(wtot);
    }
    for (int64_t r = group; r < rows; r += groups) {
        const int64_t i = r / IN, j = r - i * IN;
        const T *x = X + i * C * IN + j;
        T *gx = GX + i * C * IN + j;
        const double sc = p.none ? (double)GO[r] : s;
        if (p.kind == ML_LOSS_CROSS_ENTROPY_PROBS) {
            const T *t = TP + i * C * IN + j;
            const double lse = LSE[r];
            double swt = 0;
            for (int64_t k = lane; k < C; k += G)
                swt += (W ? (double)W[k] : 1.0) * ((double)t[k * IN] * (1 - ls) + lsc);
            swt = group_sum<G>(swt);
            for (int64_t k = lane; k < C; k += G) {
                double pk = exp((double)x[k * IN] - lse);
                double wk = (W ? (double)W[k] : 1.0) * ((double)t[k * IN] * (1 - ls) + lsc);
                gx[k * IN] = (T)(sc * (pk * swt - wk));
            }
            continue;
        }
        const int64_t t = TI[r];
        if (t == p.ignore || t < 0 || t >= C) {
            for (int64_t k = lane; k < C; k += G) gx[k * IN] = 0;
            continue;
        }
        const double wt = W ? (double)W[t] : 1.0;
        if (p.kind == ML_LOSS_NLL) {
            const T gt = (T)(-sc * wt);
            for (int64_t k = lane; k < C; k += G) gx[k * IN] = k == t ? gt : (T)0;
            continue;
        }
        const T lse = (T)LSE[r];
        const T a1 = (T)(sc * (1 - ls) * wt), a2 = (T)(sc * lsc * wtot);
        const T pa = a1 + a2;
        const T sub = (T)(sc * lsc);
        const T *wl = ls > 0 ? W : NULL;
        for (int64_t k = lane; k < C; k += G) {
            T g = pa * cu_exp(x[k * IN] - lse) - (wl ? sub * wl[k] : sub);
            if (k == t) g -= a1;
            gx[k * IN] = g;
        }
    }
}

/* --- dispatch --- */

static int blocks_capped(int64_t threads) {
    int64_t b = ml_cu_blocks(threads);
    return (int)(b < MAX_PARTIALS ? b : MAX_PARTIALS);
}

static bool warp_rows(const ml_loss_args *a) { return a->inner == 1 && a->c >= 32; }

template <class T>
static int forward_t(ml_loss_args *a, ml_tensor *out) {
    const char *name = ml_loss_name(a->kind);
    const loss_params p = params_of(a);
    cudaStream_t s = ml_cu_stream();
    const bool cls = is_class_kind(a->kind);
    const bool may_be_bad = cls || a->kind == ML_LOSS_BCE || a->kind == ML_LOSS_GAUSSIAN_NLL;
    const int64_t n = ml_numel(a->input);
    if (!cls && p.none && n == 0) return 0;
    const T *X = (const T *)ml_data(a->input);
    const T *W = a->weight ? (const T *)ml_data(a->weight) : NULL;
    T *O = (T *)ml_data(out);

    const bool warp = cls && warp_rows(a);
    const int64_t rows = a->n * a->inner;
    const int nb = blocks_capped(cls ? rows * (warp ? 32 : 1) : n);
    ml_cu_status *st = ml_cu_status_new(name);
    if (!st) return -1;
    size_t pbytes = sizeof(double) * (size_t)nb * 2;
    double *part = (double *)ml_cu_alloc(pbytes);
    if (!part) {
        ml_cu_free(st, sizeof *st);
        return -1;
    }
    double *pacc = part, *pw = part + nb;
    if (cls) {
        const int64_t *TI = a->kind != ML_LOSS_CROSS_ENTROPY_PROBS ? (const int64_t *)ml_data(a->target) : NULL;
        const T *TP = a->kind == ML_LOSS_CROSS_ENTROPY_PROBS ? (const T *)ml_data(a->target) : NULL;
        double *LSE = a->aux ? (double *)ml_data(a->aux) : NULL;
        if (warp)
            k_class_forward<32, T><<<nb, ML_CU_THREADS, 0, s>>>(p, X, W, TI, TP, LSE, O, pacc, pw, st);
        else
            k_class_forward<1, T><<<nb, ML_CU_THREADS, 0, s>>>(p, X, W, TI, TP, LSE, O, pacc, pw, st);
        /* the divisor of nll/cross_entropy is the weights' sum; _PROBS has the caller's */
        k_finish<T><<<1, ML_CU_THREADS, 0, s>>>(pacc, a->kind == ML_LOSS_CROSS_ENTROPY_PROBS ? NULL : pw,
                                                nb, p.none ? NULL : O, p.mean, p.norm, st);
    } else {
        const T *TG = (const T *)ml_data(a->target);
        const T *E = a->extra ? (const T *)ml_data(a->extra) : NULL;
        k_ew_forward<T><<<nb, ML_CU_THREADS, 0, s>>>(p, X, TG, W, E, O, n, pacc, st);
        if (!p.none) k_finish<T><<<1, ML_CU_THREADS, 0, s>>>(pacc, NULL, nb, O, p.mean, p.norm, st);
    }
    cudaError_t e = cudaGetLastError();
    int rc = 0;
    if (may_be_bad) {
        ml_cu_status h;
        rc = ml_cu_status_read(name, st, &h);
        if (rc == 0 && e == cudaSuccess) {
            if (h.bad && cls)
                rc = ml_error_set("%s: target class id %lld is out of range: expected 0 <= id < "
                                  "%lld (the number of classes) or ignore_index (%lld)", name,
                                  (long long)h.value, (long long)a->c, (long long)a->ignore_index);
            else if (h.bad && a->kind == ML_LOSS_BCE)
                rc = ml_error_set("binary_cross_entropy: all elements of input should be "
                                  "between 0 and 1 (probabilities; use "
                                  "binary_cross_entropy_with_logits for logits)");
            else if (h.bad)
                rc = ml_error_set("gaussian_nll_loss: var has negative entries");
            else if (cls && a->kind != ML_LOSS_CROSS_ENTROPY_PROBS)
                a->norm = h.wsum;
        }
    } else {
        ml_cu_free(st, sizeof *st); /* stream order: reused only by later work */
    }
    ml_cu_free(part, pbytes);
    if (e != cudaSuccess) return ml_cu_fail(name, e);
    return rc;
}

template <class T>
static int backward_t(const ml_loss_args *a, const ml_tensor *grad_out, ml_tensor *grad_input,
                      ml_tensor *grad_extra) {
    const loss_params p = params_of(a);
    cudaStream_t s = ml_cu_stream();
    const T *X = (const T *)ml_data(a->input);
    const T *W = a->weight ? (const T *)ml_data(a->weight) : NULL;
    const T *G = (const T *)ml_data(grad_out);
    if (is_class_kind(a->kind)) {
        if (!grad_input) return 0;
        const int64_t rows = a->n * a->inner;
        if (rows * a->c == 0) return 0;
        const int64_t *TI = a->kind != ML_LOSS_CROSS_ENTROPY_PROBS ? (const int64_t *)ml_data(a->target) : NULL;
        const T *TP = a->kind == ML_LOSS_CROSS_ENTROPY_PROBS ? (const T *)ml_data(a->target) : NULL;
        const double *LSE = a->aux ? (const double *)ml_data(a->aux) : NULL;
        T *GX = (T *)ml_data(grad_input);
        if (warp_rows(a))
            k_class_backward<32, T><<<ml_cu_blocks(rows * 32), ML_CU_THREADS, 0, s>>>(p, X, W, TI, TP, LSE, G, GX);
        else
            k_class_backward<1, T><<<ml_cu_blocks(rows), ML_CU_THREADS, 0, s>>>(p, X, W, TI, TP, LSE, G, GX);
    } else {
        const int64_t n = ml_numel(a->input);
        if (n == 0) return 0;
        const T *TG = (const T *)ml_data(a->target);
        const T *E = a->extra ? (const T *)ml_data(a->extra) : NULL;
        k_ew_backward<T><<<ml_cu_blocks(n), ML_CU_THREADS, 0, s>>>(
            p, X, TG, W, E, G, grad_input ? (T *)ml_data(grad_input) : NULL,
            grad_extra ? (T *)ml_data(grad_extra) : NULL, n);
    }
    ML_CU_LAUNCHED(ml_loss_name(a->kind));
    return 0;
}

static int cu_loss_forward(ml_loss_args *a, ml_tensor *out) {
    switch (a->input->dtype) {
    case ML_F32: return forward_t<float>(a, out);
    case ML_F64: return forward_t<double>(a, out);
    default:
        return ml_error_set("%s: needs a floating point input, got %s", ml_loss_name(a->kind),
                            ml_dtype_name(a->input->dtype));
    }
}

static int cu_loss_backward(const ml_loss_args *a, const ml_tensor *grad_out,
                            ml_tensor *grad_input, ml_tensor *grad_extra) {
    switch (a->input->dtype) {
    case ML_F32: return backward_t<float>(a, grad_out, grad_input, grad_extra);
    case ML_F64: return backward_t<double>(a, grad_out, grad_input, grad_extra);
    default:
        return ml_error_set("%s: needs a floating point input, got %s", ml_loss_name(a->kind),
                            ml_dtype_name(a->input->dtype));
    }
}

const ml_loss_ops ml_cuda_loss = {
    /* forward */ cu_loss_forward,
    /* backward */ cu_loss_backward,
    /* grad_in_forward */ false, /* the gradient is made in the backward pass */
};
