/* The IDX reader: plain files and gzip streams both through zlib (gzread reads a
 * plain file as it is), validated against the header's dims. A plain uint8 file
 * whose size matches its header (MNIST's images and labels) is mapped instead of
 * read (see map_plain_u8). */
#define _DEFAULT_SOURCE /* mmap's MAP_* flags and madvise outside strict C11 */
#include "idx.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "error.h"

#define FN "read_idx"

typedef struct {
    int code;
    const char *name;
    size_t size;
    ml_dtype dtype;
} idx_type;

static const idx_type idx_types[] = {
    {0x08, "uint8", 1, ML_U8},    {0x09, "int8", 1, ML_I64},      {0x0B, "int16", 2, ML_I64},
    {0x0C, "int32", 4, ML_I64},   {0x0D, "float32", 4, ML_F32},   {0x0E, "float64", 8, ML_F64},
};

static const idx_type *find_type(int code) {
    for (size_t i = 0; i < sizeof idx_types / sizeof idx_types[0]; i++)
        if (idx_types[i].code == code) return &idx_types[i];
    return NULL;
}

/* Reads up to n bytes; returns how many were read, or -1 with ml_error set when
 * the stream is corrupt. */
static int64_t read_full(gzFile f, const char *path, void *buf, int64_t n) {
    int64_t got = 0;
    while (got < n) {
        int64_t chunk = n - got;
        if (chunk > (1 << 30)) chunk = 1 << 30;
        int r = gzread(f, (char *)buf + got, (unsigned)chunk);
        if (r < 0) {
            int err;
            const char *msg = gzerror(f, &err);
            ml_error_set(FN ": %s: %s (corrupt gzip data)", path, msg ? msg : "read error");
            return -1;
        }
        if (r == 0) break;
        got += r;
    }
    return got;
}

/* Counts what is left in the stream (for the message about trailing bytes). */
static int64_t count_rest(gzFile f) {
    char buf[1 << 14];
    int64_t n = 0;
    int r;
    while ((r = gzread(f, buf, sizeof buf)) > 0) n += r;
    return n;
}

static void dims_str(int ndim, const int64_t *dims, char *buf, size_t n) {
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? "x%lld" : "%lld", (long long)dims[i]);
}

/* A big-endian uint32 (IDX dims and 4-byte elements). */
static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The header's ndim big-endian dims into dims, their product into numel. Returns 0,
 * the 1-based position of a negative dim, or -1 when the product is too large. */
static int read_dims(const unsigned char *raw, int ndim, int64_t *dims, int64_t *numel) {
    *numel = 1;
    for (int i = 0; i < ndim; i++) {
        uint32_t u = be32(raw + 4 * i);
        if (u > INT32_MAX) return i + 1;
        dims[i] = u;
        if (*numel && dims[i] > (INT64_MAX / 16) / *numel) return -1;
        *numel *= dims[i];
    }
    return 0;
}

/* Big-endian elements into host order, widened to the tensor's dtype. */
static void convert(const idx_type *ty, const unsigned char *src, int64_t n, void *dst) {
    switch (ty->code) {
    case 0x09:
        for (int64_t i = 0; i < n; i++) ((int64_t *)dst)[i] = (int8_t)src[i];
        break;
    case 0x0B:
        for (int64_t i = 0; i < n; i++)
            ((int64_t *)dst)[i] = (int16_t)(uint16_t)((src[2 * i] << 8) | src[2 * i + 1]);
        break;
    case 0x0C:
        for (int64_t i = 0; i < n; i++) {
            ((int64_t *)dst)[i] = (int32_t)be32(src + 4 * i);
        }
        break;
    case 0x0D:
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = be32(src + 4 * i);
            memcpy((float *)dst + i, &u, 4);
        }
        break;
    case 0x0E:
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *p = src + 8 * i;
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u = (u << 8) | p[k];
            memcpy((double *)dst + i, &u, 8);
        }
        break;
    }
}

/* Deflate's best ratio is 1032:1 (RFC 1951 blocks of 258-byte matches), for any
 * number of gzip members: a compressed file of n bytes cannot hold more than
 * this many. */
#define GZ_MAX_RATIO 1032

/* Reads the IDX stream f (gzip or plain) of a regular file of file_size bytes. The
 * size the header claims is checked against the file before anything is
 * allocated: exactly for a plain file, by deflate's best ratio for a compressed
 * one (a 100-byte file once had 13 GB asked for before the read found it short). */
