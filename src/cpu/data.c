/* CPU kernels of the data family: batch rows gathered from a dataset's storage.
 * A batch is small (128 x 784 for MNIST), so threads split it only when large. */
#include <string.h>

#include "../backend.h"
#include "../error.h"

#define PAR_MIN 32768

static int64_t row_len(const ml_tensor *t) {
    int64_t n = 1;
    for (int i = 1; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* A byte has 256 values: its result is looked up, computed once in double. */
#define GATHER_SCALED(T)                                                         \
    do {                                                                         \
        T lut[256];                                                              \
        for (int v = 0; v < 256; v++) lut[v] = (T)((double)v * scale + shift);   \
        T *op = (T *)ml_data(out);                                               \
        _Pragma("omp parallel for if (b_n * row > PAR_MIN)")                     \
        for (int64_t b = 0; b < b_n; b++) {                                      \
            const uint8_t *s = sp + idx[b] * row;                                \
            T *o = op + b * row;                                                 \
            for (int64_t j = 0; j < row; j++) o[j] = lut[s[j]];                  \
        }                                                                        \
    } while (0)

static int cpu_gather_scaled(const ml_tensor *src, const ml_tensor *indices, double scale,
                             double shift, ml_tensor *out) {
    const int64_t *idx = (const int64_t *)ml_data(indices);
    const uint8_t *sp = (const uint8_t *)ml_data(src);
    int64_t b_n = ml_numel(indices), row = row_len(src);
    if (out->dtype == ML_F32) GATHER_SCALED(float);
    else if (out->dtype == ML_F64) GATHER_SCALED(double);
    else return ml_error_set("gather_scaled: output must be float32 or float64, got %s",
                             ml_dtype_name(out->dtype));
    return 0;
}

#define ONE_HOT(L, T)                                                            \
    do {                                                                         \
        const L *lp = (const L *)ml_data(labels);                                \
        T *op = (T *)ml_data(out);                                               \
        for (int64_t b = 0; b < b_n; b++) {                                      \
            int64_t c = (int64_t)lp[idx[b]];                                     \
            if (c < 0 || c >= n_classes) {                                       \
                bad = c;                                                         \
                break;                                                           \
            }                                                                    \
            T *o = op + b * n_classes;                                           \
            for (int64_t k = 0; k < n_classes; k++) o[k] = 0;                    \
            o[c] = 1;                                                            \
        }                                                                        \
    } while (0)

static int cpu_gather_one_hot(const ml_tensor *labels, const ml_tensor *indices,
                              int64_t n_classes, ml_tensor *out) {
    const int64_t *idx = (const int64_t *)ml_data(indices);
    int64_t b_n = ml_numel(indices);
    int64_t bad = -1;
    bool u8 = labels->dtype == ML_U8;
    if (labels->dtype != ML_U8 && labels->dtype != ML_I64)
        return ml_error_set("one_hot: labels must be uint8 or int64, got %s",
                            ml_dtype_name(labels->dtype));
    if (out->dtype == ML_F32) {
        if (u8) ONE_HOT(uint8_t, float);
        else ONE_HOT(int64_t, float);
    } else if (out->dtype == ML_F64) {
        if (u8) ONE_HOT(uint8_t, double);
        else ONE_HOT(int64_t, double);
    } else if (out->dtype == ML_I64) {
        if (u8) ONE_HOT(uint8_t, int64_t);
        else ONE_HOT(int64_t, int64_t);
    } else {
        return ml_error_set("one_hot: output must be float32, float64 or int64, got %s",
                            ml_dtype_name(out->dtype));
    }
    if (bad != -1)
        return ml_error_set("one_hot: class id %lld is out of range for %lld classes (ids are "
                            "0-based, 0 to %lld)", (long long)bad, (long long)n_classes,
                            (long long)n_classes - 1);
    return 0;
}

static int cpu_gather_labels(const ml_tensor *labels, const ml_tensor *indices, ml_tensor *out) {
    const int64_t *idx = (const int64_t *)ml_data(indices);
    int64_t b_n = ml_numel(indices);
    int64_t *op = (int64_t *)ml_data(out);
    if (labels->dtype == ML_U8) {
        const uint8_t *lp = (const uint8_t *)ml_data(labels);
        for (int64_t b = 0; b < b_n; b++) op[b] = lp[idx[b]];
    } else if (labels->dtype == ML_I64) {
        const int64_t *lp = (const int64_t *)ml_data(labels);
        for (int64_t b = 0; b < b_n; b++) op[b] = lp[idx[b]];
    } else {
        return ml_error_set("gather_labels: labels must be uint8 or int64, got %s",
                            ml_dtype_name(labels->dtype));
    }
    return 0;
}

static int cpu_gather_rows(const ml_tensor *src, const ml_tensor *indices, ml_tensor *out) {
    const int64_t *idx = (const int64_t *)ml_data(indices);
    int64_t b_n = ml_numel(indices);
    size_t rb = (size_t)row_len(src) * ml_dtype_size(src->dtype);
    const char *sp = (const char *)ml_data(src);
    char *op = (char *)ml_data(out);
    _Pragma("omp parallel for if ((int64_t)rb * b_n > 4 * PAR_MIN)")
    for (int64_t b = 0; b < b_n; b++) memcpy(op + (size_t)b * rb, sp + (size_t)idx[b] * rb, rb);
    return 0;
}

const ml_data_ops ml_cpu_data = {
    .gather_scaled = cpu_gather_scaled,
    .gather_one_hot = cpu_gather_one_hot,
    .gather_labels = cpu_gather_labels,
    .gather_rows = cpu_gather_rows,
};
