/* CUDA kernels of the batchnorm family (contract: src/backend/batchnorm.h). A block
 * per channel computes its sums in double (each thread's share in a fixed order,
 * then the block sum: the same bits every run, no atomics); a second kernel, a
 * thread per element, writes y or gx. */
#include <math.h>

#include "common.cuh"

#define BN_THREADS 256 /* a power of two, as ml_cu_block_sum needs */

/* mean, invstd (and the running statistics) of channel blockIdx.x */
template <class T>
__global__ void k_bn_stats(const T *x, ml_bn_args a, T *mean, T *invstd, T *rm, T *rv) {
    const int64_t c = blockIdx.x, S = a.s, M = a.n * a.s;
    __shared__ double shared_mean[1];
    if (!a.training) {
        if (threadIdx.x == 0) {
            mean[c] = rm[c];
            invstd[c] = (T)1 / sqrt(rv[c] + (T)a.eps);
        }
        return;
    }
    double s = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) s += (double)x[((i / S) * a.c + c) * S + i % S];
    s = ml_cu_block_sum(s);
    if (threadIdx.x == 0) shared_mean[0] = s / (double)M;
    __syncthreads();
    const double m = shared_mean[0];
    double ss = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
        const double d = (double)x[((i / S) * a.c + c) * S + i % S] - m;
        ss += d * d;
    }
    ss = ml_cu_block_sum(ss);
    if (threadIdx.x == 0) {
        mean[c] = (T)m;
        invstd[c] = (T)(1.0 / sqrt(ss / (double)M + a.eps));
        if (rm) {
            rm[c] = (T)((1 - a.momentum) * (double)rm[c] + a.momentum * m);
            rv[c] = (T)((1 - a.momentum) * (double)rv[c] + a.momentum * ss / (double)(M - 1));
        }
    }
}

template <class T>
__global__ void k_bn_apply(const T *x, ml_bn_args a, const T *mean, const T *invstd, const T *w,
                           const T *b, T *y, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = (i / a.s) % a.c;
        const T alpha = invstd[c] * (w ? w[c] : (T)1);
        const T beta = (b ? b[c] : (T)0) - mean[c] * alpha;
        y[i] = x[i] * alpha + beta;
    }
}

/* the block's sums of channel c added up; thread 0 stores them and gw, gb */
template <class T>
__device__ void store_grad_sums(int64_t c, double sg, double sgx, const T *invstd, double *sums,
                                T *gw, T *gb) {
    sg = ml_cu_block_sum(sg);
    sgx = ml_cu_block_sum(sgx);
    if (threadIdx.x == 0) {
        sums[2 * c] = sg;
        sums[2 * c + 1] = sgx;
        if (gw) gw[c] = (T)(sgx * (double)invstd[c]);
        if (gb) gb[c] = (T)sg;
    }
}

/* sums[2c] = sum g, sums[2c + 1] = sum g (x - mean) of channel blockIdx.x; gw, gb */
template <class T>
__global__ void k_bn_grad_sums(const T *g, const T *x, ml_bn_args a, const T *mean, const T *invstd,
                               double *sums, T *gw, T *gb) {
    const int64_t c = blockIdx.x, S = a.s, M = a.n * a.s;
    const double mu = (double)mean[c];
    double sg = 0, sgx = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
        const int64_t k = ((i / S) * a.c + c) * S + i % S;
        sg += (double)g[k];
        sgx += (double)g[k] * ((double)x[k] - mu);
    }
    store_grad_sums(c, sg, sgx, invstd, sums, gw, gb);
}

template <class T>
__global__ void k_bn_grad_input(const T *g, const T *x, ml_bn_args a, const T *mean, const T *invstd,
                                const T *w, const double *sums, T *gx, int64_t total) {
    const double M = (double)(a.n * a.s);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = (i / a.s) % a.c;
        const T is = invstd[c], sc = is * (w ? w[c] : (T)1);
        if (a.training) {
            const T k = (T)(sums[2 * c + 1] * (double)is * (double)is / M);
            const T gm = (T)(sums[2 * c] / M);
            gx[i] = (g[i] - gm - (x[i] - mean[c]) * k) * sc;
        } else {
            gx[i] = g[i] * sc;
        }
    }
}

/* max_pool_forward: an output element a thread, the maximum of its window of
 * x * alpha + beta (k_bn_apply's y, not stored), compared as pool.cu's k_max_fwd;
 * its place in the window as a code ki kw + kj */
