/* CPU kernels of the losses over a class dim (nll_loss, cross_entropy with class
 * ids or probabilities): the portable reference, for any float dtype and any
 * layout [n, c, inner], one pass per row (max, exps summed in double, logsumexp,
 * the loss term in double, and with a grad_cache the row's gradient while the row
 * is in cache). The float32 fast paths (loss_class_small.c, loss_class_avx512.c)
 * must match it. Also the class kinds' shared helpers: their summed blocks, the
 * mean's divisor, the bad-id error. */
#include <math.h>
#include <string.h>

#include "../error.h"
#include "loss_cpu.h"
#include "vmath.h"

int64_t ml_cpu_class_block_rows(int64_t c) {
    const int64_t r = ML_SUM_BLOCK / (c > 0 ? c : 1);
    const int64_t r16 = (r + ML_CE_LANES - 1) / ML_CE_LANES * ML_CE_LANES;
    return r16 > ML_CE_LANES ? r16 : ML_CE_LANES;
}

int64_t ml_cpu_class_min_parallel(int64_t c) {
    const int64_t r = ML_PAR_MIN / (c > 0 ? c : 1);
    return r > 1 ? r : 1;
}

int ml_cpu_class_norm(ml_loss_args *a) {
    const int64_t rows = a->p.cls.n * a->p.cls.inner, C = a->p.cls.c, ign = a->p.cls.ignore_index;
    const int64_t *TI = (const int64_t *)ml_data(a->target);
    int bad = 0;
    if (!a->weight) {
        /* a count: exact in any order, so the loop may vectorise (bitwise, no
         * branches) */
        int64_t cnt = 0;
        for (int64_t r = 0; r < rows; r++) {
            const int64_t t = TI[r];
            const int counted = t != ign;
            cnt += counted;
            bad |= counted & ((t < 0) | (t >= C));
        }
        a->p.norm = (double)cnt;
        return bad ? -1 : 0;
    }
    double wsum = 0;
    if (a->weight->dtype == ML_F32) {
        const float *W = (const float *)ml_data(a->weight);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t t = TI[r];
            if (t == ign) continue;
            if (t < 0 || t >= C) bad = 1;
            else wsum += (double)W[t];
        }
    } else {
        const double *W = (const double *)ml_data(a->weight);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t t = TI[r];
            if (t == ign) continue;
            if (t < 0 || t >= C) bad = 1;
            else wsum += W[t];
        }
    }
    a->p.norm = wsum;
    return bad ? -1 : 0;
}

int ml_cpu_bad_class_id(const ml_loss_args *a) {
    const int64_t *TI = (const int64_t *)ml_data(a->target), rows = a->p.cls.n * a->p.cls.inner;
    const int64_t C = a->p.cls.c, ign = a->p.cls.ignore_index;
    int64_t id = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (TI[r] != ign && (TI[r] < 0 || TI[r] >= C)) {
            id = TI[r];
            break;
        }
    }
    return ml_error_set("%s: target class id %lld is out of range: expected 0 <= id < %lld "
                        "(the number of classes) or ignore_index (%lld)",
                        ml_loss_name(a->p.kind), (long long)id, (long long)C, (long long)ign);
}

#define T float
#define ML_LOSS_SUF f
#define CL_EXP ml_expf_clamped
/* float rows shorter than a vector: 8 lanes (at 16 the loops ran scalar) */
#define CL_SIMD_SHORT "omp simd simdlen(8)"
#define CL_SIMD_SHORT_SUM "omp simd reduction(+:s) simdlen(8)"
#include "loss_class_t.h"
#undef T
#undef ML_LOSS_SUF
#undef CL_EXP
#undef CL_SIMD_SHORT
#undef CL_SIMD_SHORT_SUM

#define T double
#define ML_LOSS_SUF d
#define CL_EXP exp
#define CL_SIMD_SHORT "omp simd"
#define CL_SIMD_SHORT_SUM "omp simd reduction(+:s)"
#include "loss_class_t.h"
#undef T
#undef ML_LOSS_SUF
#undef CL_EXP
#undef CL_SIMD_SHORT
#undef CL_SIMD_SHORT_SUM
