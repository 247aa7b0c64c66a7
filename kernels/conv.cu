/* CUDA kernels of the conv family (contract: src/backend/conv.h): im2col / col2im
 * kernels and cuBLAS products (through the matmul family's gemm, which owns the
 * handles), no cuDNN.
 *
 * The batch goes in chunks whose col buffer [chunk, c_in kh kw, oh ow] stays
 * under COL_BYTES. forward: im2col, then per group one strided-batched product
 * y_b[g] = w[g] @ col_b[g] over the chunk, then the bias. backward_input: per group
 * gcol_b[g] = w[g]^T @ g_b[g] (strided-batched), then col2im, which gathers: one
 * thread per input element adds its patches' entries in a fixed order (no
 * atomics). backward_weight: gw[g] = sum over b of g_b[g] @ col_b[g]^T, one product
 * per sample added onto gw in sample order (beta = 1), so the bits are the same
 * every run; gb: a block per channel sums g in double in a fixed order. */
#include <string.h>

#include "common.cuh"

#define COL_BYTES ((size_t)256 << 20)

/* A tensor header over raw device memory, for the gemm entry (which reads dtype
 * and data only). */
static void raw_view(ml_tensor *t, ml_storage *s, ml_dtype dt, const void *p) {
    memset(s, 0, sizeof *s);
    memset(t, 0, sizeof *t);
    s->refcount = 1;
    s->device = ML_CUDA;
    s->data = (void *)p;
    t->refcount = 1;
    t->dtype = dt;
    t->storage = s;
}

/* col [B, c_in kh kw, P] from x [B, c_in, h, w] (samples b0.. of the batch) */
template <class T>
__global__ void k_im2col(const T *x, ml_conv_geom g, int64_t B, T *col) {
    const int64_t P = g.oh * g.ow, rows = g.c_in * g.kh * g.kw, total = B * rows * P;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t p = i % P, r = (i / P) % rows, b = i / (P * rows);
        const int64_t kj = r % g.kw, ki = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
        const int64_t oy = p / g.ow, ox = p % g.ow;
        const int64_t iy = oy * g.sh - g.ph + ki * g.dh, ix = ox * g.sw - g.pw + kj * g.dw;
        col[i] = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w ? x[((b * g.c_in + c) * g.h + iy) * g.w + ix]
                                                            : (T)0;
    }
}

/* x [B, c_in, h, w] = the sum of col's entries that im2col took from each element
 * (ki, kj in order), + bias[c] when given */
template <class T>
__global__ void k_col2im(const T *col, ml_conv_geom g, int64_t B, const T *bias, T *x) {
    const int64_t P = g.oh * g.ow, rows = g.c_in * g.kh * g.kw, total = B * g.c_in * g.h * g.w;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t ix = i % g.w, iy = (i / g.w) % g.h, c = (i / (g.w * g.h)) % g.c_in;
        const int64_t b = i / (g.w * g.h * g.c_in);
        T s = 0;
        for (int64_t ki = 0; ki < g.kh; ki++) {
            const int64_t ty = iy + g.ph - ki * g.dh;
            if (ty < 0 || ty % g.sh) continue;
            const int64_t oy = ty / g.sh;
            if (oy >= g.oh) continue;
            for (int64_t kj = 0; kj < g.kw; kj++) {
                const int64_t tx = ix + g.pw - kj * g.dw;
                if (tx < 0 || tx % g.sw) continue;
                const int64_t ox = tx / g.sw;
                if (ox >= g.ow) continue;
                s += col[(b * rows + (c * g.kh + ki) * g.kw + kj) * P + oy * g.ow + ox];
            }
        }
        x[i] = bias ? s + bias[c] : s;
    }
}

/* y [B, c, P] += bias[c] */
template <class T>
__global__ void k_add_bias(T *y, const T *bias, int64_t B, int64_t C, int64_t P) {
    const int64_t total = B * C * P;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += bias[(i / P) % C];
}

/* gb[c] = the sum of g [n, c, P] over n and P: a block per channel, in double,
 * each thread's share in a fixed order, then the block sum */
template <class T>
__global__ void k_channel_sum(const T *g, int64_t N, int64_t C, int64_t P, T *gb) {
    const int64_t c = blockIdx.x, M = N * P;
    double s = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) s += (double)g[((i / P) * C + c) * P + i % P];
    s = ml_cu_block_sum(s);
    if (threadIdx.x == 0) gb[c] = (T)s;
}

/* samples per chunk: the col buffer under COL_BYTES */
static int64_t chunk_of(const ml_conv_geom *g, size_t es) {
    const size_t per = (size_t)(g->c_in * g->kh * g->kw * g->oh * g->ow) * es;
    int64_t c = per ? (int64_t)(COL_BYTES / per) : g->n;
    if (c < 1) c = 1;
    return c < g->n ? c : g->n;
}

