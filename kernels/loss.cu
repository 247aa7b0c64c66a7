/* CUDA kernels of the loss family (contract: src/backend/loss.h). The per-element
 * formulas and constants are src/backend/loss_formulas.h's, the very functions the
 * CPU kernels call; the class losses follow the CPU reference (src/cpu/loss_class.c)
 * operation by operation.
 *
 * Forward: one kernel computes the per-element (or per-row) losses, writing them
 * for "none" or summing them in double per block, and, given a grad_cache
 * (mse_loss, cross_entropy), the input's gradient for a grad_out of 1 in the same
 * pass; a one-block kernel adds the block sums in a fixed order (the grid is fixed
 * by the size: deterministic) and writes the reduced loss, divided on the device by
 * the mean's divisor. For nll / cross_entropy with ids that divisor (the summed
 * weights of the counted targets) is found first by a one-block kernel over the
 * targets, which the forward kernel reads on the device to scale the gradient, as
 * the CPU finds it before its pass. A kernel that finds bad data raises a status
 * flag; the host reads the status back (one wait on the stream) only for the kinds
 * that can have bad data or must return the divisor: bce, gaussian_nll and the
 * class kinds. mse, l1, smooth_l1, bce_with_logits, kl_div and poisson_nll never
 * wait.
 *
 * Class kinds: a thread per row when rows are short or strided (inner > 1), a
 * warp per row when the class dim is the last one and has 32 classes or more
 * (coalesced loads, shuffle reductions). Backward: one kernel, the gradient
 * already scaled by grad_out (read on the device) and the mean's divisor; or, after
 * a forward that made the gradient, scale_grad: a kernel that multiplies it by
 * grad_out in place (nothing to do when grad_out is 1, read on the device). */
#include <math.h>

#include "common.cuh"

#include "backend/loss_formulas.h"

#define MAX_PARTIALS 1024

/* The call's parameters as the kernels take them (by value, a plain struct). */
struct loss_params {
    int kind;
    bool none, mean;
    double norm, beta, eps, ls;
    bool log_input, full, log_target;
    int64_t n, c, inner, ignore;
};

static loss_params params_of(const ml_loss_params *a) {
    loss_params p;
    p.kind = a->kind;
    p.none = a->reduction == ML_REDUCTION_NONE;
    p.mean = a->reduction == ML_REDUCTION_MEAN;
    p.norm = a->norm;
    p.beta = a->smooth_l1.beta;
    p.eps = a->kind == ML_LOSS_GAUSSIAN_NLL ? a->gaussian_nll.eps : a->poisson_nll.eps;
    p.ls = a->cls.label_smoothing;
    p.log_input = a->poisson_nll.log_input;
    p.full = a->kind == ML_LOSS_GAUSSIAN_NLL ? a->gaussian_nll.full : a->poisson_nll.full;
    p.log_target = a->kl_div.log_target;
    p.n = a->cls.n;
    p.c = a->cls.c;
    p.inner = a->cls.inner;
    p.ignore = a->cls.ignore_index;
    return p;
}

/* --- elementwise losses --- */

/* Element i's loss (before its weight); sets bad for bad data (bce, gaussian_nll). */
template <class T>
__device__ __forceinline__ T ew_loss(const loss_params &p, T x, T t, const T *E, int64_t i,
                                     bool &bad) {
    const T beta = (T)p.beta, eps = (T)p.eps;
    T l = 0;
    switch (p.kind) {
    case ML_LOSS_MSE: l = ml_mse_loss(x, t); break;
    case ML_LOSS_L1: l = ml_l1_loss(x, t); break;
    case ML_LOSS_SMOOTH_L1: l = ml_smooth_l1_loss(x, t, beta); break;
    case ML_LOSS_BCE:
        if (!ml_bce_input_ok(x)) bad = true;
        l = ml_bce_loss(x, t);
        break;
    case ML_LOSS_BCE_LOGITS: l = E ? ml_bce_logits_pw_loss(x, t, E[i]) : ml_bce_logits_loss(x, t); break;
    case ML_LOSS_KL_DIV: l = p.log_target ? ml_kl_div_log_target_loss(x, t) : ml_kl_div_loss(x, t); break;
    case ML_LOSS_POISSON_NLL:
        l = ml_poisson_nll_loss(x, t, p.log_input, eps);
        if (p.full && ml_poisson_stirling_applies(t)) l += ml_poisson_stirling(t);
        break;
    case ML_LOSS_GAUSSIAN_NLL: {
        const T v = E[i];
        if (!ml_gaussian_nll_var_ok(v)) bad = true;
        l = ml_gaussian_nll_loss(x, t, ml_gaussian_nll_var(v, eps), p.full);
    } break;
    default: break;
    }
    return l;
}

