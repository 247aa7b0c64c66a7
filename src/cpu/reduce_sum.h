/* The reduce family's sums over n of [outer, n, inner] for one dtype, included once
 * per dtype by reduce.c with T (the element), ACC_T (the accumulator: double for
 * floats, uint64_t for integers: wraps), OUT_T (what is stored) and SUFFIX. Each output
 * element is one thread's sum in a fixed order, so any split gives the same bits.
 *
 * With inner > 1 (a sum over a leading dim: the bias gradient's sum over the batch)
 * the n rows of each [n, inner] slab are added row by row into a block of
 * SUM_COLS_BLOCK accumulators, so the loads are unit-stride and the adds vectorise;
 * a column at a time (stride inner) was ~10x slower at [128, 64]. */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)

/* Rows [o0, o1) (inner == 1). */
static void ML_CAT(sum_rows, SUFFIX)(void *ctx, int64_t o0, int64_t o1) {
    const sum_job *jb = ctx;
    const T *xp = (const T *)jb->x;
    OUT_T *op = (OUT_T *)jb->out;
    const int64_t n = jb->n;
    for (int64_t o = o0; o < o1; o++) {
        ACC_T acc = 0;
        const T *p = xp + o * n;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < n; i++) acc += (ACC_T)p[i];
        op[o] = (OUT_T)(jb->mean ? acc / (ACC_T)n : acc);
    }
}

/* Column blocks [b0, b1) of outer * ml_nblocks(inner, SUM_COLS_BLOCK) (inner > 1). */
static void ML_CAT(sum_cols, SUFFIX)(void *ctx, int64_t b0, int64_t b1) {
    const sum_job *jb = ctx;
    const T *xp = (const T *)jb->x;
    OUT_T *op = (OUT_T *)jb->out;
    const int64_t n = jb->n, inner = jb->inner, nblk = ml_nblocks(inner, SUM_COLS_BLOCK);
    for (int64_t ob = b0; ob < b1; ob++) {
        const int64_t o = ob / nblk, j0 = ob % nblk * SUM_COLS_BLOCK;
        const int64_t w = inner - j0 < SUM_COLS_BLOCK ? inner - j0 : SUM_COLS_BLOCK;
        ACC_T acc[SUM_COLS_BLOCK];
        for (int64_t j = 0; j < w; j++) acc[j] = 0;
        const T *p = xp + o * n * inner + j0;
        for (int64_t i = 0; i < n; i++) {
            const T *restrict row = p + i * inner;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) acc[j] += (ACC_T)row[j];
        }
        OUT_T *restrict q = op + o * inner + j0;
        for (int64_t j = 0; j < w; j++) q[j] = (OUT_T)(jb->mean ? acc[j] / (ACC_T)n : acc[j]);
    }
}

#undef ML_CAT
#undef ML_CAT2
