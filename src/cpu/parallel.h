/* The CPU backend's one way to run a loop on several threads, and the one header of
 * the thresholds that decide when that pays.
 *
 * Every parallel loop of src/cpu/ goes through ml_parallel_for (work whose result
 * does not depend on how it is split: elementwise maps, row-wise kernels) or
 * ml_parallel_blocks (work cut into blocks fixed by the size alone: sums, gemm
 * slices). The team comes from ml_team_threads() (src/threads.h: one thread while
 * the machine's other cores are taken, or while one thread has been faster), and
 * each region reports how long the calling thread waited for it. OpenMP appears
 * in src/cpu/parallel.c only.
 *
 * Deterministic arithmetic: threads decide only *who* computes a range or a
 * block, never the order of any addition. A sum is computed block by block, each
 * block's partial in its own slot, and the slots are added in block order by the
 * caller (ml_sum_slots), so a seeded run gives the same bits on 1 thread, on 2,
 * and on 2 while another process takes a core. */
#ifndef ML_CPU_PARALLEL_H
#define ML_CPU_PARALLEL_H

#include <stdint.h>

/* --- thresholds (elements unless named otherwise) --------------------------- */

/* Below this many elements an elementwise or row-wise loop runs on the calling
 * thread: a fork/join costs a few microseconds, more than the work it would share. */
#define ML_PAR_MIN 32768
/* Batch gathers from a dataset: bound by cache misses of random rows, they pay
 * from twice that (two cores have twice the misses in flight). */
#define ML_PAR_MIN_GATHER 65536
/* Row copies (gather_rows) pay from this many bytes. */
#define ML_PAR_MIN_COPY_BYTES (4 * 65536)
/* Fixed block of a summed reduction: partial sums of this many elements, added in
 * block order. Large enough that a block's loop runs at full vector speed. */
#define ML_SUM_BLOCK 16384
/* A product below this many flops stays one call on one thread. */
#define ML_GEMM_PAR_MIN_FLOPS 4e6
/* At most this many slices of one product (each a call of its own). */
#define ML_GEMM_MAX_SLICES 64
/* Ranges handed to threads begin on multiples of this many elements, so no two
 * threads write one 64-byte cache line of a float32 output. */
#define ML_PAR_ALIGN 16

/* --- loops ------------------------------------------------------------------ */

/* fn(ctx, begin, end) over [0, n), in one call on the calling thread when n <
 * min_parallel (or already inside a parallel region, or the team is one thread),
 * else in one contiguous range per thread, each beginning on a multiple of
 * ML_PAR_ALIGN. fn must compute the same values whatever the ranges. */
typedef void (*ml_range_fn)(void *ctx, int64_t begin, int64_t end);
void ml_parallel_for(int64_t n, int64_t min_parallel, ml_range_fn fn, void *ctx);

/* fn(ctx, blk, begin, end) once for each block blk of [0, n) cut into blocks of
 * `block` elements (the last may be shorter): ml_nblocks(n, block) calls, on the
 * calling thread when n < min_parallel, else spread over the team in contiguous
 * runs of blocks. The cut depends on n and block only, never on the team. */
typedef void (*ml_block_fn)(void *ctx, int64_t blk, int64_t begin, int64_t end);
void ml_parallel_blocks(int64_t n, int64_t block, int64_t min_parallel, ml_block_fn fn,
                        void *ctx);

static inline int64_t ml_nblocks(int64_t n, int64_t block) {
    return n <= 0 ? 0 : (n + block - 1) / block;
}

/* The slots' values added in slot order (the fixed combine of block sums). */
double ml_sum_slots(const double *slot, int64_t n);

#endif
