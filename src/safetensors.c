#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* flock */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "ops.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes the host's byte order; it assumes a little-endian host"
#endif

/* The reference reader's (Rust safetensors) limit on the JSON header. */
#define MAX_HEADER_BYTES 100000000u

static const char *st_dtype(ml_dtype dt) {
    switch (dt) {
    case ML_F32: return "F32";
    case ML_F64: return "F64";
    case ML_I64: return "I64";
    default: return "U8";
    }
}

static int st_dtype_from(const char *s) {
    if (strcmp(s, "F32") == 0) return ML_F32;
    if (strcmp(s, "F64") == 0) return ML_F64;
    if (strcmp(s, "I64") == 0) return ML_I64;
    if (strcmp(s, "U8") == 0 || strcmp(s, "BOOL") == 0) return ML_U8;
    return -1;
}

static void put_u64le(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* --- temporary files ---------------------------------------------------------
 * A checkpoint is written to "<path>.tmp.XXXXXX" (six letters or digits, the
 * pattern mkstemp made before) and renamed over path. The writer holds an flock
 * on its temporary file until the rename: a process killed mid-save leaves the
 * file unlocked, and the next save to the same path removes such leftovers (only
 * names of exactly that pattern, regular files, and only those it can lock, so a
 * save running at the same time in another process is never disturbed). */

static const char tmp_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
#define TMP_TAG ".tmp."
#define TMP_RANDOM 6

/* 1 when name is base + ".tmp." + six letters or digits. */
static int is_our_tmp(const char *name, const char *base) {
    size_t bl = strlen(base), tl = strlen(TMP_TAG);
    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, TMP_TAG, tl) != 0) return 0;
    const char *r = name + bl + tl;
    if (strlen(r) != TMP_RANDOM) return 0;
    for (int i = 0; i < TMP_RANDOM; i++)
        if (!strchr(tmp_alphabet, r[i]) || !r[i]) return 0;
    return 1;
}

/* Splits path into its directory ("." when none) and its last component. */
static void split_path(const char *path, char *dir, size_t dn, const char **base) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, dn, ".");
        *base = path;
    } else {
        snprintf(dir, dn, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        *base = slash + 1;
    }
}

/* Removes the temporary files that earlier, interrupted saves to path left
 * (see above). Best effort: a directory that cannot be read is left alone. */
static void remove_stale_tmps(const char *path) {
    char dir[4096];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    if (!base[0]) return;
    DIR *d = opendir(dir);
    if (!d) return;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_our_tmp(e->d_name, base)) continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) continue;
        struct stat st, now;
        /* locked: a save in progress; a symlink or a device: not ours */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            fstatat(dfd, e->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == st.st_ino &&
            now.st_dev == st.st_dev)
            unlinkat(dfd, e->d_name, 0);
        close(fd);
    }
    closedir(d);
}

/* Creates and locks a fresh temporary file next to path, with the mode
 * open(O_CREAT, 0666) gives under the process's umask (mkstemp's 0600 made every
 * checkpoint private whatever the umask). tmp receives its name. The fd, or -1
 * with errno set. */
static int create_tmp(const char *path, char *tmp, size_t n) {
    static _Atomic unsigned counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 16) ^
                     ((uint64_t)counter++ * 0x9E3779B97F4A7C15ull);
        char r[TMP_RANDOM + 1];
        for (int i = 0; i < TMP_RANDOM; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            r[i] = tmp_alphabet[(x >> 33) % (sizeof tmp_alphabet - 1)];
        }
        r[TMP_RANDOM] = 0;
        snprintf(tmp, n, "%s" TMP_TAG "%s", path, r);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            return -1;
        }
        /* Locked before anything is written. Between the open and the lock another
         * process's cleanup could have removed the name: then start again. */
        struct stat a, b;
        if (flock(fd, LOCK_EX) != 0 || fstat(fd, &a) != 0 || lstat(tmp, &b) != 0 ||
            a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        return fd;
    }
    errno = EEXIST;
    return -1;
}