/* one gemm through the matmul family over raw pointers */
static int gemm(ml_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a,
                int64_t lda, int64_t sa, const void *b, int64_t ldb, int64_t sb, double beta, void *c,
                int64_t ldc, int64_t sc, int64_t batch) {
    ml_storage s1, s2, s3;
    ml_tensor ta_, tb_, tc_;
    raw_view(&ta_, &s1, dt, a);
    raw_view(&tb_, &s2, dt, b);
    raw_view(&tc_, &s3, dt, c);
    ml_gemm_args args = {};
    args.trans_a = ta;
    args.trans_b = tb;
    args.m = m;
    args.n = n;
    args.k = k;
    args.alpha = 1.0;
    args.beta = beta;
    args.a = &ta_;
    args.b = &tb_;
    args.c = &tc_;
    args.lda = lda;
    args.ldb = ldb;
    args.ldc = ldc;
    args.batch = batch;
    args.stride_a = sa;
    args.stride_b = sb;
    args.stride_c = sc;
    return ml_cuda_matmul.gemm(&args);
}

static int check_dtype(const ml_tensor *t) {
    if (t->dtype == ML_F32 || t->dtype == ML_F64) return 0;
    return ml_error_set("conv2d: needs float32 or float64 tensors, got %s", ml_dtype_name(t->dtype));
}

static int cu_conv_forward(const ml_tensor *x, const ml_tensor *w, const ml_tensor *bias,
                           const ml_conv_geom *g, ml_tensor *y) {
    if (check_dtype(x)) return -1;
    if (g->n == 0) return 0;
    const ml_dtype dt = x->dtype;
    const size_t es = ml_dtype_size(dt);
    const int64_t G = g->groups, co = g->c_out / G, K = g->c_in / G * g->kh * g->kw;
    const int64_t P = g->oh * g->ow, rows = g->c_in * g->kh * g->kw, chunk = chunk_of(g, es);
    const size_t nbytes = (size_t)(chunk * rows * P) * es;
    void *col = ml_cu_alloc(nbytes ? nbytes : 1);
    if (!col) return -1;
    cudaStream_t s = ml_cu_stream();
    int rc = 0;
    for (int64_t b0 = 0; rc == 0 && b0 < g->n; b0 += chunk) {
        const int64_t B = g->n - b0 < chunk ? g->n - b0 : chunk;
        const char *xb = (const char *)ml_data(x) + (size_t)(b0 * g->c_in * g->h * g->w) * es;
        char *yb = (char *)ml_data(y) + (size_t)(b0 * g->c_out * P) * es;
        ML_CU_DISPATCH_FLOAT(dt, {
            k_im2col<T><<<ml_cu_blocks(B * rows * P), ML_CU_THREADS, 0, s>>>((const T *)xb, *g, B, (T *)col);
        })
        if (cudaGetLastError() != cudaSuccess) rc = ml_error_set("conv2d: im2col launch failed");
        for (int64_t gi = 0; rc == 0 && gi < G; gi++)
            rc = gemm(dt, false, false, co, P, K, (const char *)ml_data(w) + (size_t)(gi * co * K) * es, K, 0,
                      (const char *)col + (size_t)(gi * K * P) * es, P, rows * P, 0.0,
                      yb + (size_t)(gi * co * P) * es, P, g->c_out * P, B);
    }
    ml_cu_free(col, nbytes ? nbytes : 1);
    if (rc == 0 && bias) {
        ML_CU_DISPATCH_FLOAT(dt, {
            k_add_bias<T><<<ml_cu_blocks(g->n * g->c_out * P), ML_CU_THREADS, 0, s>>>(
                (T *)ml_data(y), (const T *)ml_data(bias), g->n, g->c_out, P);
        })
        ML_CU_LAUNCHED("conv2d");
    }
    return rc;
}

