/* The CPU backend's parallel loops (parallel.h): the only OpenMP regions of src/cpu. */
#include "parallel.h"

#include <omp.h>

#include "../threads.h"

/* The first element of share t of n elements split nt ways: floor(n * t / nt)
 * without overflow (n = q nt + r), rounded up to a multiple of align; share nt
 * ends at n. */
static int64_t share_start(int64_t n, int t, int nt, int64_t align) {
    if (t >= nt) return n;
    const int64_t q = n / nt, r = n % nt;
    const int64_t s = q * t + r * t / nt;
    const int64_t a = (s + align - 1) / align * align;
    return a < n ? a : n;
}

/* The team for a loop of n elements (1: run it on the calling thread). */
static int team_for(int64_t n, int64_t min_parallel) {
    if (n < min_parallel || n < 2 || omp_in_parallel()) return 1;
    return ml_team_threads();
}

void ml_parallel_for(int64_t n, int64_t min_parallel, ml_range_fn fn, void *ctx) {
    if (n <= 0) return;
    const int team = team_for(n, min_parallel);
    if (team < 2) {
        fn(ctx, 0, n);
        return;
    }
    const double t0 = ml_clock_seconds();
    double own = 0;
#pragma omp parallel num_threads(team)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t lo = share_start(n, t, nt, ML_PAR_ALIGN);
        const int64_t hi = share_start(n, t + 1, nt, ML_PAR_ALIGN);
        if (lo < hi) fn(ctx, lo, hi);
        if (t == 0) own = ml_clock_seconds() - t0;
    }
    ml_team_report(ml_clock_seconds() - t0, own);
}

/* Blocks [b0, b1) of [0, n), one call each, in order. */
static void run_blocks(int64_t n, int64_t block, int64_t b0, int64_t b1, ml_block_fn fn,
                       void *ctx) {
    for (int64_t b = b0; b < b1; b++) {
        const int64_t lo = b * block, hi = lo + block < n ? lo + block : n;
        fn(ctx, b, lo, hi);
    }
}

void ml_parallel_blocks(int64_t n, int64_t block, int64_t min_parallel, ml_block_fn fn,
                        void *ctx) {
    const int64_t nb = ml_nblocks(n, block);
    if (nb == 0) return;
    const int team = nb > 1 ? team_for(n, min_parallel) : 1;
    if (team < 2) {
        run_blocks(n, block, 0, nb, fn, ctx);
        return;
    }
    const double t0 = ml_clock_seconds();
    double own = 0;
#pragma omp parallel num_threads(team)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        run_blocks(n, block, share_start(nb, t, nt, 1), share_start(nb, t + 1, nt, 1), fn, ctx);
        if (t == 0) own = ml_clock_seconds() - t0;
    }
    ml_team_report(ml_clock_seconds() - t0, own);
}

double ml_sum_slots(const double *slot, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += slot[i];
    return s;
}