/* Writes all n bytes; 0 or -1 with errno set. */
static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding path, so that the rename is on disk too. */
static void sync_parent(const char *path) {
    char dir[4096];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

/* Length of the valid UTF-8 prefix of s[0..n) (n when all of it is valid): no
 * overlong forms, no surrogates, nothing above U+10FFFF (Rust's from_utf8). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
        i += len;
    }
    return n;
}

/* 0 when s is valid UTF-8, else -1 with ml_error set naming what: a header is JSON
 * text, which readers (ours, the reference) refuse otherwise. */
static int check_utf8(const char *what, const char *s) {
    size_t n = strlen(s);
    if (utf8_valid_prefix((const unsigned char *)s, n) == n) return 0;
    return ml_error_set("save: %s is not valid UTF-8 (a safetensors header is JSON text; encode "
                        "binary data, e.g. as hex)", what);
}

int ml_safetensors_save(const char *path, int n, const char *const *names,
                        ml_tensor *const *tensors, int n_meta, const char *const *meta_keys,
                        const char *const *meta_values) {
    char what[300];
    for (int i = 0; i < n; i++) {
        snprintf(what, sizeof what, "tensor name '%.200s'", names[i]);
        if (check_utf8(what, names[i])) return -1;
    }
    for (int i = 0; i < n_meta; i++) {
        snprintf(what, sizeof what, "a metadata key");
        if (check_utf8(what, meta_keys[i])) return -1;
        snprintf(what, sizeof what, "metadata '%.200s'", meta_keys[i]);
        if (check_utf8(what, meta_values[i])) return -1;
    }
    cJSON *root = cJSON_CreateObject();
    if (!root) return ml_error_set("save: out of memory");
    if (n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; meta && i < n_meta; i++) cJSON_AddStringToObject(meta, meta_keys[i], meta_values[i]);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const ml_tensor *t = tensors[i];
        if (strcmp(names[i], "__metadata__") == 0) {
            cJSON_Delete(root);
            return ml_error_set("save: '__metadata__' is reserved and cannot name a tensor");
        }
        cJSON *o = cJSON_AddObjectToObject(root, names[i]);
        if (!o) break;
        cJSON_AddStringToObject(o, "dtype", st_dtype(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; shape && d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        uint64_t nbytes = (uint64_t)ml_numel(t) * ml_dtype_size(t->dtype);
        cJSON *offs = cJSON_AddArrayToObject(o, "data_offsets");
        if (offs) {
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + nbytes)));
        }
        offset += nbytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return ml_error_set("save: out of memory while writing the header");
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) / 8 * 8; /* padded with spaces: data starts 8-aligned */

    remove_stale_tmps(path);
    size_t tn = strlen(path) + sizeof TMP_TAG + TMP_RANDOM + 1;
    char *tmp = malloc(tn);
    if (!tmp) {
        free(json);
        return ml_error_set("save: out of memory");
    }
    int fd = create_tmp(path, tmp, tn);
    if (fd < 0) {
        ml_error_set("save: cannot create a file next to '%s': %s", path, strerror(errno));
        free(json);
        free(tmp);
        return -1;
    }
    unsigned char len8[8];
    put_u64le(len8, hlen);
    int ok = write_all(fd, len8, 8) == 0 && write_all(fd, json, jlen) == 0;
    free(json);
    if (ok && hlen > jlen) ok = write_all(fd, "        ", hlen - jlen) == 0;
    const char *why = ok ? NULL : strerror(errno);
    for (int i = 0; ok && i < n; i++) {
        size_t nbytes = (size_t)ml_numel(tensors[i]) * ml_dtype_size(tensors[i]->dtype);
        if (!nbytes) continue;
        ml_tensor *c = ml_contiguous(tensors[i]);
        ml_tensor *h = c ? ml_to_device(c, ML_CPU) : NULL;
        ml_tensor_release(c);
        if (!h) {
            ok = 0; /* the core's message says why */
            break;
        }
        if (write_all(fd, ml_data(h), nbytes) != 0) ok = 0, why = strerror(errno);
        ml_tensor_release(h);
    }
    if (ok && fsync(fd) != 0) ok = 0, why = strerror(errno);
    if (ok && rename(tmp, path) != 0) ok = 0, why = strerror(errno);
    if (!ok) unlink(tmp);
    close(fd); /* drops the lock, after the rename or the unlink */
    free(tmp);
    if (!ok) {
        if (why) ml_error_set("save: cannot write '%s': %s", path, why);
        return -1;
    }
    sync_parent(path);
    return 0;
}

