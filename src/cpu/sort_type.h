/* The CPU sort-family kernels of one element type. src/cpu/sort.c includes this
 * file once per dtype, with defined:
 *   T      the element type: float, double, int64_t, uint8_t
 *   ACC    cumsum's accumulator: double for the float types, int64_t for integers
 *   OUT    cumsum's output element: T for the float types, int64_t for integers
 *   SUF    the suffix of the names made here: f32, f64, i64, u8
 * and two ml_range_fn come out, over lines [begin, end) of a sort_job:
 * sort_lines_<SUF> and cumsum_lines_<SUF>. A line is one (outer, inner) pair of x
 * seen as [outer, n, inner]; its elements are n apart by inner. */

#define FN(name) ML_CAT(name, SUF)

/* One element and its position along the line, as the merges move them. */
typedef struct {
    T v;
    int64_t i;
} FN(pair);

/* a sorts strictly before b in ascending order; NaN after every number (torch) */
static inline bool FN(before)(T a, T b) { return !ml_isnan(a) && (ml_isnan(b) || a < b); }

/* Merges the sorted runs a[lo, mid) and a[mid, hi) into b[lo, hi): the right
 * element goes first only when it sorts strictly before the left one, so equal
 * elements keep their order (a stable sort, hence one result). */
static void FN(merge)(const FN(pair) *a, FN(pair) *b, int64_t lo, int64_t mid, int64_t hi,
                      bool desc) {
    int64_t l = lo, r = mid, k = lo;
    while (l < mid && r < hi) {
        bool right_first = desc ? FN(before)(a[l].v, a[r].v) : FN(before)(a[r].v, a[l].v);
        b[k++] = right_first ? a[r++] : a[l++];
    }
    while (l < mid) b[k++] = a[l++];
    while (r < hi) b[k++] = a[r++];
}

/* Sorts lines [begin, end): bottom-up merge sort of each line in two scratch
 * arrays of n pairs (allocated per call: the calling thread's). */
static void FN(sort_lines)(void *ctx, int64_t begin, int64_t end) {
    sort_job *j = ctx;
    const int64_t n = j->n, inner = j->inner;
    FN(pair) *a = malloc(sizeof(FN(pair)) * (size_t)(2 * n));
    if (!a) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (int64_t line = begin; line < end; line++) {
        const int64_t base = (line / inner) * n * inner + line % inner;
        const T *x = (const T *)j->x + base;
        FN(pair) *src = a, *dst = a + n;
        for (int64_t i = 0; i < n; i++) src[i] = (FN(pair)){x[i * inner], i};
        for (int64_t w = 1; w < n; w *= 2) {
            for (int64_t lo = 0; lo < n; lo += 2 * w) {
                const int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
                FN(merge)(src, dst, lo, mid, hi, j->desc);
            }
            FN(pair) *t = src;
            src = dst;
            dst = t;
        }
        T *vo = (T *)j->values + base;
        int64_t *io = j->indices + base;
        for (int64_t i = 0; i < n; i++) {
            vo[i * inner] = src[i].v;
            io[i * inner] = src[i].i;
        }
    }
    free(a);
}

/* Cumulative sums of lines [begin, end), each added in its order (from the end when
 * reverse) in ACC. */
static void FN(cumsum_lines)(void *ctx, int64_t begin, int64_t end) {
    sort_job *j = ctx;
    const int64_t n = j->n, inner = j->inner;
    for (int64_t line = begin; line < end; line++) {
        const int64_t base = (line / inner) * n * inner + line % inner;
        const T *x = (const T *)j->x + base;
        OUT *o = (OUT *)j->values + base;
        ACC acc = 0;
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = j->desc ? n - 1 - k : k;
            acc += (ACC)x[i * inner];
            o[i * inner] = (OUT)acc;
        }
    }
}

#undef FN
