/* The IDX reader (plain and gzip files written here, every way a file can be
 * wrong), the data family's gathers, and cat/stack. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "autograd.h"
#include "error.h"
#include "idx.h"
#include "ops.h"

#define TMP_DIR_PREFIX "ml_test_idx_"
#include "tmp_dir.h"

/* An IDX image: header for type/dims, then nbytes of payload. */
static size_t idx_bytes(unsigned char *out, int type, int ndim, const uint32_t *dims,
                        const void *payload, size_t nbytes) {
    size_t n = 0;
    out[n++] = 0;
    out[n++] = 0;
    out[n++] = (unsigned char)type;
    out[n++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        out[n++] = (unsigned char)(dims[i] >> 24);
        out[n++] = (unsigned char)(dims[i] >> 16);
        out[n++] = (unsigned char)(dims[i] >> 8);
        out[n++] = (unsigned char)dims[i];
    }
    memcpy(out + n, payload, nbytes);
    return n + nbytes;
}

static const char *write_file(const char *name, const unsigned char *bytes, size_t n, bool gz) {
    const char *p = in_dir(name);
    if (gz) {
        gzFile f = gzopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, bytes, (unsigned)n), (int)n);
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, n, f), n);
        fclose(f);
    }
    return p;
}

static unsigned char images12[12] = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};

static void check_images(ml_tensor *t) {
    assert_non_null(t);
    assert_int_equal(t->dtype, ML_U8);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 2);
    assert_int_equal(t->shape[2], 2);
    assert_memory_equal(ml_data(t), images12, 12);
}

static void test_reads_plain_and_gzip(void **state) {
    (void)state;
    unsigned char buf[64];
    uint32_t dims[3] = {3, 2, 2};
    size_t n = idx_bytes(buf, 0x08, 3, dims, images12, 12);
    ml_tensor *a = ml_idx_load(write_file("plain-idx3-ubyte", buf, n, false));
    check_images(a);
    /* detected by content: the name says nothing */
    ml_tensor *b = ml_idx_load(write_file("gz-idx3-ubyte", buf, n, true));
    check_images(b);
    ml_tensor *c = ml_idx_load(write_file("named-idx3-ubyte.gz", buf, n, true));
    check_images(c);
    ml_tensor_release(a);
    ml_tensor_release(b);
    ml_tensor_release(c);
}

static void test_reads_wider_types(void **state) {
    (void)state;
    unsigned char buf[64];
    uint32_t dims[1] = {3};
    unsigned char i16[6] = {0xff, 0xfe, 0x00, 0x07, 0x80, 0x00}; /* -2, 7, -32768 */
    ml_tensor *a = ml_idx_load(write_file("i16", buf, idx_bytes(buf, 0x0B, 1, dims, i16, 6), false));
    assert_non_null(a);
    assert_int_equal(a->dtype, ML_I64);
    const int64_t *p = ml_data(a);
    assert_int_equal(p[0], -2);
    assert_int_equal(p[1], 7);
    assert_int_equal(p[2], -32768);
    unsigned char f32[12] = {0x3f, 0x80, 0, 0, 0xc0, 0x20, 0, 0, 0x3e, 0x80, 0, 0}; /* 1, -2.5, 0.25 */
    ml_tensor *b = ml_idx_load(write_file("f32", buf, idx_bytes(buf, 0x0D, 1, dims, f32, 12), true));
    assert_non_null(b);
    assert_int_equal(b->dtype, ML_F32);
    const float *q = ml_data(b);
    assert_float_equal(q[0], 1.0f, 0);
    assert_float_equal(q[1], -2.5f, 0);
    assert_float_equal(q[2], 0.25f, 0);
    unsigned char i32[12] = {0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff};
    ml_tensor *c = ml_idx_load(write_file("i32", buf, idx_bytes(buf, 0x0C, 1, dims, i32, 12), false));
    assert_non_null(c);
    p = ml_data(c);
    assert_int_equal(p[0], -1);
    assert_int_equal(p[1], 65536);
    assert_int_equal(p[2], 2147483647);
    ml_tensor_release(a);
    ml_tensor_release(b);
    ml_tensor_release(c);
}

static void expect_error(const char *path, const char *want) {
    ml_error_clear();
    assert_null(ml_idx_load(path));
    char full[512];
    snprintf(full, sizeof full, want, path);
    assert_string_equal(ml_error(), full);
}