void ml_safetensors_free(ml_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) {
        free(st->names[i]);
        ml_tensor_release(st->tensors[i]);
    }
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->names);
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st);
}

/* --- reading ------------------------------------------------------------------
 * What the reference reader (Rust safetensors' SafeTensors::read_metadata and
 * Metadata::validate) rejects is rejected here, everything checked before any
 * tensor is allocated: a header length over 100,000,000 or past the file; a
 * header that is not UTF-8; anything but a JSON object followed by JSON
 * whitespace (the padding); a tensor entry without a known dtype, a shape of
 * non-negative integers and two data_offsets; a shape whose element or byte
 * count overflows; offsets that do not tile the data section exactly, in offset
 * order, from 0 to the end of the file (no gap, no overlap, no trailing byte).
 * Stricter than the reference (which keeps the last of two equal keys, as a JSON
 * object does in Rust's serde): duplicate keys, at the top or in __metadata__, and
 * names holding a NUL (\u0000, which C strings cannot carry). */

/* A JSON number that is a non-negative integer below 2^53 (exact in a double). */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v) return false;
    *out = (uint64_t)v;
    return true;
}

/* true when the JSON text holds the escape \u0000 in a string. */
static bool has_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) return true;
        i++; /* the escaped character: "\\\\u0000" is a backslash, then text */
    }
    return false;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that appears twice among the children of obj, or NULL. keys must
 * hold room for all of them. */
static const char *duplicate_key(const cJSON *obj, const char **keys) {
    int n = 0;
    for (const cJSON *e = obj->child; e; e = e->next) keys[n++] = e->string;
    qsort(keys, (size_t)n, sizeof *keys, cmp_names);
    for (int i = 1; i < n; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) return keys[i];
    return NULL;
}

