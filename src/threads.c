/* How many threads the CPU backend uses: our OpenMP loops and OpenBLAS (the OpenMP
 * build shares their pool; the pthread build has its own count, set alongside). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <time.h>

#include "error.h"

/* Per thread: each thread that starts regions judges them for itself (see below). */
static _Thread_local struct {
    double alone_until; /* regions run on the calling thread alone until then */
    double backoff;     /* the next time alone */
    double bad;         /* regions that waited too long, decaying by 2 % a region */
    int saved;          /* the thread count while backing off (its ICV is then 1), else 0 */
} team;

int ml_get_num_threads(void) { return team.saved ? team.saved : omp_get_max_threads(); }

int ml_set_num_threads(int n) {
    if (n < 1) return ml_error_set("set_num_threads: expected a positive count, got %d", n);
    team.saved = 0;
    team.alone_until = 0;
    team.backoff = 0;
    team.bad = 0;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return 0;
}

/* --- backing off from a busy machine (see threads.h) ------------------------- */

#define TEAM_WAIT_MIN 100e-6  /* a wait shorter than this is the team's normal cost */
#define TEAM_BACKOFF_MIN 0.05
#define TEAM_BACKOFF_MAX 0.5

double ml_clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* While backing off, this thread's OpenMP thread count (its nthreads ICV) is 1, so
 * that OpenBLAS, which sizes its own teams from it, runs on this thread alone too. */
int ml_team_threads(void) {
    if (team.saved && ml_clock_seconds() >= team.alone_until) {
        omp_set_num_threads(team.saved); /* the time alone is over: try the team again */
        team.saved = 0;
    }
    return omp_get_max_threads();
}

/* A region waited too long when the calling thread, done with its share, waited
 * for the team more than TEAM_WAIT_MIN and more than its share took. Quiet, that
 * is ~1 region in 3000 (a page fault, an interrupt); beside a busy process, 1 in
 * ~100, each a scheduler time slice (ms), and the team's spinning threads take
 * the cores from the calling thread in between. Two such regions within about
 * the last 50: the calling thread goes alone for a while, its workers fall asleep. */
void ml_team_report(double region_seconds, double own_seconds) {
    const double wait = region_seconds - own_seconds;
    const bool bad = wait > TEAM_WAIT_MIN && wait > own_seconds;
    team.bad = team.bad * 0.98 + (bad ? 1.0 : 0.0);
    if (!bad) {
        if (team.alone_until > 0 && ml_clock_seconds() > team.alone_until + 10.0)
            team.backoff = 0; /* ten seconds of good regions: forget the history */
        return;
    }
    if (team.bad < 1.5) return;
    team.bad = 0;
    double b = team.backoff > 0 ? team.backoff : TEAM_BACKOFF_MIN;
    team.alone_until = ml_clock_seconds() + b;
    team.backoff = b * 2 < TEAM_BACKOFF_MAX ? b * 2 : TEAM_BACKOFF_MAX;
    if (!team.saved) {
        team.saved = omp_get_max_threads();
        omp_set_num_threads(1);
    }
}
