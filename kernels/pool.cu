/* CUDA kernels of the pool family (contract: src/backend/pool.h). Forward: a
 * thread per output element, the window arithmetic of the CPU kernels. Backward:
 * a thread per input element that gathers from the windows containing it, in a
 * fixed order (no atomics, the same bits every run). */
#include <math.h>

#include "common.cuh"

/* int64 min/max (CUDA's overloads cover int64 but not every host compiler's) */
__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

#define GRID_STRIDE(i, total)                                                            \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (total);       \
         i += (int64_t)gridDim.x * blockDim.x)

template <class T>
__global__ void k_max_fwd(const T *x, ml_pool_geom g, T *y, int64_t *idx, int64_t total) {
    GRID_STRIDE(i, total) {
        const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, p = i / (g.ow * g.oh);
        const T *xp = x + p * g.h * g.w;
        int64_t ih0 = oy * g.sh - g.ph, iw0 = ox * g.sw - g.pw;
        const int64_t ih1 = imin(ih0 + (g.kh - 1) * g.dh + 1, g.h), iw1 = imin(iw0 + (g.kw - 1) * g.dw + 1, g.w);
        while (ih0 < 0) ih0 += g.dh;
        while (iw0 < 0) iw0 += g.dw;
        int64_t mi = ih0 < ih1 && iw0 < iw1 ? ih0 * g.w + iw0 : -1; /* -1: wholly in the padding */
        T mv = -INFINITY;
        for (int64_t ih = ih0; ih < ih1; ih += g.dh)
            for (int64_t iw = iw0; iw < iw1; iw += g.dw) {
                const T v = xp[ih * g.w + iw];
                if (v > mv || v != v) {
                    mv = v;
                    mi = ih * g.w + iw;
                }
            }
        y[i] = mv;
        if (idx) idx[i] = mi;
    }
}

/* the outputs [lo, hi] whose windows (kernel k, stride s, pad p, dilation d) may
 * cover input position t; callers check exactly */
__device__ __forceinline__ void cover(int64_t t, int64_t k, int64_t s, int64_t p, int64_t d,
                                      int64_t out, int64_t *lo, int64_t *hi) {
    const int64_t a = t + p - d * (k - 1);
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    *hi = imin((t + p) / s, out - 1);
}

template <class T>
__global__ void k_max_bwd(const T *gy, const int64_t *idx, ml_pool_geom g, T *gx, int64_t total) {
    GRID_STRIDE(i, total) {
        const int64_t iw = i % g.w, ih = (i / g.w) % g.h, p = i / (g.w * g.h);
        int64_t y0, y1, x0, x1;
        cover(ih, g.kh, g.sh, g.ph, g.dh, g.oh, &y0, &y1);
        cover(iw, g.kw, g.sw, g.pw, g.dw, g.ow, &x0, &x1);
        const int64_t me = ih * g.w + iw, base = p * g.oh * g.ow;
        T s = 0;
        for (int64_t oy = y0; oy <= y1; oy++)
            for (int64_t ox = x0; ox <= x1; ox++)
                if (idx[base + oy * g.ow + ox] == me) s += gy[base + oy * g.ow + ox];
        gx[i] = s;
    }
}

/* the average window of (oy, ox) clipped to the input, and its divisor */
template <class T>
__device__ __forceinline__ T avg_window(const ml_pool_geom &g, int64_t oy, int64_t ox, int64_t *h0,
                                        int64_t *h1, int64_t *w0, int64_t *w1) {
    int64_t ih0 = oy * g.sh - g.ph, iw0 = ox * g.sw - g.pw;
    int64_t ih1 = imin(ih0 + g.kh, g.h + g.ph), iw1 = imin(iw0 + g.kw, g.w + g.pw);
    const int64_t pool_size = (ih1 - ih0) * (iw1 - iw0);
    ih0 = imax(ih0, 0);
    iw0 = imax(iw0, 0);
    ih1 = imin(ih1, g.h);
    iw1 = imin(iw1, g.w);
    *h0 = ih0, *h1 = ih1, *w0 = iw0, *w1 = iw1;
    return (T)(g.count_include_pad ? pool_size : (ih1 - ih0) * (iw1 - iw0));
}