typedef struct {
    const cJSON *entry;
    int order; /* position in the header */
    int dtype, ndim;
    int64_t shape[ML_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

static int cmp_order(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

static int cmp_offsets(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

#define LOAD_FAIL(...)                                                                  \
    do {                                                                                \
        ml_error_set(__VA_ARGS__);                                                      \
        goto fail;                                                                      \
    } while (0)

/* Reads all n bytes at offset; 0, or -1 (errno set, 0 for a short file). */
static int pread_all(int fd, void *buf, size_t n, uint64_t offset) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = 0;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
    return 0;
}

ml_safetensors *ml_safetensors_load(const char *path) {
    ml_safetensors *st = NULL;
    cJSON *root = NULL;
    char *header = NULL;
    st_entry *entries = NULL;
    const char **keys = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ml_error_set("load: cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) LOAD_FAIL("load: cannot read '%s': %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) LOAD_FAIL("load: '%s' is not a regular file", path);
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char len8[8];
    if (fsize < 8 || pread_all(fd, len8, 8, 0) != 0)
        LOAD_FAIL("load: '%s' is not a safetensors file (shorter than its 8-byte header length)", path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > MAX_HEADER_BYTES || hlen > fsize - 8)
        LOAD_FAIL("load: '%s' is not a safetensors file (header length %llu, file size %llu; the "
                  "header is at most %u bytes and within the file)", path, (unsigned long long)hlen,
                  (unsigned long long)fsize, MAX_HEADER_BYTES);
    const uint64_t data_size = fsize - 8 - hlen;
    header = malloc(hlen + 1);
    if (!header) LOAD_FAIL("load: out of memory for a header of %llu bytes", (unsigned long long)hlen);
    if (pread_all(fd, header, hlen, 8) != 0) LOAD_FAIL("load: cannot read the header of '%s'", path);
    header[hlen] = '\0';
    size_t valid = utf8_valid_prefix((const unsigned char *)header, hlen);
    if (valid != hlen)
        LOAD_FAIL("load: '%s': the header is not valid UTF-8 (byte %zu of %llu)", path, valid + 1,
                  (unsigned long long)hlen);
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(header, hlen, &end, 0);
    if (!cJSON_IsObject(root)) LOAD_FAIL("load: '%s': the header is not a JSON object", path);
    for (const char *p = end; p < header + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            LOAD_FAIL("load: '%s': bytes after the header's JSON object (at byte %lld of %llu; only "
                      "spaces may pad it)", path, (long long)(p - header) + 1,
                      (unsigned long long)hlen);
    if (has_nul_escape(header, hlen))
        LOAD_FAIL("load: '%s': the header holds a NUL character (\\u0000), which names and "
                  "metadata cannot contain here", path);
    int count = cJSON_GetArraySize(root);
    keys = malloc(sizeof *keys * (size_t)(count + 1));
    entries = calloc((size_t)count + 1, sizeof *entries);
    if (!keys || !entries) LOAD_FAIL("load: out of memory");
    const char *dup = duplicate_key(root, keys);
    if (dup) LOAD_FAIL("load: '%s': the header names '%s' twice", path, dup);

    /* every entry checked, nothing allocated yet */
    int n = 0;
    const cJSON *meta = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (cJSON_IsNull(e)) continue;
            if (!cJSON_IsObject(e)) LOAD_FAIL("load: '%s': __metadata__ is not an object", path);
            for (const cJSON *kv = e->child; kv; kv = kv->next)
                if (!cJSON_IsString(kv))
                    LOAD_FAIL("load: '%s': metadata '%s' is not a string", path, kv->string);
            const char **mkeys = malloc(sizeof *mkeys * (size_t)(cJSON_GetArraySize(e) + 1));
            if (!mkeys) LOAD_FAIL("load: out of memory");
            const char *mdup = duplicate_key(e, mkeys);
            if (mdup) {
                ml_error_set("load: '%s': __metadata__ names '%s' twice", path, mdup);
                free(mkeys);
                goto fail;
            }
            free(mkeys);
            meta = e;
            continue;
        }
        st_entry *en = &entries[n];
        en->entry = e;
        en->order = n;
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
            LOAD_FAIL("load: '%s': tensor '%s' needs dtype, shape and data_offsets [begin, end]",
                      path, e->string);
        en->dtype = st_dtype_from(jd->valuestring);
        if (en->dtype < 0)
            LOAD_FAIL("load: '%s': tensor '%s' has dtype %s (supported: F32, F64, I64, U8, BOOL)",
                      path, e->string, jd->valuestring);
        en->ndim = cJSON_GetArraySize(js);
        if (en->ndim > ML_MAX_DIMS)
            LOAD_FAIL("load: '%s': tensor '%s' has %d dims, at most %d are supported", path,
                      e->string, en->ndim, ML_MAX_DIMS);
        /* numel, and the product of the non-zero sizes (which bounds the strides of
         * an empty tensor), both checked: [2^31, 2^31] F32 once wrapped to 0 bytes */
        int64_t numel = 1, nonzero = 1;
        int d = 0;
        for (const cJSON *s = js->child; s; s = s->next, d++) {
            uint64_t v;
            if (!json_uint(s, &v))
                LOAD_FAIL("load: '%s': tensor '%s' has a bad shape (sizes are integers from 0 to "
                          "2^53)", path, e->string);
            en->shape[d] = (int64_t)v;
            if (!ml_mul_size(numel, (int64_t)v, &numel) ||
                (v && !ml_mul_size(nonzero, (int64_t)v, &nonzero)))
                LOAD_FAIL("load: '%s': tensor '%s' has a shape whose element count overflows",
                          path, e->string);
        }
        int64_t nbytes;
        if (!ml_mul_size(numel, (int64_t)ml_dtype_size((ml_dtype)en->dtype), &nbytes))
            LOAD_FAIL("load: '%s': tensor '%s' has a shape whose byte count overflows", path,
                      e->string);
        if (!json_uint(jo->child, &en->begin) || !json_uint(jo->child->next, &en->end) ||
            en->begin > en->end || en->end > data_size)
            LOAD_FAIL("load: '%s': tensor '%s' has data_offsets outside the file's %llu data bytes",
                      path, e->string, (unsigned long long)data_size);
        if (en->end - en->begin != (uint64_t)nbytes)
            LOAD_FAIL("load: '%s': tensor '%s' spans %llu bytes, its dtype and shape need %lld",
                      path, e->string, (unsigned long long)(en->end - en->begin), (long long)nbytes);
        n++;
    }
    /* the data section, tiled exactly in offset order (the reference's validate) */
    qsort(entries, (size_t)n, sizeof *entries, cmp_offsets);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (entries[i].begin != at)
            LOAD_FAIL("load: '%s': tensor '%s' starts at byte %llu of the data, expected %llu (%s)",
                      path, entries[i].entry->string, (unsigned long long)entries[i].begin,
                      (unsigned long long)at,
                      entries[i].begin < at ? "it overlaps the tensor before it"
                                            : "a gap before it");
        at = entries[i].end;
    }
    if (at != data_size)
        LOAD_FAIL("load: '%s': the tensors cover %llu bytes of data, the file holds %llu after the "
                  "header (%s)", path, (unsigned long long)at, (unsigned long long)data_size,
                  at < data_size ? "trailing bytes" : "truncated");

    st = calloc(1, sizeof *st);
    if (!st || !(st->names = calloc((size_t)n + 1, sizeof(char *))) ||
        !(st->tensors = calloc((size_t)n + 1, sizeof(ml_tensor *))))
        LOAD_FAIL("load: out of memory");
    if (meta) {
        int m = cJSON_GetArraySize(meta);
        st->meta_keys = calloc((size_t)m + 1, sizeof(char *));
        st->meta_values = calloc((size_t)m + 1, sizeof(char *));
        if (!st->meta_keys || !st->meta_values) LOAD_FAIL("load: out of memory");
        for (const cJSON *kv = meta->child; kv; kv = kv->next) {
            st->meta_keys[st->n_meta] = strdup(kv->string);
            st->meta_values[st->n_meta] = strdup(kv->valuestring);
            st->n_meta++;
            if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1])
                LOAD_FAIL("load: out of memory");
        }
    }
    /* in header order, as before */
    qsort(entries, (size_t)n, sizeof *entries, cmp_order);
    for (int i = 0; i < n; i++) {
        const st_entry *en = &entries[i];
        const cJSON *e = en->entry;
        ml_tensor *t = ml_tensor_empty((ml_dtype)en->dtype, ML_CPU, en->ndim, en->shape);
        if (!t) { /* memory: name the file and the tensor */
            char why[512];
            const char *m = ml_error();
            snprintf(why, sizeof why, "%s", strncmp(m, "tensor: ", 8) == 0 ? m + 8 : m);
            LOAD_FAIL("load: '%s': tensor '%s': %s", path, e->string, why);
        }
        st->names[st->n] = strdup(e->string);
        st->tensors[st->n] = t;
        st->n++;
        if (!st->names[st->n - 1]) LOAD_FAIL("load: out of memory");
        size_t nbytes = (size_t)(en->end - en->begin);
        if (nbytes && pread_all(fd, ml_data(t), nbytes, 8 + hlen + en->begin) != 0)
            LOAD_FAIL("load: '%s': cannot read the data of tensor '%s'", path, e->string);
    }
    cJSON_Delete(root);
    free(header);
    free(entries);
    free(keys);
    close(fd);
    return st;
fail:
    cJSON_Delete(root);
    free(header);
    free(entries);
    free(keys);
    close(fd);
    ml_safetensors_free(st);
    return NULL;
}
