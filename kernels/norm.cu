/* CUDA kernels of the norm family (contract: src/backend/norm.h): layer_norm and
 * group_norm. Forward and the input gradient: a block per row, the row's sums in
 * double by a fixed tree (the block size depends on n alone), so a row's result
 * is the same on every run. The weight and bias gradients: the rows cut into the
 * blocks of ml_norm_row_block (the CPU's), a thread per affine value summing its
 * elements of one block of rows in row order into a partial, then a thread per
 * affine value adding the partials in block order. No atomics. */
#include <math.h>

#include "common.cuh"

/* The sum of v over the block (blockDim.x a power of two <= 1024), in every
 * thread: warp shuffles, then the warps' sums in shared memory in warp order. */
__device__ __forceinline__ double norm_block_sum(double v) {
    __shared__ double sh[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double s = 0;
    for (int i = 0; i < nw; i++) s += sh[i];
    return s;
}

/* The affine index of element i of row r (see norm.h). */
__device__ __forceinline__ int64_t aff_index(const ml_norm_geom &geo, int64_t r, int64_t i) {
    return (r % geo.groups) * geo.segs + i / geo.seg_len;
}

template <class T>
__global__ void k_norm_forward(const T *__restrict__ x, const T *__restrict__ w,
                               const T *__restrict__ b, ml_norm_geom geo, T *__restrict__ y,
                               T *__restrict__ mean, T *__restrict__ rstd) {
    const int64_t n = geo.n;
    for (int64_t r = blockIdx.x; r < geo.rows; r += gridDim.x) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        double s = 0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += (double)xr[i];
        const double mu = norm_block_sum(s) / (double)n;
        double v = 0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const double d = (double)xr[i] - mu;
            v += d * d;
        }
        const double rs = 1.0 / sqrt(norm_block_sum(v) / (double)n + geo.eps);
        if (threadIdx.x == 0) {
            mean[r] = (T)mu;
            rstd[r] = (T)rs;
        }
        const T m = (T)mu, rt = (T)rs;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            T val = (xr[i] - m) * rt;
            if (geo.seg_len == 1) { /* layer_norm: the CPU's (x - m) * rs * w + b */
                if (w) val = val * w[aff_index(geo, r, i)];
                if (b) val = val + b[aff_index(geo, r, i)];
            } else { /* group_norm: the CPU's x * a + c, a = rs * w, c = b - m * a */
                const int64_t k = aff_index(geo, r, i);
                const T a = rt * (w ? w[k] : (T)1), c = (b ? b[k] : (T)0) - m * a;
                val = xr[i] * a + c;
            }
            yr[i] = val;
        }
    }
}

/* gx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat)), dy = g * w */
template <class T>
__global__ void k_norm_backward_x(const T *__restrict__ x, const T *__restrict__ w,
                                  const T *__restrict__ mean, const T *__restrict__ rstd,
                                  const T *__restrict__ g, ml_norm_geom geo, T *__restrict__ gx) {
    const int64_t n = geo.n;
    for (int64_t r = blockIdx.x; r < geo.rows; r += gridDim.x) {
        const T *xr = x + r * n, *gr = g + r * n;
        const T m = mean[r], rs = rstd[r];
        double s1 = 0, s2 = 0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const double dy = (double)(w ? gr[i] * w[aff_index(geo, r, i)] : gr[i]);
            s1 += dy;
            s2 += dy * (double)((xr[i] - m) * rs);
        }
        const T k1 = (T)(norm_block_sum(s1) / (double)n), k2 = (T)(norm_block_sum(s2) / (double)n);
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const T dy = w ? gr[i] * w[aff_index(geo, r, i)] : gr[i];
            gx[r * n + i] = rs * (dy - k1 - (xr[i] - m) * rs * k2);
        }
    }
}

/* Block blockIdx.y of rows (rb rows), affine value k: the sums of g * xhat and of g
 * over its elements, rows in order, into pw / pb [nblk, naff]. */
template <class T>
__global__ void k_norm_backward_partial(const T *__restrict__ x, const T *__restrict__ mean,
                                        const T *__restrict__ rstd, const T *__restrict__ g,
                                        ml_norm_geom geo, int64_t rb, double *__restrict__ pw,
                                        double *__restrict__ pb) {
    const int64_t naff = geo.groups * geo.segs, blk = blockIdx.y;
    const int64_t r0 = blk * rb, r1 = r0 + rb < geo.rows ? r0 + rb : geo.rows;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < naff;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int64_t grp = k / geo.segs, seg = k - grp * geo.segs;
        /* the block's first row of group grp, then every groups-th */
        int64_t r = r0 + ((grp - r0 % geo.groups) % geo.groups + geo.groups) % geo.groups;
        double sw = 0, sb = 0;
        for (; r < r1; r += geo.groups) {
            const T m = mean[r], rs = rstd[r];
            const T *xs = x + r * geo.n + seg * geo.seg_len, *gs = g + r * geo.n + seg * geo.seg_len;
            double a = 0, c = 0;
            for (int64_t i = 0; i < geo.seg_len; i++) {
                a += (double)gs[i] * (double)((xs[i] - m) * rs);
                c += (double)gs[i];
            }
            sw += a;
            sb += c;
        }
        if (pw) pw[blk * naff + k] = sw;
        if (pb) pb[blk * naff + k] = sb;
    }
}

