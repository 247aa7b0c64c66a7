#ifndef ML_THREADS_H
#define ML_THREADS_H
/* The CPU backend's thread count (torch.set_num_threads / get_num_threads). */
int ml_get_num_threads(void);
int ml_set_num_threads(int n);

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
/* A monotonic clock in seconds (ml._sys.clock and the benchmarks' clock too). */
double ml_clock_seconds(void);
void ml_team_report(double region_seconds, double own_seconds);
#endif
