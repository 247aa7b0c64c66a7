/* The embedding family's segment sums for one float type, included once per type
 * by embedding.c with
 *   T       the element type        SUFFIX  the names' suffix (f32, f64)
 * Segments [u0, u1) of the CSR (src/backend/embedding.h): gw's row of each id gets
 * the rows of g at its positions, added in position order, then scaled by
 * 1 / count when scale_by_freq. */
#define ML_CAT2(a, b) a##_##b
#define ML_CAT(a, b) ML_CAT2(a, b)
#define SEGMENTS ML_CAT(embedding_segments, SUFFIX)

static void SEGMENTS(void *ctx, int64_t u0, int64_t u1) {
    const embedding_job *jb = ctx;
    const int64_t d = jb->d;
    for (int64_t u = u0; u < u1; u++) {
        T *restrict out = (T *)jb->gw + jb->rows[u] * d;
        const int64_t a = jb->starts[u], z = jb->starts[u + 1];
        for (int64_t p = a; p < z; p++) {
            const T *restrict gi = (const T *)jb->g + jb->order[p] * d;
#pragma omp simd
            for (int64_t j = 0; j < d; j++) out[j] += gi[j];
        }
        if (jb->scale_by_freq && z > a) {
            const T f = (T)1 / (T)(z - a);
#pragma omp simd
            for (int64_t j = 0; j < d; j++) out[j] *= f;
        }
    }
}

#undef SEGMENTS
#undef ML_CAT
#undef ML_CAT2