/* out[k] = the partials of k added in block order */
template <class T>
__global__ void k_norm_combine(const double *__restrict__ part, int64_t nblk, int64_t naff,
                               T *__restrict__ out) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < naff;
         k += (int64_t)gridDim.x * blockDim.x) {
        double s = 0;
        for (int64_t blk = 0; blk < nblk; blk++) s += part[blk * naff + k];
        out[k] = (T)s;
    }
}

/* Threads per row: a power of two from 32 to 256, by n alone. */
static unsigned row_threads(int64_t n) {
    unsigned t = 32;
    while (t < 256 && (int64_t)t < n) t <<= 1;
    return t;
}

static unsigned row_blocks(int64_t rows) { return (unsigned)(rows < (1 << 20) ? rows : (1 << 20)); }

template <class T> static const T *cdata(const ml_tensor *t) { return t ? (const T *)ml_data(t) : NULL; }

static int cu_norm_forward(const ml_tensor *x, const ml_tensor *w, const ml_tensor *b,
                           const ml_norm_geom *geo, ml_tensor *y, ml_tensor *mean, ml_tensor *rstd) {
    if (!ml_dtype_is_float(x->dtype))
        return ml_error_set("norm: needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
    if (geo->rows == 0) return 0;
    cudaStream_t s = ml_cu_stream();
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_norm_forward<T><<<row_blocks(geo->rows), row_threads(geo->n), 0, s>>>(
            cdata<T>(x), cdata<T>(w), cdata<T>(b), *geo, (T *)ml_data(y), (T *)ml_data(mean),
            (T *)ml_data(rstd));
    })
    ML_CU_LAUNCHED("norm");
    return 0;
}

static int cu_norm_backward(const ml_tensor *x, const ml_tensor *w, const ml_tensor *mean,
                            const ml_tensor *rstd, const ml_tensor *g, const ml_norm_geom *geo,
                            ml_tensor *gx, ml_tensor *gw, ml_tensor *gb) {
    if (!ml_dtype_is_float(x->dtype))
        return ml_error_set("norm: needs a floating point tensor, got %s", ml_dtype_name(x->dtype));
    cudaStream_t s = ml_cu_stream();
    const int64_t naff = geo->groups * geo->segs, rb = ml_norm_row_block(geo->rows, geo->n);
    const int64_t nblk = geo->rows > 0 ? (geo->rows + rb - 1) / rb : 0;
    if (gx && geo->rows > 0) {
        ML_CU_DISPATCH_FLOAT(x->dtype, {
            k_norm_backward_x<T><<<row_blocks(geo->rows), row_threads(geo->n), 0, s>>>(
                cdata<T>(x), cdata<T>(w), cdata<T>(mean), cdata<T>(rstd), cdata<T>(g), *geo,
                (T *)ml_data(gx));
        })
        ML_CU_LAUNCHED("norm backward");
    }
    if ((!gw && !gb) || naff == 0) return 0;
    if (nblk == 0) { /* no rows: the sums are zero */
        if (gw) ML_CU_TRY("norm backward", cudaMemsetAsync(ml_data(gw), 0, (size_t)naff * ml_dtype_size(gw->dtype), s));
        if (gb) ML_CU_TRY("norm backward", cudaMemsetAsync(ml_data(gb), 0, (size_t)naff * ml_dtype_size(gb->dtype), s));
        return 0;
    }
    const size_t bytes = (size_t)(2 * nblk * naff) * sizeof(double);
    double *part = (double *)ml_cu_alloc(bytes);
    if (!part) return -1;
    double *pw = gw ? part : NULL, *pb = gb ? part + nblk * naff : NULL;
    const unsigned gx_blocks = (unsigned)((naff + ML_CU_THREADS - 1) / ML_CU_THREADS < 65535
                                              ? (naff + ML_CU_THREADS - 1) / ML_CU_THREADS : 65535);
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_norm_backward_partial<T><<<dim3(gx_blocks, (unsigned)nblk), ML_CU_THREADS, 0, s>>>(
            cdata<T>(x), cdata<T>(mean), cdata<T>(rstd), cdata<T>(g), *geo, rb, pw, pb);
        if (gw) k_norm_combine<T><<<ml_cu_blocks(naff), ML_CU_THREADS, 0, s>>>(pw, nblk, naff, (T *)ml_data(gw));
        if (gb) k_norm_combine<T><<<ml_cu_blocks(naff), ML_CU_THREADS, 0, s>>>(pb, nblk, naff, (T *)ml_data(gb));
    })
    ml_cu_free(part, bytes); /* stream order: reused only by later work */
    ML_CU_LAUNCHED("norm backward");
    return 0;
}

const ml_norm_ops ml_cuda_norm = {ML_NORM_ENTRIES(ML_BACKEND_ENTRY, cu_norm_)};