/* GC (mse_loss only): the gradient 2 (x - t) / norm ("mean"; 2 (x - t) otherwise),
 * two_s being that factor rounded to T as the CPU rounds it. */
template <class T>
__global__ void k_ew_forward(loss_params p, const T *__restrict__ X, const T *__restrict__ TG,
                             const T *__restrict__ W, const T *__restrict__ E, T *__restrict__ O,
                             T *__restrict__ GC, T two_s, int64_t n, double *__restrict__ partial,
                             ml_cu_status *st) {
    double acc = 0;
    bool bad = false;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const T x = X[i], t = TG[i];
        T l = ew_loss<T>(p, x, t, E, i, bad);
        if (W) l *= W[i];
        if (GC) GC[i] = two_s * (x - t);
        if (p.none) O[i] = l;
        else acc += (double)l;
    }
    if (bad) ml_cu_flag(st, 0);
    if (!p.none) {
        acc = ml_cu_block_sum(acc);
        if (threadIdx.x == 0) partial[blockIdx.x] = acc;
    }
}

/* The reduced loss from the block sums, divided for "mean" by *norm_dev (the class
 * kinds' divisor found on the device) or norm; the sum also goes to the status. */
template <class T>
__global__ void k_finish(const double *__restrict__ pacc, int nb, T *__restrict__ O, bool mean,
                         double norm, const double *__restrict__ norm_dev, ml_cu_status *st) {
    double a = 0;
    for (int k = threadIdx.x; k < nb; k += blockDim.x) a += pacc[k];
    a = ml_cu_block_sum(a);
    if (threadIdx.x == 0) {
        st->acc = a;
        if (O) {
            const double d = norm_dev ? *norm_dev : norm;
            O[0] = (T)(mean ? a / d : a);
        }
    }
}

/* The elementwise gradients from the saved operands: GX (input) and GE (var), each
 * element's derivative times its grad_out (G[i] for "none", else G[0] / norm for
 * "mean") and weight; either may be NULL. */