template <class T>
__global__ void k_bn_max_pool_apply(const T *x, ml_bn_args a, ml_pool_geom g, const T *mean,
                                    const T *invstd, const T *w, const T *b, T *y,
                                    uint8_t *codes, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, plane = i / (g.ow * g.oh);
        const int64_t c = plane % a.c;
        const T alpha = invstd[c] * (w ? w[c] : (T)1);
        const T beta = (b ? b[c] : (T)0) - mean[c] * alpha;
        const T *xp = x + plane * a.s;
        int64_t mi = 0;
        T mv = -INFINITY;
        for (int64_t ki = 0; ki < g.kh; ki++)
            for (int64_t kj = 0; kj < g.kw; kj++) {
                const T v = xp[(oy * g.kh + ki) * g.w + ox * g.kw + kj] * alpha + beta;
                if (v > mv || v != v) {
                    mv = v;
                    mi = ki * g.kw + kj;
                }
            }
        y[i] = mv;
        if (codes) codes[i] = (uint8_t)mi;
    }
}

/* output o's window code as a position in its plane */
__device__ __forceinline__ int64_t code_position(const ml_pool_geom &g, int64_t o, uint8_t code) {
    const int64_t ox = o % g.ow, oy = o / g.ow;
    return (oy * g.kh + code / g.kw) * g.w + ox * g.kw + code % g.kw;
}

/* k_bn_grad_sums over the pooled gradient gp [n, c, oh, ow] routed to the codes'
 * positions: their terms only (g is 0 elsewhere) */
template <class T>
__global__ void k_bn_pool_grad_sums(const T *gp, const uint8_t *codes, const T *x, ml_bn_args a,
                                    ml_pool_geom g, const T *mean, const T *invstd, double *sums,
                                    T *gw, T *gb) {
    const int64_t c = blockIdx.x, S = a.s, O = g.oh * g.ow, M = a.n * O;
    const double mu = (double)mean[c];
    double sg = 0, sgx = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
        const int64_t plane = (i / O) * a.c + c, k = plane * O + i % O;
        sg += (double)gp[k];
        sgx += (double)gp[k] * ((double)x[plane * S + code_position(g, i % O, codes[k])] - mu);
    }
    store_grad_sums(c, sg, sgx, invstd, sums, gw, gb);
}

/* k_bn_grad_input with g read from the one window holding element i: gp there when
 * its code names i, else 0 */
template <class T>
__global__ void k_bn_pool_grad_input(const T *gp, const uint8_t *codes, const T *x, ml_bn_args a,
                                     ml_pool_geom g, const T *mean, const T *invstd, const T *w,
                                     const double *sums, T *gx, int64_t total) {
    const double M = (double)(a.n * a.s);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t plane = i / a.s, q = i % a.s, c = plane % a.c;
        const int64_t oy = q / g.w / g.kh, ox = q % g.w / g.kw;
        T gi = 0;
        if (oy < g.oh && ox < g.ow) {
            const int64_t o = (plane * g.oh + oy) * g.ow + ox;
            const int64_t mine = (q / g.w - oy * g.kh) * g.kw + q % g.w - ox * g.kw;
            if (codes[o] == mine) gi = gp[o];
        }
        const T is = invstd[c], sc = is * (w ? w[c] : (T)1);
        if (a.training) {
            const T k = (T)(sums[2 * c + 1] * (double)is * (double)is / M);
            const T gm = (T)(sums[2 * c] / M);
            gx[i] = (gi - gm - (x[i] - mean[c]) * k) * sc;
        } else {
            gx[i] = gi * sc;
        }
    }
}

template <class T>
static const T *ptr(const ml_tensor *t) { return t ? (const T *)ml_data(t) : (const T *)NULL; }
template <class T>
static T *mptr(ml_tensor *t) { return t ? (T *)ml_data(t) : (T *)NULL; }

static int check_dtype(const ml_tensor *t) {
    if (t->dtype == ML_F32 || t->dtype == ML_F64) return 0;
    return ml_error_set("batch_norm: needs float32 or float64 tensors, got %s", ml_dtype_name(t->dtype));
}

/* the statistics kernel of both forwards (a->c > 0) */
static int launch_stats(const ml_tensor *x, ml_bn_args *a, cudaStream_t s) {
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_bn_stats<T><<<(unsigned)a->c, BN_THREADS, 0, s>>>(ptr<T>(x), *a, mptr<T>(a->mean),
                                                           mptr<T>(a->invstd), mptr<T>(a->running_mean),
                                                           mptr<T>(a->running_var));
    })
    ML_CU_LAUNCHED("batch_norm");
    return 0;
}

static int cu_batchnorm_forward(const ml_tensor *x, ml_bn_args *a, ml_tensor *y) {
    if (check_dtype(x)) return -1;
    if (a->c == 0) return 0;
    const int64_t total = a->n * a->c * a->s;
    cudaStream_t s = ml_cu_stream();
    if (launch_stats(x, a, s)) return -1;
    if (total == 0) return 0;
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_bn_apply<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, s>>>(
            ptr<T>(x), *a, ptr<T>(a->mean), ptr<T>(a->invstd), ptr<T>(a->weight), ptr<T>(a->bias),
            mptr<T>(y), total);
    })
    ML_CU_LAUNCHED("batch_norm");
    return 0;
}

