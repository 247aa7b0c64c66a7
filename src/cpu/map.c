/* The CPU's elementwise driver (map.h). */
#include "map.h"

#include "iter.h"
#include "parallel.h"

_Static_assert(ML_ITER_MAX >= ML_MAP_MAX, "ml_iter must hold every tensor of a map");

typedef struct {
    ml_iter it;                  /* merged dims; ndim >= 1 */
    char *base[ML_MAP_MAX];      /* each tensor's first element */
    int64_t esize[ML_MAP_MAX];   /* its element size in bytes */
    ml_map_loop loop;
    const void *arg;
} map_job;

/* Elements [lo, hi) in row-major order: the position of lo once (a division per
 * dim), then run by run of the inner dim, the last run cut at hi. */
static void map_range(void *ctx, int64_t lo, int64_t hi) {
    const map_job *j = ctx;
    const ml_iter *it = &j->it;
    const int nt = it->n, inner = it->ndim - 1;
    if (inner == 0) { /* all dims merged into one (the usual case): one run, no divisions */
        void *p[ML_MAP_MAX];
        int64_t st[ML_MAP_MAX];
        for (int k = 0; k < nt; k++) {
            st[k] = it->strides[k][0];
            p[k] = j->base[k] + lo * st[k] * j->esize[k];
        }
        j->loop(p, st, hi - lo, j->arg);
        return;
    }
    const int64_t len = it->shape[inner];
    int64_t idx[ML_MAX_DIMS], st[ML_MAP_MAX];
    int64_t rest = lo / len, col = lo % len;
    for (int d = inner - 1; d >= 0; d--) {
        idx[d] = rest % it->shape[d];
        rest /= it->shape[d];
    }
    for (int k = 0; k < nt; k++) st[k] = it->strides[k][inner];
    for (int64_t pos = lo; pos < hi;) {
        void *p[ML_MAP_MAX];
        for (int k = 0; k < nt; k++) {
            int64_t off = col * st[k];
            for (int d = 0; d < inner; d++) off += idx[d] * it->strides[k][d];
            p[k] = j->base[k] + off * j->esize[k];
        }
        const int64_t n = len - col < hi - pos ? len - col : hi - pos;
        j->loop(p, st, n, j->arg);
        pos += n;
        col = 0;
        for (int d = inner - 1; d >= 0; d--) {
            if (++idx[d] < it->shape[d]) break;
            idx[d] = 0;
        }
    }
}

void ml_cpu_map(int nt, const ml_tensor *const *t, ml_map_loop loop, const void *arg) {
    const int64_t count = ml_numel(t[0]);
    if (count == 0) return;
    map_job j;
    ml_iter_init(&j.it, nt, t);
    if (j.it.ndim == 0) { /* one element (a 0-dim tensor, or all dims of size 1) */
        j.it.ndim = 1;
        j.it.shape[0] = 1;
        for (int k = 0; k < nt; k++) j.it.strides[k][0] = 0;
    }
    for (int k = 0; k < nt; k++) {
        j.base[k] = ml_data(t[k]);
        j.esize[k] = (int64_t)ml_dtype_size(t[k]->dtype);
    }
    j.loop = loop;
    j.arg = arg;
    ml_parallel_for(count, ML_PAR_MIN, map_range, &j);
}