static ml_tensor *load(gzFile f, const char *path, int64_t file_size) {
    unsigned char head[4];
    int64_t got = read_full(f, path, head, 4);
    if (got < 0) return NULL;
    if (got < 4) {
        ml_error_set(FN ": %s: truncated: %lld bytes, too short for an IDX header (4 bytes at least)",
                     path, (long long)got);
        return NULL;
    }
    const idx_type *ty = find_type(head[2]);
    if (head[0] != 0 || head[1] != 0 || !ty || head[3] == 0 || head[3] > ML_MAX_DIMS) {
        if (head[0] != 0 || head[1] != 0)
            ml_error_set(FN ": %s: not an IDX file: magic %02x %02x %02x %02x, expected two zero "
                         "bytes, a type byte and a dim count (00 00 08 03 for images)",
                         path, head[0], head[1], head[2], head[3]);
        else if (!ty)
            ml_error_set(FN ": %s: unknown IDX element type 0x%02x (expected 0x08 uint8, 0x09 int8, "
                         "0x0B int16, 0x0C int32, 0x0D float32 or 0x0E float64)", path, head[2]);
        else
            ml_error_set(FN ": %s: IDX header says %d dims, expected 1 to %d", path, head[3],
                         ML_MAX_DIMS);
        return NULL;
    }
    int ndim = head[3];
    unsigned char raw_dims[4 * ML_MAX_DIMS];
    int64_t header = 4 + 4 * (int64_t)ndim;
    got = read_full(f, path, raw_dims, 4 * (int64_t)ndim);
    if (got < 0) return NULL;
    if (got < 4 * ndim) {
        ml_error_set(FN ": %s: truncated header: %lld bytes expected for %d dims, found %lld", path,
                     (long long)header, ndim, (long long)(4 + got));
        return NULL;
    }
    int64_t dims[ML_MAX_DIMS], numel;
    int bad = read_dims(raw_dims, ndim, dims, &numel);
    if (bad > 0) {
        ml_error_set(FN ": %s: dim %d is negative (%lld) in the IDX header", path, bad,
                     (long long)(int32_t)be32(raw_dims + 4 * (bad - 1)));
        return NULL;
    }
    if (bad < 0) {
        ml_error_set(FN ": %s: IDX dims are too large", path);
        return NULL;
    }
    char dstr[ML_SHAPE_STR_MAX];
    dims_str(ndim, dims, dstr, sizeof dstr);
    int64_t nbytes = numel * (int64_t)ty->size; /* read_dims bounds numel by INT64_MAX / 16 */
    if (gzdirect(f) && header + nbytes != file_size) {
        ml_error_set(FN ": %s: %lld bytes expected for %s, found %lld", path,
                     (long long)(header + nbytes), dstr, (long long)file_size);
        return NULL;
    }
    if (!gzdirect(f) && (header + nbytes) / GZ_MAX_RATIO > file_size) {
        ml_error_set(FN ": %s: the header claims %s (%lld bytes), more than %lld compressed bytes "
                     "can hold (deflate compresses at most %d:1)", path, dstr,
                     (long long)(header + nbytes), (long long)file_size, GZ_MAX_RATIO);
        return NULL;
    }
    ml_tensor *t = ml_tensor_empty(ty->dtype, ML_CPU, ndim, dims);
    if (!t) return NULL;
    void *buf = ml_data(t);
    if (ty->dtype != ML_U8) {
        buf = malloc(nbytes ? (size_t)nbytes : 1);
        if (!buf) {
            ml_tensor_release(t);
            ml_error_set(FN ": %s: out of memory for %lld bytes", path, (long long)nbytes);
            return NULL;
        }
    }
    got = read_full(f, path, buf, nbytes);
    int64_t extra = got == nbytes ? count_rest(f) : 0;
    if (got < 0 || got < nbytes || extra > 0) {
        if (got >= 0)
            ml_error_set(FN ": %s: %lld bytes expected for %s, found %lld%s", path,
                         (long long)(header + nbytes), dstr,
                         (long long)(header + got + extra),
                         gzdirect(f) ? "" : " (decompressed)");
        if (buf != ml_data(t)) free(buf);
        ml_tensor_release(t);
        return NULL;
    }
    if (buf != ml_data(t)) {
        convert(ty, buf, numel, ml_data(t));
        free(buf);
    }
    return t;
}

