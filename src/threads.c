/* How many threads the CPU backend uses. The count is the process's (as
 * torch.set_num_threads), read from OpenMP (OMP_NUM_THREADS, else the cores) the
 * first time it is needed; our regions (src/cpu/parallel.c) name their team size
 * explicitly. OpenBLAS is always called on one thread (ml_blas_enter): it sizes
 * its own teams from the calling thread's OpenMP count and splits a product
 * differently for each count, so its bits would follow the threads; our gemm
 * slices (src/cpu/matmul.c) are its parallelism instead. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "threads.h"

#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "error.h"

/* Per thread: each thread that starts regions judges them for itself (see below). */
static _Thread_local struct {
    double alone_until; /* regions run on the calling thread alone until then */
    double backoff;     /* the next time alone */
    double bad;         /* regions that waited too long, decaying by 2 % a region */
    /* the choice between the team and one thread by the clock (see below) */
    ml_team_trial trial;
    int regions;         /* regions started in this window */
    double window_start; /* when it began (0: not yet) */
    int window_alone;    /* this window runs alone */
    int window_mixed;    /* the backoff made some of its regions run otherwise */
} team;

static atomic_int thread_count; /* the process's count; 0 until first read */
static pthread_once_t count_once = PTHREAD_ONCE_INIT;

static void read_count(void) {
    int expected = 0;
    atomic_compare_exchange_strong(&thread_count, &expected, omp_get_max_threads());
}

int ml_get_num_threads(void) {
    pthread_once(&count_once, read_count);
    return atomic_load(&thread_count);
}

int ml_set_num_threads(int n) {
    if (n < 1) return ml_error_set("set_num_threads: expected a positive count, got %d", n);
    pthread_once(&count_once, read_count);
    atomic_store(&thread_count, n);
    team.alone_until = 0;
    team.backoff = 0;
    team.bad = 0;
    team.trial = (ml_team_trial){{0, 0}, 0, 0, 0};
    team.regions = 0;
    team.window_start = 0;
    team.window_alone = 0;
    team.window_mixed = 0;
    return 0;
}

int ml_blas_enter(void) {
    pthread_once(&count_once, read_count); /* before the thread's count is lowered */
    const int saved = omp_get_max_threads();
    if (saved != 1) omp_set_num_threads(1);
    return saved;
}

void ml_blas_leave(int saved) {
    if (saved != 1) omp_set_num_threads(saved);
}

/* --- the team or one thread, by the clock (see threads.h) -------------------- */

#define TRIAL_REGIONS 128  /* regions in a window */
#define TRIAL_GAP_NEAR 8   /* windows from one trial to the next while the two choices
                            * are within 20 % of each other */
#define TRIAL_GAP_FAR 32   /* ... while they are further apart (each trial costs) */
#define TRIAL_GAP_ALONE 4  /* ... while one thread is the choice: the team, the usual
                            * winner, is tried again soon after a busy spell */
#define TRIAL_TO_ALONE 0.85 /* one thread must be 15 % faster to take over (a busy
                             * window of the team's is not a busy machine) */
#define TRIAL_TO_TEAM 0.97  /* the team, 3 % */

int ml_team_trial_next(ml_team_trial *t, int ran_alone, double seconds_per_region) {
    const int m = ran_alone ? 1 : 0;
    const double mine = t->est[m], other = t->est[1 - m], s = seconds_per_region;
    /* a window with a pause in it (a checkpoint written, the script doing other
     * work) says nothing of the choice */
    const bool outlier = mine > 0 && other > 0 && s > 4 * mine && s > 4 * other;
    if (!outlier && s > 0) t->est[m] = mine > 0 ? 0.5 * mine + 0.5 * s : s;
    if (t->est[0] > 0 && t->est[1] > 0) {
        if (t->choice == 0 && t->est[1] < TRIAL_TO_ALONE * t->est[0]) t->choice = 1;
        else if (t->choice == 1 && t->est[0] < TRIAL_TO_TEAM * t->est[1]) t->choice = 0;
        const double hi = t->est[0] > t->est[1] ? t->est[0] : t->est[1];
        const double lo = t->est[0] > t->est[1] ? t->est[1] : t->est[0];
        t->gap = t->choice == 1 ? TRIAL_GAP_ALONE : hi < 1.2 * lo ? TRIAL_GAP_NEAR : TRIAL_GAP_FAR;
    }
    if (t->gap == 0) t->gap = TRIAL_GAP_NEAR;
    if (++t->since_trial >= t->gap) {
        t->since_trial = 0;
        return 1 - t->choice; /* a window of the other choice */
    }
    return t->choice;
}

/* counts a region; at the end of a window, times it and picks the next one's choice */
static void trial_tick(void) {
    if (++team.regions < TRIAL_REGIONS && team.window_start > 0) return;
    const double now = ml_clock_seconds();
    if (team.window_start > 0 && !team.window_mixed)
        team.window_alone = ml_team_trial_next(&team.trial, team.window_alone,
                                               (now - team.window_start) / team.regions);
    team.window_start = now;
    team.regions = 0;
    team.window_mixed = 0;
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

int ml_team_threads(void) {
    const int n = ml_get_num_threads();
    if (n < 2) return 1;
    trial_tick();
    const bool backing_off = team.alone_until > 0 && ml_clock_seconds() < team.alone_until;
    if (backing_off && !team.window_alone) team.window_mixed = 1;
    return backing_off || team.window_alone ? 1 : n;
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
}
