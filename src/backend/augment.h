/* The augmentation kernels' per-pixel formulas (the data family's augment_crop,
 * augment_affine, augment_jitter; contract in data.h), once for every backend:
 * compiled by the C compiler (src/cpu/data.c), by nvcc and by the emulated GPU
 * (kernels/data.cu), so that both devices compute the same numbers. They follow
 * torchvision 0.14's tensor transforms (torchvision/transforms/functional_tensor.py).
 *
 * Bit equality between devices: nvcc contracts a * b + c into one fma in device
 * code, the C build (-std=c11) never does. Products that are not exact are
 * therefore written either as explicit fma() (the same correctly rounded result
 * everywhere) or through ML_AUG_MUL / ML_AUG_ADD, which are nvcc's
 * round-to-nearest intrinsics in device code (no contraction) and plain
 * operators elsewhere. */
#ifndef ML_BACKEND_AUGMENT_H
#define ML_BACKEND_AUGMENT_H

#include <math.h>
#include <stdint.h>

#ifndef ML_HOST_DEVICE
#if defined(__CUDACC__)
#define ML_HOST_DEVICE __host__ __device__
#else
#define ML_HOST_DEVICE
#endif
#endif

#if defined(__CUDA_ARCH__)
#define ML_AUG_MULF(a, b) __fmul_rn(a, b)
#define ML_AUG_ADDF(a, b) __fadd_rn(a, b)
#define ML_AUG_MULD(a, b) __dmul_rn(a, b)
#define ML_AUG_ADDD(a, b) __dadd_rn(a, b)
#else
#define ML_AUG_MULF(a, b) ((a) * (b))
#define ML_AUG_ADDF(a, b) ((a) + (b))
#define ML_AUG_MULD(a, b) ((a) * (b))
#define ML_AUG_ADDD(a, b) ((a) + (b))
#endif

/* padding modes of augment_crop (torchvision's padding_mode) */
enum { ML_AUG_PAD_CONSTANT, ML_AUG_PAD_EDGE, ML_AUG_PAD_REFLECT, ML_AUG_PAD_SYMMETRIC };

/* Position i of a line of n pixels padded by mode: the source pixel it reads, or
 * -1 for the fill value (constant). reflect mirrors about the edge pixels
 * (torch's "reflect": ... 2 1 | 0 1 2 ... n-1 | n-2 ...), symmetric about the
 * edges (... 1 0 | 0 1 ... n-1 | n-1 n-2 ...); both repeat for paddings wider
 * than the line. */
ML_HOST_DEVICE static inline int64_t ml_aug_pad_index(int64_t i, int64_t n, int mode) {
    if (i >= 0 && i < n) return i;
    switch (mode) {
    case ML_AUG_PAD_EDGE: return i < 0 ? 0 : n - 1;
    case ML_AUG_PAD_REFLECT: {
        if (n == 1) return 0;
        int64_t p = 2 * (n - 1), r = i % p;
        if (r < 0) r += p;
        return r < n ? r : p - r;
    }
    case ML_AUG_PAD_SYMMETRIC: {
        int64_t p = 2 * n, r = i % p;
        if (r < 0) r += p;
        return r < n ? r : p - 1 - r;
    }
    default: return -1;
    }
}

/* Where output pixel (x, y) of a w x h image reads under the inverse affine
 * matrix m (2 x 3, in torchvision's coordinates: origin at the image's centre,
 * pixel centres at half-integers; _get_inverse_affine_matrix), as a pixel
 * position (0 at the first pixel's centre): torchvision's affine grid and
 * grid_sample with align_corners=False reduce to this. (w * 0.5 and the
 * additions of it are exact, so only the two fma round.) */
ML_HOST_DEVICE static inline void ml_aug_affine_source(const double *m, int64_t x, int64_t y,
                                                      int64_t w, int64_t h, double *px,
                                                      double *py) {
    const double hw = (double)w * 0.5, hh = (double)h * 0.5;
    const double xc = (double)x - hw + 0.5, yc = (double)y - hh + 0.5;
    *px = fma(m[0], xc, fma(m[1], yc, m[2])) + hw - 0.5;
    *py = fma(m[3], xc, fma(m[4], yc, m[5])) + hh - 0.5;
}

/* grid_sample's "nearest": the pixel at rint(p) (ties to even), or -1 outside. */
ML_HOST_DEVICE static inline int64_t ml_aug_nearest(double p, int64_t n) {
    double r = rint(p);
    return r >= 0 && r < (double)n ? (int64_t)r : -1;
}

/* grid_sample's "bilinear" with zero padding at (px, py) of a w x h plane: the
 * pixels inside among the four around it (n of them, at idx[k], row-major, with
 * weight wt[k]) and their total weight (torchvision's mask channel). The caller
 * sums acc = fma(wt[k], pixel, acc) in k order and finishes with
 * ml_aug_bilinear_value. */
typedef struct {
    int n;
    int64_t idx[4];
    double wt[4];
    double mask;
} ml_aug_taps;

ML_HOST_DEVICE static inline void ml_aug_bilinear_taps(double px, double py, int64_t w, int64_t h,
                                                      ml_aug_taps *t) {
    const double x0 = floor(px), y0 = floor(py);
    const double fx = px - x0, fy = py - y0;
    const double wx[2] = {1.0 - fx, fx}, wy[2] = {1.0 - fy, fy};
    t->n = 0;
    t->mask = 0.0;
    for (int dy = 0; dy < 2; dy++) {
        const double yy = y0 + dy;
        if (yy < 0 || yy >= (double)h) continue;
        for (int dx = 0; dx < 2; dx++) {
            const double xx = x0 + dx;
            if (xx < 0 || xx >= (double)w) continue;
            const double wt = ML_AUG_MULD(wy[dy], wx[dx]);
            t->idx[t->n] = (int64_t)yy * w + (int64_t)xx;
            t->wt[t->n++] = wt;
            t->mask = ML_AUG_ADDD(t->mask, wt);
        }
    }
}

/* torchvision's fill after a bilinear grid_sample: the sum of the corners
 * inside times their weight, plus (1 - that weight) * fill (in double; the
 * caller rounds to the output type). */
ML_HOST_DEVICE static inline double ml_aug_bilinear_value(double acc, double mask, double fill) {
    return fma(1.0 - mask, fill, ML_AUG_MULD(acc, mask));
}

/* A value computed in double, stored to uint8 as torchvision does after
 * grid_sample (rounded half to even; clamped here, where torch would wrap). */
ML_HOST_DEVICE static inline uint8_t ml_aug_round_u8(double v) {
    double r = rint(v);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

/* torchvision's _blend(img1, img2, ratio) for one pixel: ratio * a + (1 - ratio) * b
 * clamped to [0, bound], in float for float32 and uint8 images (torch computes a
 * uint8 image's blend in float32), in double for float64; a uint8 result is
 * truncated as .to(uint8) does. r1 = ratio and r2 = 1 - ratio come rounded to the
 * type, as torch rounds its Python scalars. */
ML_HOST_DEVICE static inline float ml_aug_blend_f(float a, float b, float r1, float r2, float bound) {
    float v = ML_AUG_ADDF(ML_AUG_MULF(r1, a), ML_AUG_MULF(r2, b));
    return v < 0.0f ? 0.0f : v > bound ? bound : v;
}
ML_HOST_DEVICE static inline double ml_aug_blend_d(double a, double b, double r1, double r2) {
    double v = ML_AUG_ADDD(ML_AUG_MULD(r1, a), ML_AUG_MULD(r2, b));
    return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

#endif