/* --- the mapped fast path ---------------------------------------------------
 * Reading MNIST's 47 MB of images cost ~35 ms of a 0.6 s training run: a copy out
 * of the page cache into fresh memory, whose ~11,500 page faults and zeroing were
 * most of it. A private mapping of the file gives the same bytes with neither: the
 * pages already in the page cache are mapped as they are touched. Private and
 * writable, so writing into the tensor copies the page (the file never changes);
 * the mapping goes when the last tensor using it does. As with any mapped file
 * (numpy.memmap), truncating the file while a tensor still uses it is not allowed. */
typedef struct {
    void *base;
    size_t len;
} idx_mapping;

static void unmap_idx(void *data, void *ctx) {
    (void)data;
    idx_mapping *m = ctx;
    munmap(m->base, m->len);
    free(m);
}

/* The tensor of a plain uint8 IDX file of exactly its header's size, mapped; NULL
 * (and no error) when the file is anything else or cannot be mapped, for the
 * reader, which handles every other case and names every problem. */
static ml_tensor *map_plain_u8(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    ml_tensor *t = NULL;
    struct stat st;
    unsigned char head[4 + 4 * ML_MAX_DIMS];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || pread(fd, head, 4, 0) != 4 ||
        head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] == 0 || head[3] > ML_MAX_DIMS)
        goto done;
    int ndim = head[3];
    int64_t header = 4 + 4 * (int64_t)ndim, numel, dims[ML_MAX_DIMS];
    if (pread(fd, head + 4, (size_t)(4 * ndim), 4) != 4 * ndim ||
        read_dims(head + 4, ndim, dims, &numel) != 0)
        goto done;
    if (numel == 0 || (int64_t)st.st_size != header + numel) goto done;
    idx_mapping *m = malloc(sizeof *m);
    if (!m) goto done;
    m->len = (size_t)st.st_size;
    m->base = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m->base == MAP_FAILED) {
        free(m);
        goto done;
    }
    /* read ahead what is not cached yet; pages are mapped as they are touched
     * (prefaulting them all with MADV_POPULATE_READ measured no faster in all) */
    (void)madvise(m->base, m->len, MADV_WILLNEED);
    t = ml_tensor_from_blob((unsigned char *)m->base + header, ML_U8, ML_CPU, ndim, dims,
                            unmap_idx, m);
    if (!t) unmap_idx(NULL, m);
done:
    close(fd);
    return t;
}

ml_tensor *ml_idx_load(const char *path) {
    ml_tensor *mapped = map_plain_u8(path);
    if (mapped) return mapped;
    ml_error_clear();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        ml_error_set(FN ": %s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        ml_error_set(FN ": %s: not a regular file", path);
        return NULL;
    }
    errno = 0;
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        ml_error_set(FN ": %s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 17);
    ml_tensor *t = load(f, path, (int64_t)st.st_size);
    gzclose(f); /* closes fd */
    return t;
}

int ml_idx_load_pair(const char *images_path, const char *labels_path, ml_tensor **images,
                     ml_tensor **labels) {
    *images = *labels = NULL;
    ml_tensor *x = ml_idx_load(images_path);
    if (!x) return -1;
    ml_tensor *y = ml_idx_load(labels_path);
    if (!y) {
        ml_tensor_release(x);
        return -1;
    }
    char a[ML_SHAPE_STR_MAX];
    int rc = 0;
    if (x->ndim != 3 || x->dtype != ML_U8)
        rc = ml_error_set(FN ": %s: images expected as uint8 [N, H, W], found %s %s", images_path,
                          ml_dtype_name(x->dtype), ml_shape_str(x->ndim, x->shape, a, sizeof a));
    else if (y->ndim != 1 || ml_dtype_is_float(y->dtype))
        rc = ml_error_set(FN ": %s: labels expected as integers [N], found %s %s", labels_path,
                          ml_dtype_name(y->dtype), ml_shape_str(y->ndim, y->shape, a, sizeof a));
    else if (x->shape[0] != y->shape[0])
        rc = ml_error_set(FN ": %s has %lld images but %s has %lld labels", images_path,
                          (long long)x->shape[0], labels_path, (long long)y->shape[0]);
    if (rc) {
        ml_tensor_release(x);
        ml_tensor_release(y);
        return -1;
    }
    *images = x;
    *labels = y;
    return 0;
}