static void test_rejects_bad_files(void **state) {
    (void)state;
    unsigned char buf[64];
    uint32_t dims[3] = {3, 2, 2};
    size_t n = idx_bytes(buf, 0x08, 3, dims, images12, 12);
    /* truncated: 28 bytes expected, 20 there */
    expect_error(write_file("short-idx3-ubyte", buf, 20, false),
                 "read_idx: %s: 28 bytes expected for 3x2x2, found 20");
    expect_error(write_file("short-gz", buf, 20, true),
                 "read_idx: %s: 28 bytes expected for 3x2x2, found 20 (decompressed)");
    /* trailing bytes are as wrong as missing ones */
    unsigned char longer[64];
    memcpy(longer, buf, n);
    longer[n] = 9;
    expect_error(write_file("long", longer, n + 1, false),
                 "read_idx: %s: 28 bytes expected for 3x2x2, found 29");
    /* header cut in the dims */
    expect_error(write_file("cut-header", buf, 9, false),
                 "read_idx: %s: truncated header: 16 bytes expected for 3 dims, found 9");
    expect_error(write_file("tiny", buf, 2, false),
                 "read_idx: %s: truncated: 2 bytes, too short for an IDX header (4 bytes at least)");
    /* wrong magic */
    unsigned char bad[64];
    memcpy(bad, buf, n);
    bad[0] = 'P';
    bad[1] = 'K';
    expect_error(write_file("magic", bad, n, false),
                 "read_idx: %s: not an IDX file: magic 50 4b 08 03, expected two zero bytes, a type "
                 "byte and a dim count (00 00 08 03 for images)");
    memcpy(bad, buf, n);
    bad[2] = 0x0A;
    expect_error(write_file("type", bad, n, false),
                 "read_idx: %s: unknown IDX element type 0x0a (expected 0x08 uint8, 0x09 int8, "
                 "0x0B int16, 0x0C int32, 0x0D float32 or 0x0E float64)");
    memcpy(bad, buf, n);
    bad[3] = 0;
    expect_error(write_file("nodims", bad, n, false),
                 "read_idx: %s: IDX header says 0 dims, expected 1 to 8");
    /* a corrupt gzip stream */
    const char *gz = write_file("corrupt.gz", buf, n, true);
    FILE *f = fopen(gz, "r+b");
    fseek(f, 12, SEEK_SET);
    fputs("garbage garbage", f);
    fclose(f);
    ml_error_clear();
    assert_null(ml_idx_load(gz));
    assert_non_null(strstr(ml_error(), "corrupt gzip data"));
    /* missing */
    const char *missing = in_dir("absent-idx3-ubyte");
    expect_error(missing, "read_idx: %s: cannot open: No such file or directory");
}

static void test_pair_checks_counts(void **state) {
    (void)state;
    unsigned char buf[64], lbuf[64];
    uint32_t dims[3] = {3, 2, 2}, ldims[1] = {2};
    unsigned char labels[3] = {5, 0, 4};
    const char *img = write_file("pair-images", buf, idx_bytes(buf, 0x08, 3, dims, images12, 12), false);
    const char *lab = write_file("pair-labels", lbuf, idx_bytes(lbuf, 0x08, 1, ldims, labels, 2), true);
    ml_tensor *x, *y;
    assert_int_equal(ml_idx_load_pair(img, lab, &x, &y), -1);
    assert_null(x);
    char want[512];
    snprintf(want, sizeof want, "read_idx: %s has 3 images but %s has 2 labels", img, lab);
    assert_string_equal(ml_error(), want);
    ldims[0] = 3;
    lab = write_file("pair-labels3", lbuf, idx_bytes(lbuf, 0x08, 1, ldims, labels, 3), false);
    assert_int_equal(ml_idx_load_pair(img, lab, &x, &y), 0);
    check_images(x);
    assert_int_equal(y->shape[0], 3);
    assert_int_equal(((uint8_t *)ml_data(y))[2], 4);
    /* images and labels the wrong way round */
    ml_tensor *x2, *y2;
    assert_int_equal(ml_idx_load_pair(lab, img, &x2, &y2), -1);
    assert_non_null(strstr(ml_error(), "images expected as uint8 [N, H, W], found uint8 [3]"));
    ml_tensor_release(x);
    ml_tensor_release(y);
}