static int cu_batchnorm_backward(const ml_tensor *g, const ml_tensor *x, const ml_bn_args *a,
                                 ml_tensor *gx, ml_tensor *gw, ml_tensor *gb) {
    if (check_dtype(x)) return -1;
    if (a->c == 0) return 0;
    const int64_t total = a->n * a->c * a->s;
    const size_t nbytes = (size_t)(2 * a->c) * sizeof(double);
    double *sums = (double *)ml_cu_alloc(nbytes);
    if (!sums) return -1;
    cudaStream_t s = ml_cu_stream();
    int rc = 0;
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_bn_grad_sums<T><<<(unsigned)a->c, BN_THREADS, 0, s>>>(ptr<T>(g), ptr<T>(x), *a, ptr<T>(a->mean),
                                                               ptr<T>(a->invstd), sums, mptr<T>(gw),
                                                               mptr<T>(gb));
    })
    if (cudaGetLastError() != cudaSuccess) rc = ml_error_set("batch_norm: launch failed");
    if (rc == 0 && gx && total > 0) {
        ML_CU_DISPATCH_FLOAT(x->dtype, {
            k_bn_grad_input<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, s>>>(
                ptr<T>(g), ptr<T>(x), *a, ptr<T>(a->mean), ptr<T>(a->invstd), ptr<T>(a->weight), sums,
                mptr<T>(gx), total);
        })
        if (cudaGetLastError() != cudaSuccess) rc = ml_error_set("batch_norm: launch failed");
    }
    ml_cu_free(sums, nbytes);
    return rc;
}

static int cu_batchnorm_max_pool_forward(const ml_tensor *x, ml_bn_args *a,
                                         const ml_pool_geom *geom, ml_tensor *y_pool,
                                         ml_tensor *codes) {
    if (check_dtype(x)) return -1;
    if (a->c == 0) return 0;
    const int64_t total = a->n * a->c * geom->oh * geom->ow;
    cudaStream_t s = ml_cu_stream();
    if (launch_stats(x, a, s)) return -1;
    if (total == 0) return 0;
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_bn_max_pool_apply<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, s>>>(
            ptr<T>(x), *a, *geom, ptr<T>(a->mean), ptr<T>(a->invstd), ptr<T>(a->weight),
            ptr<T>(a->bias), mptr<T>(y_pool), codes ? (uint8_t *)ml_data(codes) : (uint8_t *)NULL,
            total);
    })
    ML_CU_LAUNCHED("batch_norm");
    return 0;
}

static int cu_batchnorm_max_pool_backward(const ml_tensor *g_pool, const ml_tensor *codes,
                                          const ml_tensor *x, const ml_bn_args *a,
                                          const ml_pool_geom *geom, ml_tensor *gx, ml_tensor *gw,
                                          ml_tensor *gb) {
    if (check_dtype(x)) return -1;
    if (a->c == 0) return 0;
    const int64_t total = a->n * a->c * a->s;
    const uint8_t *cd = (const uint8_t *)ml_data(codes);
    const size_t nbytes = (size_t)(2 * a->c) * sizeof(double);
    double *sums = (double *)ml_cu_alloc(nbytes);
    if (!sums) return -1;
    cudaStream_t s = ml_cu_stream();
    int rc = 0;
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_bn_pool_grad_sums<T><<<(unsigned)a->c, BN_THREADS, 0, s>>>(
            ptr<T>(g_pool), cd, ptr<T>(x), *a, *geom, ptr<T>(a->mean), ptr<T>(a->invstd), sums,
            mptr<T>(gw), mptr<T>(gb));
    })
    if (cudaGetLastError() != cudaSuccess) rc = ml_error_set("batch_norm: launch failed");
    if (rc == 0 && gx && total > 0) {
        ML_CU_DISPATCH_FLOAT(x->dtype, {
            k_bn_pool_grad_input<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, s>>>(
                ptr<T>(g_pool), cd, ptr<T>(x), *a, *geom, ptr<T>(a->mean), ptr<T>(a->invstd),
                ptr<T>(a->weight), sums, mptr<T>(gx), total);
        })
        if (cudaGetLastError() != cudaSuccess) rc = ml_error_set("batch_norm: launch failed");
    }
    ml_cu_free(sums, nbytes);
    return rc;
}

const ml_batchnorm_ops ml_cuda_batchnorm = {ML_BATCHNORM_ENTRIES(ML_BACKEND_ENTRY, cu_batchnorm_)};