static int cu_conv_backward_input(const ml_tensor *gy, const ml_tensor *w, const ml_tensor *bias,
                                  const ml_conv_geom *g, ml_tensor *gx) {
    if (check_dtype(gy)) return -1;
    if (g->n == 0) return 0;
    const ml_dtype dt = gy->dtype;
    const size_t es = ml_dtype_size(dt);
    const int64_t G = g->groups, co = g->c_out / G, K = g->c_in / G * g->kh * g->kw;
    const int64_t P = g->oh * g->ow, rows = g->c_in * g->kh * g->kw, chunk = chunk_of(g, es);
    const size_t nbytes = (size_t)(chunk * rows * P) * es;
    void *col = ml_cu_alloc(nbytes ? nbytes : 1);
    if (!col) return -1;
    cudaStream_t s = ml_cu_stream();
    int rc = 0;
    for (int64_t b0 = 0; rc == 0 && b0 < g->n; b0 += chunk) {
        const int64_t B = g->n - b0 < chunk ? g->n - b0 : chunk;
        const char *gb = (const char *)ml_data(gy) + (size_t)(b0 * g->c_out * P) * es;
        char *xb = (char *)ml_data(gx) + (size_t)(b0 * g->c_in * g->h * g->w) * es;
        for (int64_t gi = 0; rc == 0 && gi < G; gi++)
            rc = gemm(dt, true, false, K, P, co, (const char *)ml_data(w) + (size_t)(gi * co * K) * es, K, 0,
                      gb + (size_t)(gi * co * P) * es, P, g->c_out * P, 0.0,
                      (char *)col + (size_t)(gi * K * P) * es, P, rows * P, B);
        if (rc) break;
        ML_CU_DISPATCH_FLOAT(dt, {
            k_col2im<T><<<ml_cu_blocks(B * g->c_in * g->h * g->w), ML_CU_THREADS, 0, s>>>(
                (const T *)col, *g, B, bias ? (const T *)ml_data(bias) : (const T *)NULL, (T *)xb);
        })
        if (cudaGetLastError() != cudaSuccess) rc = ml_error_set("conv2d: col2im launch failed");
    }
    ml_cu_free(col, nbytes ? nbytes : 1);
    return rc;
}

static int cu_conv_backward_weight(const ml_tensor *x, const ml_tensor *gy, const ml_conv_geom *g,
                                   ml_tensor *gw, ml_tensor *gb) {
    if (check_dtype(gy)) return -1;
    const ml_dtype dt = gy->dtype;
    const size_t es = ml_dtype_size(dt);
    const int64_t G = g->groups, co = g->c_out / G, K = g->c_in / G * g->kh * g->kw;
    const int64_t P = g->oh * g->ow, rows = g->c_in * g->kh * g->kw;
    cudaStream_t s = ml_cu_stream();
    if (g->n == 0 || P == 0) { /* nothing summed: zeros */
        ML_CU_TRY("conv2d", cudaMemsetAsync(ml_data(gw), 0, (size_t)ml_numel(gw) * es, s));
        if (gb) ML_CU_TRY("conv2d", cudaMemsetAsync(ml_data(gb), 0, (size_t)ml_numel(gb) * es, s));
        return 0;
    }
    const int64_t chunk = chunk_of(g, es);
    const size_t nbytes = (size_t)(chunk * rows * P) * es;
    void *col = ml_cu_alloc(nbytes ? nbytes : 1);
    if (!col) return -1;
    int rc = 0;
    for (int64_t b0 = 0; rc == 0 && b0 < g->n; b0 += chunk) {
        const int64_t B = g->n - b0 < chunk ? g->n - b0 : chunk;
        const char *xb = (const char *)ml_data(x) + (size_t)(b0 * g->c_in * g->h * g->w) * es;
        ML_CU_DISPATCH_FLOAT(dt, {
            k_im2col<T><<<ml_cu_blocks(B * rows * P), ML_CU_THREADS, 0, s>>>((const T *)xb, *g, B, (T *)col);
        })
        if (cudaGetLastError() != cudaSuccess) rc = ml_error_set("conv2d: im2col launch failed");
        for (int64_t b = 0; rc == 0 && b < B; b++) /* sample by sample: a fixed order */
            for (int64_t gi = 0; rc == 0 && gi < G; gi++)
                rc = gemm(dt, false, true, co, K, P,
                          (const char *)ml_data(gy) + (size_t)(((b0 + b) * g->c_out + gi * co) * P) * es, P, 0,
                          (const char *)col + (size_t)((b * rows + gi * K) * P) * es, P, 0,
                          b0 + b > 0 ? 1.0 : 0.0, (char *)ml_data(gw) + (size_t)(gi * co * K) * es, K, 0, 1);
    }
    ml_cu_free(col, nbytes ? nbytes : 1);
    if (rc == 0 && gb && g->c_out > 0) {
        ML_CU_DISPATCH_FLOAT(dt, {
            k_channel_sum<T><<<(unsigned)g->c_out, ML_CU_THREADS, 0, s>>>((const T *)ml_data(gy), g->n,
                                                                          g->c_out, P, (T *)ml_data(gb));
        })
        ML_CU_LAUNCHED("conv2d");
    }
    return rc;
}

const ml_conv_ops ml_cuda_conv = {ML_CONV_ENTRIES(ML_BACKEND_ENTRY, cu_conv_)};
