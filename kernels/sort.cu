/* CUDA kernels of the sort family (contract: src/backend/sort.h).
 *
 * sort: every line is copied, element by element, into scratch as (value, position)
 * pairs, line after line; then a bottom-up merge sort runs one launch per pass
 * (runs of width 1, 2, 4, ... merged in pairs), each thread placing one element:
 * its place in the merged run is its place in its own run plus the number of
 * elements of the other run that go before it, found by binary search. A left
 * element counts the right ones strictly ahead of it, a right element the left ones
 * not behind it, so equal elements keep their order: the sort is stable, its
 * result unique, the same as the CPU's merge sort. The last pass's pairs are
 * written back in x's layout. Work O(n log^2 n) per line, all lines in one grid.
 *
 * cumsum: one thread per line adds its n elements in order in double (integers in
 * int64), as the CPU does, so both backends give the same bits. Adjacent threads
 * take adjacent columns when inner > 1 (coalesced); a single long line is one
 * thread's, a scan across a block would change the order of the additions. */
#include "common.cuh"

/* a sorts strictly before b in ascending order; NaN after every number (torch) */
template <class T>
__device__ __forceinline__ bool before(T a, T b) {
    return !ml_isnan(a) && (ml_isnan(b) || a < b);
}
/* a goes strictly ahead of b in the requested order */
template <class T>
__device__ __forceinline__ bool ahead(T a, T b, bool desc) {
    return desc ? before(b, a) : before(a, b);
}

/* pairs[e] = (x element, its position) for e = line * n + i */
template <class T>
__global__ void k_sort_load(const T *x, int64_t total, int64_t n, int64_t inner, T *v, int64_t *pos) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t line = e / n, i = e % n;
        v[e] = x[((line / inner) * n + i) * inner + line % inner];
        pos[e] = i;
    }
}

/* One merge pass: runs of width w of each line in (sv, sp) merged in pairs into
 * (dv, dp). */
template <class T>
__global__ void k_sort_merge(const T *sv, const int64_t *sp, T *dv, int64_t *dp, int64_t total,
                             int64_t n, int64_t w, bool desc) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t line = e / n, i = e % n;
        const int64_t lo = i / (2 * w) * (2 * w);
        const int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
        const T *run = sv + line * n;
        const T v = run[i];
        int64_t a, b, place;
        if (i < mid) { /* right elements strictly ahead of v: a prefix of [mid, hi) */
            a = mid;
            b = hi;
            while (a < b) {
                const int64_t m = a + (b - a) / 2;
                if (ahead(run[m], v, desc)) a = m + 1;
                else b = m;
            }
            place = lo + (i - lo) + (a - mid);
        } else { /* left elements not behind v: a prefix of [lo, mid) */
            a = lo;
            b = mid;
            while (a < b) {
                const int64_t m = a + (b - a) / 2;
                if (!ahead(v, run[m], desc)) a = m + 1;
                else b = m;
            }
            place = lo + (i - mid) + (a - lo);
        }
        dv[line * n + place] = v;
        dp[line * n + place] = sp[e];
    }
}

/* the sorted pairs back into x's layout */
template <class T>
__global__ void k_sort_store(const T *v, const int64_t *pos, int64_t total, int64_t n, int64_t inner,
                             T *values, int64_t *indices) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t line = e / n, i = e % n;
        const int64_t at = ((line / inner) * n + i) * inner + line % inner;
        values[at] = v[e];
        indices[at] = pos[e];
    }
}