template <class T>
__global__ void k_avg_fwd(const T *x, ml_pool_geom g, T *y, int64_t total) {
    GRID_STRIDE(i, total) {
        const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, p = i / (g.ow * g.oh);
        const T *xp = x + p * g.h * g.w;
        int64_t h0, h1, w0, w1;
        const T div = avg_window<T>(g, oy, ox, &h0, &h1, &w0, &w1);
        T s = 0;
        for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t iw = w0; iw < w1; iw++) s += xp[ih * g.w + iw];
        y[i] = h0 >= h1 || w0 >= w1 ? (T)0 : s / div;
    }
}

template <class T>
__global__ void k_avg_bwd(const T *gy, ml_pool_geom g, T *gx, int64_t total) {
    GRID_STRIDE(i, total) {
        const int64_t iw = i % g.w, ih = (i / g.w) % g.h, p = i / (g.w * g.h);
        int64_t y0, y1, x0, x1;
        cover(ih, g.kh, g.sh, g.ph, 1, g.oh, &y0, &y1);
        cover(iw, g.kw, g.sw, g.pw, 1, g.ow, &x0, &x1);
        const T *gp = gy + p * g.oh * g.ow;
        T s = 0;
        for (int64_t oy = y0; oy <= y1; oy++)
            for (int64_t ox = x0; ox <= x1; ox++) {
                int64_t h0, h1, w0, w1;
                const T div = avg_window<T>(g, oy, ox, &h0, &h1, &w0, &w1);
                if (ih >= h0 && ih < h1 && iw >= w0 && iw < w1) s += gp[oy * g.ow + ox] / div;
            }
        gx[i] = s;
    }
}

template <class T>
__global__ void k_ada_fwd(const T *x, ml_pool_geom g, T *y, int64_t total) {
    GRID_STRIDE(i, total) {
        const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, p = i / (g.ow * g.oh);
        const T *xp = x + p * g.h * g.w;
        const int64_t h0 = oy * g.h / g.oh, h1 = ((oy + 1) * g.h + g.oh - 1) / g.oh;
        const int64_t w0 = ox * g.w / g.ow, w1 = ((ox + 1) * g.w + g.ow - 1) / g.ow;
        T s = 0;
        for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t iw = w0; iw < w1; iw++) s += xp[ih * g.w + iw];
        y[i] = s / (T)((h1 - h0) * (w1 - w0));
    }
}

template <class T>
__global__ void k_ada_bwd(const T *gy, ml_pool_geom g, T *gx, int64_t total) {
    GRID_STRIDE(i, total) {
        const int64_t iw = i % g.w, ih = (i / g.w) % g.h, p = i / (g.w * g.h);
        const T *gp = gy + p * g.oh * g.ow;
        /* windows containing ih: from floor(ih oh / h) to the last oy that starts at or before ih */
        const int64_t ylo = ih * g.oh / g.h, yhi = imin(((ih + 1) * g.oh + g.h - 1) / g.h, g.oh);
        const int64_t xlo = iw * g.ow / g.w, xhi = imin(((iw + 1) * g.ow + g.w - 1) / g.w, g.ow);
        T s = 0;
        for (int64_t oy = ylo; oy < yhi; oy++) {
            const int64_t h0 = oy * g.h / g.oh, h1 = ((oy + 1) * g.h + g.oh - 1) / g.oh;
            if (ih < h0 || ih >= h1) continue;
            for (int64_t ox = xlo; ox < xhi; ox++) {
                const int64_t w0 = ox * g.w / g.ow, w1 = ((ox + 1) * g.w + g.ow - 1) / g.ow;
                if (iw < w0 || iw >= w1) continue;
                s += gp[oy * g.ow + ox] / (T)((h1 - h0) * (w1 - w0));
            }
        }
        gx[i] = s;
    }
}

