/* Creation ops and the random generator (xoshiro256**, seeded by splitmix64). */
#include "creation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../error.h"
#include "elementwise.h"

ml_tensor *ml_full(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape, double v) {
    ml_tensor *t = ml_tensor_empty(dt, dev, ndim, shape);
    if (t && ml_fill_(t, v)) {
        ml_tensor_release(t);
        return NULL;
    }
    return t;
}

ml_tensor *ml_zeros(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape) {
    return ml_full(dt, dev, ndim, shape, 0.0);
}

ml_tensor *ml_full_like(const ml_tensor *t, double v) {
    return ml_full(t->dtype, t->storage->device, t->ndim, t->shape, v);
}

ml_tensor *ml_zeros_like(const ml_tensor *t) { return ml_full_like(t, 0.0); }

/* Fills a host tensor, then moves it to dev (creation is not hot). */
static ml_tensor *on_device(ml_tensor *host, ml_device dev) {
    if (!host || dev == ML_CPU) return host;
    ml_tensor *d = ml_to_device(host, dev);
    ml_tensor_release(host);
    return d;
}

#define FILL_HOST(t, expr)                                                            \
    do {                                                                              \
        int64_t n_ = ml_numel(t);                                                     \
        switch ((t)->dtype) {                                                         \
        case ML_F32: for (int64_t i = 0; i < n_; i++) ((float *)ml_data(t))[i] = (float)(expr); break; \
        case ML_F64: for (int64_t i = 0; i < n_; i++) ((double *)ml_data(t))[i] = (expr); break; \
        case ML_I64: for (int64_t i = 0; i < n_; i++) ((int64_t *)ml_data(t))[i] = (int64_t)(expr); break; \
        case ML_U8: for (int64_t i = 0; i < n_; i++) ((uint8_t *)ml_data(t))[i] = (uint8_t)(expr); break; \
        default: break;                                                               \
        }                                                                             \
    } while (0)

ml_tensor *ml_full_int(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape, int64_t v) {
    /* within 2^53 a double is exact: the backend's fill serves */
    if (ml_dtype_is_float(dt) || (v >= -(INT64_C(1) << 53) && v <= (INT64_C(1) << 53)))
        return ml_full(dt, dev, ndim, shape, (double)v);
    ml_tensor *t = ml_tensor_empty(dt, ML_CPU, ndim, shape);
    if (!t) return NULL;
    FILL_HOST(t, v);
    return on_device(t, dev);
}

ml_tensor *ml_eye(ml_dtype dt, ml_device dev, int64_t n, int64_t m) {
    if (n < 0 || m < 0) return ml_error_set("eye: negative size %lld x %lld", (long long)n, (long long)m), NULL;
    int64_t shape[2] = {n, m};
    ml_tensor *t = ml_tensor_empty(dt, ML_CPU, 2, shape);
    if (!t) return NULL;
    FILL_HOST(t, (i / m == i % m) ? 1 : 0);
    return on_device(t, dev);
}

ml_tensor *ml_arange(double start, double end, double step, ml_dtype dt, ml_device dev) {
    if (step == 0) return ml_error_set("arange: step must be nonzero"), NULL;
    if ((step > 0 && end < start) || (step < 0 && end > start))
        return ml_error_set("arange: upper bound %g and lower bound %g inconsistent with step "
                            "sign %g", end, start, step), NULL;
    /* the count as a double first: converting NaN or 1e30 to int64 is undefined */
    double count = ceil((end - start) / step);
    if (!(count >= 0 && count < 9223372036854775808.0))
        return ml_error_set("arange: start %g, end %g and step %g do not give a countable number "
                            "of elements", start, end, step), NULL;
    int64_t n = (int64_t)count;
    ml_tensor *t = ml_tensor_empty(dt, ML_CPU, 1, &n);
    if (!t) return NULL;
    FILL_HOST(t, start + (double)i * step);
    return on_device(t, dev);
}

/* --- the generator --- */

static _Thread_local ml_generator default_gen;
static _Thread_local bool default_gen_ready;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ml_generator_seed(ml_generator *g, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) g->s[i] = splitmix64(&x);
    g->seed = seed;
}

ml_generator *ml_default_generator(void) {
    if (!default_gen_ready) {
        /* torch's default seed is fixed too (67280421310721): runs are repeatable */
        ml_generator_seed(&default_gen, 67280421310721ULL);
        default_gen_ready = true;
    }
    return &default_gen;
}

void ml_manual_seed(uint64_t seed) {
    ml_generator_seed(ml_default_generator(), seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ml_generator_next(ml_generator *g) {
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ml_generator_uniform(ml_generator *g) {
    return (double)(ml_generator_next(g) >> 11) * 0x1.0p-53;
}

double ml_generator_normal(ml_generator *g) {
    /* Box-Muller; the second value is dropped so each draw costs the same */
    double u1 = ml_generator_uniform(g), u2 = ml_generator_uniform(g);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

ml_tensor *ml_rand(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape, double lo,
                   double hi) {
    return ml_rand_from(ml_default_generator(), dt, dev, ndim, shape, lo, hi);
}

ml_tensor *ml_randn(ml_dtype dt, ml_device dev, int ndim, const int64_t *shape, double mean,
                    double std) {
    return ml_randn_from(ml_default_generator(), dt, dev, ndim, shape, mean, std);
}

ml_tensor *ml_randperm(int64_t n) { return ml_randperm_from(ml_default_generator(), n); }

ml_tensor *ml_rand_from(ml_generator *g, ml_dtype dt, ml_device dev, int ndim,
                        const int64_t *shape, double lo, double hi) {
    if (!ml_dtype_is_float(dt))
        return ml_error_set("rand: dtype must be float32 or float64, got %s", ml_dtype_name(dt)), NULL;
    ml_tensor *t = ml_tensor_empty(dt, ML_CPU, ndim, shape);
    if (!t) return NULL;
    FILL_HOST(t, lo + (hi - lo) * ml_generator_uniform(g));
    return on_device(t, dev);
}

ml_tensor *ml_randn_from(ml_generator *g, ml_dtype dt, ml_device dev, int ndim,
                         const int64_t *shape, double mean, double std) {
    if (!ml_dtype_is_float(dt))
        return ml_error_set("randn: dtype must be float32 or float64, got %s", ml_dtype_name(dt)), NULL;
    ml_tensor *t = ml_tensor_empty(dt, ML_CPU, ndim, shape);
    if (!t) return NULL;
    FILL_HOST(t, mean + std * ml_generator_normal(g));
    return on_device(t, dev);
}

ml_tensor *ml_randperm_from(ml_generator *g, int64_t n) {
    if (n < 0) return ml_error_set("randperm: negative n %lld", (long long)n), NULL;
    ml_tensor *t = ml_tensor_empty(ML_I64, ML_CPU, 1, &n);
    if (!t) return NULL;
    int64_t *p = (int64_t *)ml_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = i;
    /* Fisher-Yates with an unbiased bounded draw (Lemire's method) */
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t bound = (uint64_t)i + 1;
        __uint128_t m = (__uint128_t)ml_generator_next(g) * bound;
        uint64_t low = (uint64_t)m;
        if (low < bound) {
            uint64_t threshold = -bound % bound;
            while (low < threshold) {
                m = (__uint128_t)ml_generator_next(g) * bound;
                low = (uint64_t)m;
            }
        }
        int64_t j = (int64_t)(m >> 64);
        int64_t tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return t;
}
