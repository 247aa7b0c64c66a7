/* Creation ops and the random generator. */
#ifndef ML_OPS_CREATION_H
#define ML_OPS_CREATION_H

#include "../tensor.h"

ml_tensor *ml_full(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape, double v);
/* The same for an integer value, exact in an int64 tensor (a double holds only 53
 * bits: 2^53 + 1 became 2^53); uint8 keeps its low byte (callers check the
 * range); float dtypes get the nearest value, as ml_full. */
ml_tensor *ml_full_int(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape, int64_t v);
ml_tensor *ml_zeros(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape);
ml_tensor *ml_full_like(const ml_tensor *t, double v);
ml_tensor *ml_zeros_like(const ml_tensor *t);
ml_tensor *ml_eye(ml_dtype dt, ml_device dev, int64_t n, int64_t m);
/* start, start + step, ... < end (> end for a negative step) */
ml_tensor *ml_arange(double start, double end, double step, ml_dtype dt, ml_device dev);
/* Uniform [lo, hi) and normal(mean, std), drawn on the host from the thread's
 * generator so that a seeded run is bit-identical on every device. */
ml_tensor *ml_rand(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape, double lo,
                   double hi);
ml_tensor *ml_randn(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape, double mean,
                    double std);
/* A random permutation of 0 .. n-1 (int64), as torch.randperm. */
ml_tensor *ml_randperm(int64_t n);

/* The generator: xoshiro256** seeded through splitmix64, one per thread (the
 * default), or any number of them owned by the caller (ml.Generator). */
typedef struct ml_generator {
    uint64_t s[4];
    uint64_t seed;
} ml_generator;
/* ml_rand, ml_randn and ml_randperm drawing from g (not NULL) instead of the
 * thread's default generator, as torch's generator= argument. */
ml_tensor *ml_rand_from(ml_generator *g, ml_dtype dt, ml_device dev, int ndim,
                        const int64_t *shape, double lo, double hi);
ml_tensor *ml_randn_from(ml_generator *g, ml_dtype dt, ml_device dev, int ndim,
                         const int64_t *shape, double mean, double std);
ml_tensor *ml_randperm_from(ml_generator *g, int64_t n);
ml_generator *ml_default_generator(void);
void ml_generator_seed(ml_generator *g, uint64_t seed);
uint64_t ml_generator_next(ml_generator *g);
/* uniform in [0, 1) with 53 random bits */
double ml_generator_uniform(ml_generator *g);
double ml_generator_normal(ml_generator *g);
void ml_manual_seed(uint64_t seed);

#endif