static ml_tensor *long_tensor(int n, const int64_t *v) {
    int64_t shape[1] = {n};
    ml_tensor *t = ml_tensor_empty(ML_I64, ML_CPU, 1, shape);
    memcpy(ml_data(t), v, sizeof(int64_t) * (size_t)n);
    return t;
}

static void test_gather_scaled_is_to_tensor(void **state) {
    (void)state;
    /* every byte value, as 4 rows of 64 */
    int64_t shape[3] = {4, 8, 8};
    ml_tensor *src = ml_tensor_empty(ML_U8, ML_CPU, 3, shape);
    for (int v = 0; v < 256; v++) ((uint8_t *)ml_data(src))[v] = (uint8_t)v;
    int64_t order[4] = {3, 0, 2, 1};
    ml_tensor *idx = long_tensor(4, order);
    ml_tensor *out = ml_gather_scaled(src, idx, 1.0 / 255, 0, ML_F32, true, NULL);
    assert_non_null(out);
    assert_int_equal(out->ndim, 4);
    assert_int_equal(out->shape[0], 4);
    assert_int_equal(out->shape[1], 1);
    assert_int_equal(out->shape[2], 8);
    const float *p = ml_data(out);
    for (int b = 0; b < 4; b++)
        for (int j = 0; j < 64; j++) {
            float want = (float)(order[b] * 64 + j) / 255.0f; /* torchvision's x.float() / 255 */
            assert_true(p[b * 64 + j] == want);
        }
    ml_tensor_release(out);
    /* Normalize folded in: (v / 255 - m) / s, computed in double, rounded once */
    double m = 0.1307, s = 0.3081;
    out = ml_gather_scaled(src, idx, 1.0 / (255 * s), -m / s, ML_F32, false, NULL);
    assert_int_equal(out->ndim, 3);
    p = ml_data(out);
    for (int b = 0; b < 4; b++)
        for (int j = 0; j < 64; j++) {
            double want = ((order[b] * 64 + j) / 255.0 - m) / s;
            assert_true(fabs(p[b * 64 + j] - want) <= 2.4e-7 * fmax(1, fabs(want)));
        }
    ml_tensor_release(out);
    out = ml_gather_scaled(src, idx, 2, 1, ML_F64, false, NULL);
    assert_true(((double *)ml_data(out))[64 * 1 + 5] == 2 * 5 + 1 && ((double *)ml_data(out))[64 * 3 + 5] == 2 * 69 + 1);
    ml_tensor_release(out);
    int64_t badv[2] = {1, 4};
    ml_tensor *bad = long_tensor(2, badv);
    assert_null(ml_gather_scaled(src, bad, 1, 0, ML_F32, true, NULL));
    assert_string_equal(ml_error(), "gather_scaled: index 4 is out of range for 4 rows (indices are 0-based)");
    assert_null(ml_gather_scaled(idx, idx, 1, 0, ML_F32, true, NULL));
    assert_string_equal(ml_error(), "gather_scaled: source must be uint8, got int64");
    /* the next batch's indices (a prefetch hint) change nothing in the result, and
     * are checked as the indices are */
    int64_t nextv[3] = {2, 2, 0};
    ml_tensor *next = long_tensor(3, nextv);
    out = ml_gather_scaled(src, idx, 1.0 / 255, 0, ML_F32, true, next);
    assert_non_null(out);
    p = ml_data(out);
    for (int b = 0; b < 4; b++)
        for (int j = 0; j < 64; j++) assert_true(p[b * 64 + j] == (float)(order[b] * 64 + j) / 255.0f);
    ml_tensor_release(out);
    assert_null(ml_gather_scaled(src, idx, 1, 0, ML_F32, true, bad));
    assert_string_equal(ml_error(), "gather_scaled: index 4 is out of range for 4 rows (indices are 0-based)");
    ml_tensor_release(next);
    ml_tensor_release(bad);
    ml_tensor_release(idx);
    ml_tensor_release(src);
}

