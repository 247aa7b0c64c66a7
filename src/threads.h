#ifndef ML_THREADS_H
#define ML_THREADS_H
/* The CPU backend's thread count, the process's (torch.set_num_threads /
 * get_num_threads): OpenMP's count (OMP_NUM_THREADS, else the cores) until set. */
int ml_get_num_threads(void);
int ml_set_num_threads(int n);

/* Around every OpenBLAS call: the calling thread's OpenMP count set to 1 (returns
 * the one it had), so OpenBLAS runs on this thread alone, then restored. OpenBLAS
 * splits a product by its thread count, and its sums with it: called alone, a
 * product's bits depend on its shape only (parallel.h). */
int ml_blas_enter(void);
void ml_blas_leave(int saved);

/* The team for a parallel region of the CPU backend, and what it showed.
 *
 * On a machine whose cores another process also wants, a region of two threads
 * waits at its end for the thread the scheduler put aside, often for a whole
 * time slice (milliseconds for microseconds of work): the MNIST epoch went from
 * 0.15 s to 1-14 s beside a busy test run. So each region reports how long the
 * calling thread waited for the others after its own share; two regions within
 * about the last 50 that waited longer than 100 us and longer than that share
 * mean the cores are taken, and regions run on the calling thread alone for a
 * while (50 ms, doubling to 0.5 s while it lasts), then try the team again.
 *
 *   int nt = ml_team_threads();            // 1 while backing off
 *   double t0 = ml_clock_seconds(), own = 0;
 *   #pragma omp parallel num_threads(nt) { ...; if (thread 0 done) own = ml_clock_seconds() - t0; }
 *   ml_team_report(ml_clock_seconds() - t0, own);
 */
int ml_team_threads(void);

/* The team is not always the faster choice on a shared machine: in busy spells the
 * other core runs slower and every cache line that moves between cores costs
 * several times more, and the MNIST epoch took 0.20 s on two threads where one
 * thread took 0.16 (quiet: 0.12 vs 0.18). So ml_team_threads also times windows
 * of 128 regions (the calling thread's wall time over them: the regions and all
 * it did in between), runs one window in 8 (or in 32, while the two choices are
 * more than 20 % apart) with the other choice, and keeps the one whose windows
 * have been faster; the other must be 8 % faster to take over. A window with a
 * pause in it (4 times slower than both estimates) counts for neither. The
 * decision, apart from the clock, for the tests: */
typedef struct {
    double est[2];   /* seconds per region: [0] the team, [1] one thread; 0 unknown */
    int since_trial; /* windows since the last one with the other choice */
    int gap;         /* windows from one such trial to the next */
    int choice;      /* 0 the team, 1 one thread */
} ml_team_trial;
/* One window's measure fed in (ran_alone: how it ran); returns how the next runs. */
int ml_team_trial_next(ml_team_trial *t, int ran_alone, double seconds_per_region);
/* A monotonic clock in seconds (ml._sys.clock and the benchmarks' clock too). */
double ml_clock_seconds(void);
void ml_team_report(double region_seconds, double own_seconds);
#endif