template <class T>
__global__ void k_ew_backward(loss_params p, const T *__restrict__ X, const T *__restrict__ TG,
                              const T *__restrict__ W, const T *__restrict__ E,
                              const T *__restrict__ G, T *__restrict__ GX, T *__restrict__ GE,
                              int64_t n) {
    const T beta = (T)p.beta, eps = (T)p.eps;
    const T s = p.none ? (T)0 : (T)(p.mean ? (double)G[0] / p.norm : (double)G[0]);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const T x = X[i], t = TG[i];
        T gx = 0, ge = 0;
        switch (p.kind) {
        case ML_LOSS_MSE: gx = ml_mse_grad(x, t); break;
        case ML_LOSS_L1: gx = ml_l1_grad(x, t); break;
        case ML_LOSS_SMOOTH_L1: gx = ml_smooth_l1_grad(x, t, beta); break;
        case ML_LOSS_BCE: gx = ml_bce_grad(x, t); break;
        case ML_LOSS_BCE_LOGITS: gx = E ? ml_bce_logits_pw_grad(x, t, E[i]) : ml_bce_logits_grad(x, t); break;
        case ML_LOSS_KL_DIV: gx = p.log_target ? ml_kl_div_log_target_grad(t) : ml_kl_div_grad(t); break;
        case ML_LOSS_POISSON_NLL: gx = ml_poisson_nll_grad(x, t, p.log_input, eps); break;
        case ML_LOSS_GAUSSIAN_NLL: {
            const T v = ml_gaussian_nll_var(E[i], eps);
            gx = ml_gaussian_nll_grad(x, t, v);
            ge = ml_gaussian_nll_grad_var(x, t, v);
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

/* The class weights' sum (with label smoothing and weights; c otherwise), over the
 * group's lanes. */
template <int G, class T>
__device__ __forceinline__ double class_wtot(const loss_params &p, const T *W, int lane) {
    if (!(W && p.ls > 0 && p.kind == ML_LOSS_CROSS_ENTROPY)) return (double)p.c;
    double wtot = 0;
    for (int64_t k = lane; k < p.c; k += G) wtot += (double)W[k];
    return group_sum<G>(wtot);
}

/* Row r's gradient (its classes at x, gx with stride inner) for a grad_out of sc
 * (times 1 / norm for "mean"), as the CPU reference's class_row_grad; lse: the row's
 * logsumexp. Rows that count for nothing get zeros. */
template <int G, class T>
__device__ __forceinline__ void class_row_grad(const loss_params &p, const T *x, const T *W,
                                               const int64_t *TI, const T *tp, int64_t r,
                                               double lse_d, double sc, double wtot, int lane,
                                               T *gx) {
    const int64_t C = p.c, IN = p.inner;
    const double ls = p.ls, lsc = ls / (double)C;
    if (p.kind == ML_LOSS_CROSS_ENTROPY_PROBS) {
        double swt = 0;
        for (int64_t k = lane; k < C; k += G)
            swt += (W ? (double)W[k] : 1.0) * ((double)tp[k * IN] * (1 - ls) + lsc);
        swt = group_sum<G>(swt);
        for (int64_t k = lane; k < C; k += G) {
            const double pk = exp((double)x[k * IN] - lse_d);
            const double wk = (W ? (double)W[k] : 1.0) * ((double)tp[k * IN] * (1 - ls) + lsc);
            gx[k * IN] = (T)(sc * (pk * swt - wk));
        }
        return;
    }
    const int64_t t = TI[r];
    if (t == p.ignore || t < 0 || t >= C) {
        for (int64_t k = lane; k < C; k += G) gx[k * IN] = 0;
        return;
    }
    const double wt = W ? (double)W[t] : 1.0;
    if (p.kind == ML_LOSS_NLL) {
        const T gt = (T)(-sc * wt);
        for (int64_t k = lane; k < C; k += G) gx[k * IN] = k == t ? gt : (T)0;
        return;
    }
    const T lse = (T)lse_d;
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

/* The divisor of "mean" for class ids: the summed weight of the rows whose id is
 * not ignore_index, into st->wsum (one block: a fixed order); bad ids flagged. */
template <class T>
__global__ void k_class_norm(loss_params p, const T *__restrict__ W,
                             const int64_t *__restrict__ TI, ml_cu_status *st) {
    const int64_t rows = p.n * p.inner;
    double w = 0;
    for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
        const int64_t t = TI[r];
        if (t == p.ignore) continue;
        if (t < 0 || t >= p.c) ml_cu_flag(st, (long long)t);
        else w += W ? (double)W[t] : 1.0;
    }
    w = ml_cu_block_sum(w);
    if (threadIdx.x == 0) st->wsum = w;
}

/* norm_dev: the divisor k_class_norm found (ids with "mean"), or NULL; GC: the
 * gradient to make, or NULL. */
template <int G, class T>
__global__ void k_class_forward(loss_params p, const T *__restrict__ X, const T *__restrict__ W,
                                const int64_t *__restrict__ TI, const T *__restrict__ TP,
                                double *__restrict__ LSE, T *__restrict__ O, T *__restrict__ GC,
                                const double *__restrict__ norm_dev, double *__restrict__ pacc,
                                ml_cu_status *st) {
    const int64_t C = p.c, IN = p.inner, rows = p.n * p.inner;
    const int lane = G == 1 ? 0 : (int)(threadIdx.x % G);
    const int64_t group = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / G;
    const int64_t groups = (int64_t)gridDim.x * blockDim.x / G;
    const double ls = p.ls, lsc = ls / (double)C;
    const double gsc = !p.mean ? 1.0 : 1.0 / (norm_dev ? *norm_dev : p.norm);
    const double wtot = GC ? class_wtot<G, T>(p, W, lane) : 0.0;
    double acc = 0;
    for (int64_t r = group; r < rows; r += groups) {
        const int64_t i = r / IN, j = r - i * IN;
        const T *x = X + i * C * IN + j;
        const T *tp = TP ? TP + i * C * IN + j : NULL;
        double l = 0, lse = 0;
        if (p.kind != ML_LOSS_NLL) {
            T m = -INFINITY;
            for (int64_t k = lane; k < C; k += G) m = x[k * IN] > m ? x[k * IN] : m;
            m = group_max<G>(m);
            double s = 0;
            for (int64_t k = lane; k < C; k += G) s += (double)cu_exp(x[k * IN] - m);
            s = group_sum<G>(s);
            lse = (double)m + log(s);
            if (LSE && lane == 0) LSE[r] = lse;
            if (GC) class_row_grad<G, T>(p, x, W, TI, tp, r, lse, gsc, wtot, lane, GC + i * C * IN + j);
        }
        if (p.kind == ML_LOSS_CROSS_ENTROPY_PROBS) {
            for (int64_t k = lane; k < C; k += G) {
                double tk = (double)tp[k * IN] * (1 - ls) + lsc;
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
    if (threadIdx.x == 0) pacc[blockIdx.x] = acc;
}

/* The class kinds' gradient from the saved operands and logsumexps. */
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
    const double wtot = class_wtot<G, T>(p, W, lane);
    for (int64_t r = group; r < rows; r += groups) {
        const int64_t i = r / IN, j = r - i * IN;
        const T *tp = TP ? TP + i * C * IN + j : NULL;
        class_row_grad<G, T>(p, X + i * C * IN + j, W, TI, tp, r, LSE ? LSE[r] : 0.0,
                             p.none ? (double)GO[r] : s, wtot, lane, GX + i * C * IN + j);
    }
}

/* The gradient forward made, times grad_out in place: G[0] for a reduced loss
 * (nothing to do when it is 1), G[i] per element, or for a class loss's "none" the
 * row's G (rows of C * inner elements, a zero staying zero). */
template <class T>
__global__ void k_scale_grad(const T *__restrict__ G, T *__restrict__ GX, int64_t n, int mode,
                             int64_t c, int64_t inner) {
    const T g0 = G[0];
    if (mode == 0 && g0 == (T)1) return;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x) {
        if (mode == 0) {
            GX[e] *= g0;
        } else if (mode == 1) {
            GX[e] *= G[e];
        } else {
            const int64_t i = e / (c * inner), q = e % inner;
            const T gx = GX[e];
            GX[e] = gx != 0 ? gx * G[i * inner + q] : gx;
        }
    }
}

/* --- dispatch --- */

/* Blocks for a grid of `threads` threads, at most MAX_PARTIALS (one partial each). */
static int blocks_capped(int64_t threads) {
    int64_t b = ml_cu_blocks(threads);
    return (int)(b < MAX_PARTIALS ? b : MAX_PARTIALS);
}

/* A warp per row: class dim last, 32 classes or more. */
static bool warp_rows(const ml_loss_params *a) { return a->cls.inner == 1 && a->cls.c >= 32; }

/* forward for element type T (contract: backend/loss.h). */
template <class T>
static int forward_t(ml_loss_args *a, ml_tensor *out) {
    const char *name = ml_loss_name(a->p.kind);
    const loss_params p = params_of(&a->p);
    cudaStream_t s = ml_cu_stream();
    const bool cls = ml_loss_is_class_kind(a->p.kind);
    const bool ids = cls && a->p.kind != ML_LOSS_CROSS_ENTROPY_PROBS;
    const bool may_be_bad = cls || a->p.kind == ML_LOSS_BCE || a->p.kind == ML_LOSS_GAUSSIAN_NLL;
    const int64_t n = ml_numel(a->input);
    if (!cls && p.none && n == 0) return 0;
    const T *X = (const T *)ml_data(a->input);
    const T *W = a->weight ? (const T *)ml_data(a->weight) : NULL;
    T *O = (T *)ml_data(out);
    T *GC = a->grad_cache ? (T *)ml_data(a->grad_cache) : NULL;

    const bool warp = cls && warp_rows(&a->p);
    const int64_t rows = a->p.cls.n * a->p.cls.inner;
    const int nb = blocks_capped(cls ? rows * (warp ? 32 : 1) : n);
    ml_cu_status *st = ml_cu_status_new(name);
    if (!st) return -1;
    size_t pbytes = sizeof(double) * (size_t)nb;
    double *pacc = (double *)ml_cu_alloc(pbytes);
    if (!pacc) {
        ml_cu_free(st, sizeof *st);
        return -1;
    }
    if (cls) {
        const int64_t *TI = ids ? (const int64_t *)ml_data(a->target) : NULL;
        const T *TP = ids ? NULL : (const T *)ml_data(a->target);
        double *LSE = a->aux ? (double *)ml_data(a->aux) : NULL;
        /* ids with "mean": the divisor first, on the device (the gradient needs it) */
        const double *norm_dev = ids && p.mean ? &st->wsum : NULL;
        if (norm_dev) k_class_norm<T><<<1, ML_CU_THREADS, 0, s>>>(p, W, TI, st);
        if (warp)
            k_class_forward<32, T><<<nb, ML_CU_THREADS, 0, s>>>(p, X, W, TI, TP, LSE, O, GC,
                                                                norm_dev, pacc, st);
        else
            k_class_forward<1, T><<<nb, ML_CU_THREADS, 0, s>>>(p, X, W, TI, TP, LSE, O, GC,
                                                               norm_dev, pacc, st);
        if (!p.none)
            k_finish<T><<<1, ML_CU_THREADS, 0, s>>>(pacc, nb, O, p.mean, p.norm, norm_dev, st);
    } else {
        const T *TG = (const T *)ml_data(a->target);
        const T *E = a->extra ? (const T *)ml_data(a->extra) : NULL;
        /* as the CPU rounds it: 2 / norm in double, then to T */
        const T two_s = (T)(p.mean ? 2.0 / p.norm : 2.0);
        k_ew_forward<T><<<nb, ML_CU_THREADS, 0, s>>>(p, X, TG, W, E, O,
                                                     a->p.kind == ML_LOSS_MSE ? GC : (T *)NULL,
                                                     two_s, n, pacc, st);
        if (!p.none) k_finish<T><<<1, ML_CU_THREADS, 0, s>>>(pacc, nb, O, p.mean, p.norm, NULL, st);
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
                                  (long long)h.value, (long long)a->p.cls.c,
                                  (long long)a->p.cls.ignore_index);
            else if (h.bad && a->p.kind == ML_LOSS_BCE)
                rc = ml_error_set("binary_cross_entropy: all elements of input should be "
                                  "between 0 and 1 (probabilities; use "
                                  "binary_cross_entropy_with_logits for logits)");
            else if (h.bad)
                rc = ml_error_set("gaussian_nll_loss: var has negative entries");
            else if (ids && p.mean)
                a->p.norm = h.wsum;
        }
    } else {
        ml_cu_free(st, sizeof *st); /* stream order: reused only by later work */
    }
    ml_cu_free(pacc, pbytes);
    if (e != cudaSuccess) return ml_cu_fail(name, e);
    return rc;
}

/* backward for element type T (contract: backend/loss.h). */
template <class T>
static int backward_t(const ml_loss_args *a, const ml_tensor *grad_out, ml_tensor *grad_input,
                      ml_tensor *grad_extra) {
    const loss_params p = params_of(&a->p);
    cudaStream_t s = ml_cu_stream();
    const T *X = (const T *)ml_data(a->input);
    const T *W = a->weight ? (const T *)ml_data(a->weight) : NULL;
    const T *G = (const T *)ml_data(grad_out);
    if (ml_loss_is_class_kind(a->p.kind)) {
        if (!grad_input) return 0;
        const int64_t rows = a->p.cls.n * a->p.cls.inner;
        if (rows * a->p.cls.c == 0) return 0;
        const bool ids = a->p.kind != ML_LOSS_CROSS_ENTROPY_PROBS;
        const int64_t *TI = ids ? (const int64_t *)ml_data(a->target) : NULL;
        const T *TP = ids ? NULL : (const T *)ml_data(a->target);
        const double *LSE = a->aux ? (const double *)ml_data(a->aux) : NULL;
        T *GX = (T *)ml_data(grad_input);
        if (warp_rows(&a->p))
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
    ML_CU_LAUNCHED(ml_loss_name(a->p.kind));
    return 0;
}

/* scale_grad for element type T (contract: backend/loss.h). */
template <class T>
static int scale_grad_t(const ml_loss_params *lp, const ml_tensor *grad_out, ml_tensor *grad) {
    const int64_t n = ml_numel(grad);
    if (n == 0) return 0;
    const int mode = lp->reduction != ML_REDUCTION_NONE ? 0 : ml_loss_is_class_kind(lp->kind) ? 2 : 1;
    k_scale_grad<T><<<ml_cu_blocks(n), ML_CU_THREADS, 0, ml_cu_stream()>>>(
        (const T *)ml_data(grad_out), (T *)ml_data(grad), n, mode, lp->cls.c, lp->cls.inner);
    ML_CU_LAUNCHED(ml_loss_name(lp->kind));
    return 0;
}

/* 0 for float32 / float64, else -1 with the error naming the loss. */
static int float_input(const char *name, ml_dtype dt) {
    if (dt == ML_F32 || dt == ML_F64) return 0;
    return ml_error_set("%s: needs a floating point input, got %s", name, ml_dtype_name(dt));
}

/* The table's entries (contracts: backend/loss.h's ML_LOSS_ENTRIES). */
static int cu_loss_forward(ml_loss_args *a, ml_tensor *out) {
    if (float_input(ml_loss_name(a->p.kind), a->input->dtype)) return -1;
    return a->input->dtype == ML_F32 ? forward_t<float>(a, out) : forward_t<double>(a, out);
}

static int cu_loss_backward(const ml_loss_args *a, const ml_tensor *grad_out,
                            ml_tensor *grad_input, ml_tensor *grad_extra) {
    if (float_input(ml_loss_name(a->p.kind), a->input->dtype)) return -1;
    return a->input->dtype == ML_F32 ? backward_t<float>(a, grad_out, grad_input, grad_extra)
                                     : backward_t<double>(a, grad_out, grad_input, grad_extra);
}

static int cu_loss_scale_grad(const ml_loss_params *p, const ml_tensor *grad_out,
                              ml_tensor *grad) {
    if (float_input(ml_loss_name(p->kind), grad->dtype)) return -1;
    return grad->dtype == ML_F32 ? scale_grad_t<float>(p, grad_out, grad)
                                 : scale_grad_t<double>(p, grad_out, grad);
}

const ml_loss_ops ml_cuda_loss = {ML_LOSS_ENTRIES(ML_BACKEND_ENTRY, cu_loss_)};