static void test_gather_labels_and_one_hot(void **state) {
    (void)state;
    int64_t shape[1] = {5};
    ml_tensor *labels = ml_tensor_empty(ML_U8, ML_CPU, 1, shape);
    uint8_t lv[5] = {5, 0, 4, 1, 9};
    memcpy(ml_data(labels), lv, 5);
    int64_t order[3] = {4, 0, 2};
    ml_tensor *idx = long_tensor(3, order);
    ml_tensor *y = ml_gather_labels(labels, idx);
    assert_int_equal(y->dtype, ML_I64);
    assert_int_equal(((int64_t *)ml_data(y))[0], 9);
    assert_int_equal(((int64_t *)ml_data(y))[1], 5);
    assert_int_equal(((int64_t *)ml_data(y))[2], 4);
    ml_tensor *oh = ml_gather_one_hot(labels, idx, 10, ML_F32);
    assert_int_equal(oh->shape[0], 3);
    assert_int_equal(oh->shape[1], 10);
    const float *p = ml_data(oh);
    for (int b = 0; b < 3; b++)
        for (int c = 0; c < 10; c++) assert_float_equal(p[b * 10 + c], c == lv[order[b]], 0);
    /* the int64 labels give the same */
    ml_tensor *oh2 = ml_gather_one_hot(y, idx, 10, ML_F32);
    assert_null(oh2); /* idx 4 is out of range for y's 3 rows */
    assert_string_equal(ml_error(), "one_hot: index 4 is out of range for 3 rows (indices are 0-based)");
    assert_null(ml_gather_one_hot(labels, idx, 6, ML_F32));
    assert_string_equal(ml_error(), "one_hot: class id 9 is out of range for 6 classes (ids are 0-based, 0 to 5)");
    ml_tensor *rows = ml_gather_rows(labels, idx);
    assert_int_equal(rows->dtype, ML_U8);
    assert_int_equal(((uint8_t *)ml_data(rows))[0], 9);
    ml_tensor_release(rows);
    ml_tensor_release(oh);
    ml_tensor_release(y);
    ml_tensor_release(idx);
    ml_tensor_release(labels);
}

static void test_cat_and_stack(void **state) {
    (void)state;
    int64_t s23[2] = {2, 3}, s13[2] = {1, 3};
    ml_tensor *a = ml_arange(0, 6, 1, ML_F32, ML_CPU), *a2 = ml_view(a, 2, s23);
    ml_tensor *b = ml_full(ML_F32, ML_CPU, 2, s13, 7);
    a2->requires_grad = true;
    b->requires_grad = true;
    ml_tensor *ts[2] = {a2, b};
    ml_tensor *c = ml_cat(2, ts, 0);
    assert_non_null(c);
    assert_int_equal(c->shape[0], 3);
    assert_int_equal(c->shape[1], 3);
    const float *p = ml_data(c);
    float want[9] = {0, 1, 2, 3, 4, 5, 7, 7, 7};
    for (int i = 0; i < 9; i++) assert_float_equal(p[i], want[i], 0);
    /* gradient: each input gets its slice of the output's */
    int64_t s33[2] = {3, 3};
    ml_tensor *w = ml_arange(1, 10, 1, ML_F32, ML_CPU), *w2 = ml_view(w, 2, s33);
    assert_int_equal(ml_backward(c, w2), 0);
    float ga[6] = {1, 2, 3, 4, 5, 6}, gb[3] = {7, 8, 9};
    for (int i = 0; i < 6; i++) assert_float_equal(((float *)ml_data(a2->grad))[i], ga[i], 0);
    for (int i = 0; i < 3; i++) assert_float_equal(((float *)ml_data(b->grad))[i], gb[i], 0);
    ml_tensor_release(w2);
    ml_tensor_release(w);
    ml_tensor_release(c);
    /* stack needs equal shapes */
    assert_null(ml_stack(2, ts, 0));
    assert_string_equal(ml_error(), "stack: expects each tensor to be equal size, but got [2, 3] at "
                                    "entry 1 and [1, 3] at entry 2");
    ml_tensor *ss[2] = {b, b};
    ml_tensor *st = ml_stack(2, ss, 1);
    assert_int_equal(st->ndim, 3);
    assert_int_equal(st->shape[0], 1);
    assert_int_equal(st->shape[1], 2);
    assert_int_equal(st->shape[2], 3);
    ml_tensor_release(st);
    ml_tensor_release(a2);
    ml_tensor_release(a);
    ml_tensor_release(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_plain_and_gzip),
        cmocka_unit_test(test_reads_wider_types),
        cmocka_unit_test(test_rejects_bad_files),
        cmocka_unit_test(test_pair_checks_counts),
        cmocka_unit_test(test_gather_scaled_is_to_tensor),
        cmocka_unit_test(test_gather_labels_and_one_hot),
        cmocka_unit_test(test_cat_and_stack),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
