/* The index family's moves for one element size, included once per size by
 * index.c with T (uint8_t, uint32_t, uint64_t: only the bits move) and SUFFIX.
 * Range functions for ml_parallel_for over the index's rows (gather) or over
 * outer (index_select); each output element is written once, so any split gives
 * the same result. */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)

static void ML_CAT(gather_rows, SUFFIX)(void *ctx, int64_t r0, int64_t r1) {
    const index_job *jb = ctx;
    const T *xp = (const T *)ml_data(jb->x);
    T *op = (T *)ml_data(jb->out);
    const int nd = jb->index->ndim;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t base = row_offset(r, nd, jb->index->shape, jb->x->strides, jb->dim);
        const int64_t *ir = jb->ip + r * jb->len;
        T *o = op + r * jb->len;
        if (jb->dim == nd - 1) {
            for (int64_t j = 0; j < jb->len; j++) o[j] = xp[base + ir[j]];
        } else {
            for (int64_t j = 0; j < jb->len; j++) o[j] = xp[base + j + ir[j] * jb->stride];
        }
    }
}

static void ML_CAT(select_blocks, SUFFIX)(void *ctx, int64_t o0, int64_t o1) {
    const index_job *jb = ctx;
    const T *xp = (const T *)ml_data(jb->x);
    T *op = (T *)ml_data(jb->out);
    const int64_t n = jb->n, m = jb->m, inner = jb->inner;
    for (int64_t o = o0; o < o1; o++) {
        const T *xo = xp + o * n * inner;
        T *oo = op + o * m * inner;
        if (inner == 1) {
            for (int64_t i = 0; i < m; i++) oo[i] = xo[jb->ip[i]];
        } else {
            for (int64_t i = 0; i < m; i++)
                memcpy(oo + i * inner, xo + jb->ip[i] * inner, (size_t)inner * sizeof(T));
        }
    }
}

#undef ML_CAT
#undef ML_CAT2
