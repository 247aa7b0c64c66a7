/* How many threads the CPU backend uses: our OpenMP loops and OpenBLAS (the OpenMP
 * build shares their pool; the pthread build has its own count, set alongside). */
#include "threads.h"

#include <cblas.h>
#include <omp.h>

#include "error.h"

int ml_get_num_threads(void) { return omp_get_max_threads(); }

int ml_set_num_threads(int n) {
    if (n < 1) return ml_error_set("set_num_threads: expected a positive count, got %d", n);
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return 0;
}
