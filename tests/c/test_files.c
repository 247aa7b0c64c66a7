/* Files and sizes (issue 17: 1d, 1k): shape arithmetic checked everywhere sizes
 * multiply, sizes beyond the machine's memory refused before any allocation,
 * memory budgets, checkpoints created with the umask's mode and their stale
 * temporary files removed, and the safetensors and IDX readers rejecting what
 * does not add up before they allocate. */
#define _DEFAULT_SOURCE /* mkdtemp, flock, symlink */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "error.h"
#include "idx.h"
#include "ops.h"
#include "safetensors.h"

#define TMP_DIR_PREFIX "ml_files_"
#include "tmp_dir.h"

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void assert_error_has(const char *what) {
    if (!strstr(ml_error(), what)) fail_msg("expected '%s' in the error, got: %s", what, ml_error());
}

/* --- shapes and sizes --- */

static void test_shape_overflow_refused(void **state) {
    (void)state;
    int64_t big[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
    assert_null(ml_tensor_empty(ML_F32, ML_CPU, 2, big));
    assert_error_has("more elements than a tensor can hold");
    /* numel 0, but the strides of the other dims would overflow */
    int64_t empty[3] = {0, INT64_C(1) << 40, INT64_C(1) << 40};
    assert_null(ml_tensor_empty(ML_F32, ML_CPU, 3, empty));
    assert_error_has("more elements than a tensor can hold");
    /* a view of stride 0 may not count more elements than int64 holds either:
     * its sum or print would index past any memory */
    int64_t one[2] = {1, 1};
    ml_tensor *t = ml_full(ML_F32, ML_CPU, 2, one, 1.0);
    assert_null(ml_expand(t, 2, big));
    assert_error_has("more elements than a tensor can hold");
    int64_t neg[1] = {-3};
    assert_null(ml_tensor_empty(ML_F32, ML_CPU, 1, neg));
    assert_error_has("size -3 of dim 1 in shape [-3] is negative");
    /* view: a shape whose product overflows is an error, not UB */
    int64_t v[3] = {INT64_C(1) << 62, 4, -1};
    assert_null(ml_view(t, 3, v));
    assert_error_has("is invalid for input of size 1");
    assert_int_equal(ml_shape_numel(2, big), INT64_MAX);
    ml_tensor_release(t);
}

static void test_bytes_beyond_memory_refused_first(void **state) {
    (void)state;
    int64_t huge[1] = {INT64_C(1) << 61};
    assert_null(ml_tensor_empty(ML_F64, ML_CPU, 1, huge));
    assert_error_has("needs more than 2^63 bytes");
    /* 16 TiB: refused with the machine's size named, the allocator never asked
     * (under ASan a request this size aborts the process) */
    int64_t tib[2] = {INT64_C(1) << 22, INT64_C(1) << 20};
    assert_null(ml_tensor_empty(ML_F32, ML_CPU, 2, tib));
    assert_error_has("more than this machine's memory");
    assert_error_has("[4194304, 1048576]");
}

static void keep_host(void *data, void *ctx) {
    (void)data;
    (void)ctx;
}

static void test_budget_counts_tensor_bytes(void **state) {
    (void)state;
    ml_budget *b = ml_budget_new(1000, NULL, NULL);
    ml_budget *prev = ml_budget_swap(b);
    int64_t s200[1] = {200}, s100[1] = {100};
    ml_tensor *a = ml_tensor_empty(ML_F32, ML_CPU, 1, s200); /* 800 bytes */
    assert_non_null(a);
    assert_int_equal(ml_budget_tensor_bytes(b), 800);
    assert_null(ml_tensor_empty(ML_F32, ML_CPU, 1, s100));   /* 400 more */
    assert_error_has(ML_BUDGET_REFUSED);
    assert_error_has("of 1000 bytes");
    assert_int_equal(ml_budget_refusals(b), 1);
    *ml_budget_lua_bytes(b) = 150;                            /* the Lua heap counts too */
    int64_t s15[1] = {15};
    assert_null(ml_tensor_empty(ML_F32, ML_CPU, 1, s15));    /* 800 + 150 + 60 */
    *ml_budget_lua_bytes(b) = 0;
    ml_tensor_release(a);
    assert_int_equal(ml_budget_tensor_bytes(b), 0);
    ml_tensor *c = ml_tensor_empty(ML_F32, ML_CPU, 1, s100);
    assert_non_null(c);
    /* memory the caller wraps is its own: not counted */
    static float host[1000];
    int64_t s1000[1] = {1000};
    ml_tensor *w = ml_tensor_from_blob(host, ML_F32, ML_CPU, 1, s1000, keep_host, NULL);
    assert_non_null(w);
    ml_tensor_release(w);
    ml_budget_swap(prev);
    ml_budget_release(b);                                     /* c still holds it */
    assert_int_equal(ml_budget_tensor_bytes(b), 400);
    ml_tensor_release(c);                                     /* the last reference */
}

/* --- ml.save's files --- */

static ml_tensor *small_tensor(void) {
    int64_t s[1] = {3};
    return ml_full(ML_F32, ML_CPU, 1, s, 2.0);
}

static int save_one(const char *path) {
    ml_tensor *t = small_tensor();
    const char *names[1] = {"x"};
    int rc = ml_safetensors_save(path, 1, names, &t, 0, NULL, NULL);
    ml_tensor_release(t);
    return rc;
}

static void test_save_mode_follows_umask(void **state) {
    (void)state;
    mode_t old = umask(027);
    const char *path = in_dir("umask.safetensors");
    assert_int_equal(save_one(path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640); /* was 0600 whatever the umask */
    umask(022);
    assert_int_equal(save_one(path), 0);       /* replaced: the new file's mode */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    umask(old);
}

static void test_save_removes_stale_temporaries(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s", in_dir("ck.safetensors"));
    write_bytes(in_dir("ck.safetensors.tmp.AbC123"), "x", 1);  /* an interrupted save's */
    write_bytes(in_dir("ck.safetensors.tmp.zZ9yY8"), "x", 1);
    write_bytes(in_dir("ck.safetensors.tmp.Live00"), "x", 1);  /* a save in progress */
    write_bytes(in_dir("ck.safetensors.tmp.toolong7"), "x", 1); /* not our pattern */
    write_bytes(in_dir("ck.safetensors.tmp.ab_12!"), "x", 1);
    write_bytes(in_dir("other.safetensors.tmp.AbC123"), "x", 1); /* another path's */
    write_bytes(in_dir("outside"), "keep", 4);
    assert_int_equal(symlink(in_dir("outside"), in_dir("ck.safetensors.tmp.Sym123")), 0);
    int live = open(in_dir("ck.safetensors.tmp.Live00"), O_RDONLY);
    assert_true(live >= 0);
    assert_int_equal(flock(live, LOCK_EX), 0);

    assert_int_equal(save_one(path), 0);
    assert_int_equal(access(in_dir("ck.safetensors.tmp.AbC123"), F_OK), -1);
    assert_int_equal(access(in_dir("ck.safetensors.tmp.zZ9yY8"), F_OK), -1);
    assert_int_equal(access(in_dir("ck.safetensors.tmp.Live00"), F_OK), 0);
    assert_int_equal(access(in_dir("ck.safetensors.tmp.toolong7"), F_OK), 0);
    assert_int_equal(access(in_dir("ck.safetensors.tmp.ab_12!"), F_OK), 0);
    assert_int_equal(access(in_dir("other.safetensors.tmp.AbC123"), F_OK), 0);
    struct stat st;
    assert_int_equal(lstat(in_dir("ck.safetensors.tmp.Sym123"), &st), 0); /* a symlink: not ours */
    assert_int_equal(access(in_dir("outside"), F_OK), 0);
    close(live); /* the writer died: the next save removes its file */
    assert_int_equal(save_one(path), 0);
    assert_int_equal(access(in_dir("ck.safetensors.tmp.Live00"), F_OK), -1);
    ml_safetensors *back = ml_safetensors_load(path);
    assert_non_null(back);
    assert_int_equal(back->n, 1);
    ml_safetensors_free(back);
}

/* --- the safetensors reader --- */

/* A file of an 8-byte length, header (padded with spaces to pad_to bytes when
 * larger) and ndata data bytes; loads it and returns the loader's result. */
static ml_safetensors *load_crafted(const char *header, size_t ndata) {
    size_t h = strlen(header);
    unsigned char *buf = calloc(1, 8 + h + ndata + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    const char *path = in_dir("crafted.safetensors");
    write_bytes(path, buf, 8 + h + ndata);
    free(buf);
    return ml_safetensors_load(path);
}

static void rejects(const char *header, size_t ndata, const char *why) {
    ml_safetensors *st = load_crafted(header, ndata);
    if (st) {
        ml_safetensors_free(st);
        fail_msg("accepted %s (%zu data bytes), expected '%s'", header, ndata, why);
    }
    assert_error_has(why);
}

static void test_safetensors_rejects_what_the_reference_rejects(void **state) {
    (void)state;
    /* the crash: [2^31, 2^31] F32 wrapped to 0 bytes and loaded */
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]}}", 0,
            "byte count overflows");
    /* [2^53, 2048] loaded with numel 0 */
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,2048],\"data_offsets\":[0,0]}}", 0,
            "element count overflows");
    rejects("{\"a\":{\"dtype\":\"U8\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
            "element count overflows");
    const char *ab = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%d,%d]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%d,%d]}}";
    char h[256];
    snprintf(h, sizeof h, ab, 0, 8, 4, 12);
    rejects(h, 12, "overlaps the tensor before it");
    snprintf(h, sizeof h, ab, 0, 8, 12, 20);
    rejects(h, 20, "a gap before it");
    snprintf(h, sizeof h, ab, 4, 12, 12, 20);
    rejects(h, 20, "a gap before it");
    snprintf(h, sizeof h, ab, 0, 8, 8, 16);
    rejects(h, 20, "trailing bytes");
    rejects(h, 12, "data_offsets outside the file's 12 data bytes");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8,
            "bytes after the header's JSON object");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "names 'a' twice");
    rejects("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "__metadata__ names 'k' twice");
    rejects("{\"\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "not valid UTF-8");
    rejects("{\"\xc0\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
            "not valid UTF-8"); /* overlong */
    rejects("{\"\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
            "not valid UTF-8"); /* a surrogate */
    rejects("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "NUL");
    rejects("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, "bad shape");
    rejects("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1, "bad shape");
    rejects("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,0]}}", 1, "data_offsets outside");
    rejects("[1, 2]", 0, "not a JSON object");

    /* what the reference accepts: any header order, padding, empty tensors
     * sharing an offset, a null __metadata__, unicode names */
    ml_safetensors *st = load_crafted(
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
        "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
        "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"\xc3\xa9\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"__metadata__\":null}      \n\t", 16);
    if (!st) fail_msg("%s", ml_error());
    assert_int_equal(st->n, 5);
    assert_string_equal(st->names[0], "b"); /* header order */
    assert_int_equal(st->n_meta, 0);
    ml_safetensors_free(st);
}

/* --- the IDX reader --- */

static void be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}

static void test_idx_checks_the_size_before_allocating(void **state) {
    (void)state;
    /* 100 bytes whose header claims 60000 x 60000 x 60000 bytes (216 TB): once
     * asked of the allocator first ("out of memory allocating ..."; under ASan
     * an abort) */
    unsigned char f[100] = {0, 0, 8, 3};
    be32(f + 4, 60000), be32(f + 8, 60000), be32(f + 12, 60000);
    const char *plain = in_dir("huge-idx3-ubyte");
    write_bytes(plain, f, sizeof f);
    assert_null(ml_idx_load(plain));
    assert_error_has("216000000000016 bytes expected for 60000x60000x60000, found 100");
    /* int32 elements go through a separate buffer: the same check first */
    f[2] = 0x0C;
    write_bytes(plain, f, sizeof f);
    assert_null(ml_idx_load(plain));
    assert_error_has("bytes expected for 60000x60000x60000, found 100");

    /* compressed: bounded by deflate's best ratio */
    const char *gz = in_dir("huge-idx3-ubyte.gz");
    gzFile g = gzopen(gz, "wb");
    assert_non_null(g);
    f[2] = 8;
    assert_int_equal(gzwrite(g, f, sizeof f), (int)sizeof f);
    gzclose(g);
    assert_null(ml_idx_load(gz));
    assert_error_has("more than");
    assert_error_has("compressed bytes can hold");
    /* within the bound, a short stream is still found short */
    be32(f + 4, 10), be32(f + 8, 10), be32(f + 12, 10);
    g = gzopen(gz, "wb");
    gzwrite(g, f, sizeof f);
    gzclose(g);
    assert_null(ml_idx_load(gz));
    assert_error_has("1016 bytes expected for 10x10x10, found 100 (decompressed)");
    /* and a good one loads */
    unsigned char ok[16 + 6] = {0, 0, 8, 3};
    be32(ok + 4, 1), be32(ok + 8, 2), be32(ok + 12, 3);
    for (int i = 0; i < 6; i++) ok[16 + i] = (unsigned char)i;
    g = gzopen(gz, "wb");
    gzwrite(g, ok, sizeof ok);
    gzclose(g);
    ml_tensor *t = ml_idx_load(gz);
    if (!t) fail_msg("%s", ml_error());
    assert_int_equal(ml_numel(t), 6);
    assert_int_equal(((uint8_t *)ml_data(t))[5], 5);
    ml_tensor_release(t);
    /* not a regular file */
    assert_null(ml_idx_load(dir));
    assert_error_has("not a regular file");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_overflow_refused),
        cmocka_unit_test(test_bytes_beyond_memory_refused_first),
        cmocka_unit_test(test_budget_counts_tensor_bytes),
        cmocka_unit_test(test_save_mode_follows_umask),
        cmocka_unit_test(test_save_removes_stale_temporaries),
        cmocka_unit_test(test_safetensors_rejects_what_the_reference_rejects),
        cmocka_unit_test(test_idx_checks_the_size_before_allocating),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