template <class T>
static int sort_typed(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner, bool desc,
                      ml_tensor *values, ml_tensor *indices) {
    const int64_t total = outer * n * inner;
    const size_t vbytes = sizeof(T) * (size_t)total, pbytes = sizeof(int64_t) * (size_t)total;
    char *scratch = (char *)ml_cu_alloc(2 * (vbytes + pbytes));
    if (!scratch) return -1;
    /* the positions first: each array then starts aligned for its type */
    int64_t *p[2] = {(int64_t *)scratch, (int64_t *)(scratch + pbytes)};
    T *v[2] = {(T *)(scratch + 2 * pbytes), (T *)(scratch + 2 * pbytes + vbytes)};
    cudaStream_t s = ml_cu_stream();
    const unsigned blocks = ml_cu_blocks(total);
    k_sort_load<<<blocks, ML_CU_THREADS, 0, s>>>((const T *)ml_data(x), total, n, inner, v[0], p[0]);
    int cur = 0;
    for (int64_t w = 1; w < n; w *= 2, cur ^= 1)
        k_sort_merge<<<blocks, ML_CU_THREADS, 0, s>>>(v[cur], p[cur], v[cur ^ 1], p[cur ^ 1], total, n,
                                                      w, desc);
    k_sort_store<<<blocks, ML_CU_THREADS, 0, s>>>(v[cur], p[cur], total, n, inner, (T *)ml_data(values),
                                                  (int64_t *)ml_data(indices));
    cudaError_t e = cudaGetLastError();
    ml_cu_free(scratch, 2 * (vbytes + pbytes)); /* stream order: reused only by later work */
    if (e != cudaSuccess) return ml_cu_fail("sort", e);
    return 0;
}

static int cu_sort_sort(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner, bool descending,
                        ml_tensor *values, ml_tensor *indices) {
    if (values->dtype != x->dtype || indices->dtype != ML_I64)
        return ml_error_set("sort: not defined for %s", ml_dtype_name(x->dtype));
    if (n == 0 || outer * inner == 0) return 0;
    ML_CU_DISPATCH_ALL(x->dtype, return sort_typed<T>(x, outer, n, inner, descending, values, indices))
    return ml_error_set("sort: not defined for %s", ml_dtype_name(x->dtype));
}

/* cumsum's accumulator and output: double and the float type; int64 for integers */
template <class T>
struct CumTypes {
    typedef double Acc;
    typedef T Out;
};
template <>
struct CumTypes<int64_t> {
    typedef int64_t Acc;
    typedef int64_t Out;
};
template <>
struct CumTypes<uint8_t> {
    typedef int64_t Acc;
    typedef int64_t Out;
};

template <class T>
__global__ void k_cumsum(const T *x, int64_t lines, int64_t n, int64_t inner, bool reverse,
                         typename CumTypes<T>::Out *out) {
    typedef typename CumTypes<T>::Acc Acc;
    typedef typename CumTypes<T>::Out Out;
    for (int64_t line = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; line < lines;
         line += (int64_t)gridDim.x * blockDim.x) {
        const int64_t base = (line / inner) * n * inner + line % inner;
        Acc acc = 0;
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = reverse ? n - 1 - k : k;
            acc += (Acc)x[base + i * inner];
            out[base + i * inner] = (Out)acc;
        }
    }
}

static int cu_sort_cumsum(const ml_tensor *x, int64_t outer, int64_t n, int64_t inner, bool reverse,
                          ml_tensor *out) {
    const ml_dtype want = ml_dtype_is_float(x->dtype) ? x->dtype : ML_I64;
    if (out->dtype != want)
        return ml_error_set("cumsum: not defined from %s to %s", ml_dtype_name(x->dtype),
                            ml_dtype_name(out->dtype));
    const int64_t lines = outer * inner;
    if (n == 0 || lines == 0) return 0;
    ML_CU_DISPATCH_ALL(x->dtype, {
        k_cumsum<<<ml_cu_blocks(lines), ML_CU_THREADS, 0, ml_cu_stream()>>>(
            (const T *)ml_data(x), lines, n, inner, reverse,
            (typename CumTypes<T>::Out *)ml_data(out));
        ML_CU_LAUNCHED("cumsum");
        return 0;
    })
    return ml_error_set("cumsum: not defined for %s", ml_dtype_name(x->dtype));
}

const ml_sort_ops ml_cuda_sort = {ML_SORT_ENTRIES(ML_BACKEND_ENTRY, cu_sort_)};