static int check_dtype(const ml_tensor *t) {
    if (t->dtype == ML_F32 || t->dtype == ML_F64) return 0;
    return ml_error_set("pool: needs float32 or float64 tensors, got %s", ml_dtype_name(t->dtype));
}

static int cu_pool_max_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y, ml_tensor *idx) {
    if (check_dtype(x)) return -1;
    const int64_t total = g->n * g->c * g->oh * g->ow;
    if (total == 0) return 0;
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_max_fwd<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, ml_cu_stream()>>>(
            (const T *)ml_data(x), *g, (T *)ml_data(y), idx ? (int64_t *)ml_data(idx) : NULL, total);
    })
    ML_CU_LAUNCHED("max_pool2d");
    return 0;
}

static int cu_pool_max_backward(const ml_tensor *gy, const ml_tensor *idx, const ml_pool_geom *g,
                                ml_tensor *gx) {
    if (check_dtype(gy)) return -1;
    const int64_t total = g->n * g->c * g->h * g->w;
    if (total == 0) return 0;
    ML_CU_DISPATCH_FLOAT(gy->dtype, {
        k_max_bwd<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, ml_cu_stream()>>>(
            (const T *)ml_data(gy), (const int64_t *)ml_data(idx), *g, (T *)ml_data(gx), total);
    })
    ML_CU_LAUNCHED("max_pool2d");
    return 0;
}

static int cu_pool_avg_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y) {
    if (check_dtype(x)) return -1;
    const int64_t total = g->n * g->c * g->oh * g->ow;
    if (total == 0) return 0;
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_avg_fwd<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, ml_cu_stream()>>>(
            (const T *)ml_data(x), *g, (T *)ml_data(y), total);
    })
    ML_CU_LAUNCHED("avg_pool2d");
    return 0;
}

static int cu_pool_avg_backward(const ml_tensor *gy, const ml_pool_geom *g, ml_tensor *gx) {
    if (check_dtype(gy)) return -1;
    const int64_t total = g->n * g->c * g->h * g->w;
    if (total == 0) return 0;
    ML_CU_DISPATCH_FLOAT(gy->dtype, {
        k_avg_bwd<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, ml_cu_stream()>>>(
            (const T *)ml_data(gy), *g, (T *)ml_data(gx), total);
    })
    ML_CU_LAUNCHED("avg_pool2d");
    return 0;
}

static int cu_pool_adaptive_avg_forward(const ml_tensor *x, const ml_pool_geom *g, ml_tensor *y) {
    if (check_dtype(x)) return -1;
    const int64_t total = g->n * g->c * g->oh * g->ow;
    if (total == 0) return 0;
    ML_CU_DISPATCH_FLOAT(x->dtype, {
        k_ada_fwd<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, ml_cu_stream()>>>(
            (const T *)ml_data(x), *g, (T *)ml_data(y), total);
    })
    ML_CU_LAUNCHED("adaptive_avg_pool2d");
    return 0;
}

static int cu_pool_adaptive_avg_backward(const ml_tensor *gy, const ml_pool_geom *g, ml_tensor *gx) {
    if (check_dtype(gy)) return -1;
    const int64_t total = g->n * g->c * g->h * g->w;
    if (total == 0) return 0;
    ML_CU_DISPATCH_FLOAT(gy->dtype, {
        k_ada_bwd<T><<<ml_cu_blocks(total), ML_CU_THREADS, 0, ml_cu_stream()>>>(
            (const T *)ml_data(gy), *g, (T *)ml_data(gx), total);
    })
    ML_CU_LAUNCHED("adaptive_avg_pool2d");
    return 0;
}

const ml_pool_ops ml_cuda_pool = {ML_POOL_ENTRIES(ML_BACKEND_ENTRY, cu_pool_)};
