/* The index family's adds for one dtype, included once per dtype by index.c with T
 * (float, double, int64_t) and SUFFIX. Range functions for ml_parallel_for:
 * scatter_add over the index's rows (run in parallel only when dim is the last,
 * where rows write distinct rows of out), index_add over outer (blocks are
 * independent; a repeated index adds twice in index order inside one block). */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)

static void ML_CAT(scatter_rows, SUFFIX)(void *ctx, int64_t r0, int64_t r1) {
    const index_job *jb = ctx;
    T *op = (T *)ml_data(jb->out);
    const T *sp = (const T *)ml_data(jb->x); /* src */
    const int nd = jb->index->ndim;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t base = row_offset(r, nd, jb->index->shape, jb->out->strides, jb->dim);
        const int64_t *ir = jb->ip + r * jb->len;
        const T *s = sp + r * jb->len;
        if (jb->dim == nd - 1) {
            for (int64_t j = 0; j < jb->len; j++) op[base + ir[j]] += s[j];
        } else {
            for (int64_t j = 0; j < jb->len; j++) op[base + j + ir[j] * jb->stride] += s[j];
        }
    }
}

static void ML_CAT(index_add_blocks, SUFFIX)(void *ctx, int64_t o0, int64_t o1) {
    const index_job *jb = ctx;
    T *op = (T *)ml_data(jb->out);
    const T *sp = (const T *)ml_data(jb->x); /* src */
    const int64_t n = jb->n, m = jb->m, inner = jb->inner;
    for (int64_t o = o0; o < o1; o++) {
        T *oo = op + o * n * inner;
        const T *so = sp + o * m * inner;
        for (int64_t i = 0; i < m; i++) {
            T *restrict dst = oo + jb->ip[i] * inner;
            const T *restrict s = so + i * inner;
#pragma omp simd
            for (int64_t j = 0; j < inner; j++) dst[j] += s[j];
        }
    }
}

#undef ML_CAT
#undef ML_CAT2
