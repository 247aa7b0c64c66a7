#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "ops.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes the host's byte order; it assumes a little-endian host"
#endif

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

int ml_safetensors_save(const char *path, int n, const char *const *names,
                        ml_tensor *const *tensors, int n_meta, const char *const *meta_keys,
                        const char *const *meta_values) {
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

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(json);
        return ml_error_set("save: out of memory");
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        ml_error_set("save: cannot create a file next to '%s': %s", path, strerror(errno));
        free(json);
        free(tmp);
        return -1;
    }
    FILE *f = fdopen(fd, "wb");
    int ok = f != NULL;
    unsigned char len8[8];
    put_u64le(len8, hlen);
    if (ok) ok = fwrite(len8, 1, 8, f) == 8 && fwrite(json, 1, jlen, f) == jlen;
    for (size_t i = jlen; ok && i < hlen; i++) ok = fputc(' ', f) != EOF;
    free(json);
    for (int i = 0; ok && i < n; i++) {
        size_t nbytes = (size_t)ml_numel(tensors[i]) * ml_dtype_size(tensors[i]->dtype);
        if (!nbytes) continue;
        ml_tensor *c = ml_contiguous(tensors[i]);
        ml_tensor *h = c ? ml_to_device(c, ML_CPU) : NULL;
        ml_tensor_release(c);
        if (!h) {
            ok = 0;
            break;
        }
        ok = fwrite(ml_data(h), 1, nbytes, f) == nbytes;
        ml_tensor_release(h);
    }
    const char *why = ok ? NULL : strerror(errno);
    if (f) {
        if (fflush(f) != 0 || fsync(fileno(f)) != 0) ok = 0, why = strerror(errno);
        if (fclose(f) != 0) ok = 0, why = strerror(errno);
    } else {
        close(fd);
    }
    if (ok && rename(tmp, path) != 0) ok = 0, why = strerror(errno);
    if (!ok) {
        remove(tmp);
        free(tmp);
        if (why) ml_error_set("save: cannot write '%s': %s", path, why);
        return -1;
    }
    free(tmp);
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

static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (v < 0 || v > 9007199254740992.0 || v != (double)(uint64_t)v) return false;
    *out = (uint64_t)v;
    return true;
}

#define LOAD_FAIL(...)                                                                  \
    do {                                                                                \
        ml_error_set(__VA_ARGS__);                                                      \
        goto fail;                                                                      \
    } while (0)

ml_safetensors *ml_safetensors_load(const char *path) {
    ml_safetensors *st = NULL;
    cJSON *root = NULL;
    char *header = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        ml_error_set("load: cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) LOAD_FAIL("load: cannot seek in '%s'", path);
    long fsize = ftell(f);
    rewind(f);
    unsigned char len8[8];
    if (fsize < 8 || fread(len8, 1, 8, f) != 8)
        LOAD_FAIL("load: '%s' is not a safetensors file (shorter than its 8-byte header length)", path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > (uint64_t)fsize - 8 || hlen > (100u << 20))
        LOAD_FAIL("load: '%s' is not a safetensors file (header length %llu, file size %ld)", path,
                  (unsigned long long)hlen, fsize);
    uint64_t data_size = (uint64_t)fsize - 8 - hlen;
    header = malloc(hlen + 1);
    if (!header) LOAD_FAIL("load: out of memory");
    if (fread(header, 1, hlen, f) != hlen) LOAD_FAIL("load: cannot read the header of '%s'", path);
    header[hlen] = '\0';
    root = cJSON_ParseWithLength(header, hlen);
    if (!cJSON_IsObject(root)) LOAD_FAIL("load: '%s': the header is not a JSON object", path);
    st = calloc(1, sizeof *st);
    int count = cJSON_GetArraySize(root);
    if (!st || !(st->names = calloc((size_t)count + 1, sizeof(char *))) ||
        !(st->tensors = calloc((size_t)count + 1, sizeof(ml_tensor *))))
        LOAD_FAIL("load: out of memory");
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) LOAD_FAIL("load: '%s': __metadata__ is not an object", path);
            int m = cJSON_GetArraySize(e);
            st->meta_keys = calloc((size_t)m + 1, sizeof(char *));
            st->meta_values = calloc((size_t)m + 1, sizeof(char *));
            if (!st->meta_keys || !st->meta_values) LOAD_FAIL("load: out of memory");
            for (const cJSON *kv = e->child; kv; kv = kv->next) {
                if (!cJSON_IsString(kv))
                    LOAD_FAIL("load: '%s': metadata '%s' is not a string", path, kv->string);
                st->meta_keys[st->n_meta] = strdup(kv->string);
                st->meta_values[st->n_meta] = strdup(kv->valuestring);
                st->n_meta++;
                if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1])
                    LOAD_FAIL("load: out of memory");
            }
            continue;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
            LOAD_FAIL("load: '%s': tensor '%s' needs dtype, shape and data_offsets [begin, end]",
                      path, e->string);
        int dt = st_dtype_from(jd->valuestring);
        if (dt < 0)
            LOAD_FAIL("load: '%s': tensor '%s' has dtype %s (supported: F32, F64, I64, U8, BOOL)",
                      path, e->string, jd->valuestring);
        int ndim = cJSON_GetArraySize(js);
        if (ndim > ML_MAX_DIMS)
            LOAD_FAIL("load: '%s': tensor '%s' has %d dims, at most %d are supported", path,
                      e->string, ndim, ML_MAX_DIMS);
        int64_t shape[ML_MAX_DIMS];
        uint64_t numel = 1;
        int d = 0;
        for (const cJSON *s = js->child; s; s = s->next, d++) {
            uint64_t v;
            if (!json_uint(s, &v)) LOAD_FAIL("load: '%s': tensor '%s' has a bad shape", path, e->string);
            shape[d] = (int64_t)v;
            numel *= v;
        }
        uint64_t b, en;
        if (!json_uint(jo->child, &b) || !json_uint(jo->child->next, &en) || b > en || en > data_size)
            LOAD_FAIL("load: '%s': tensor '%s' has data_offsets outside the file's %llu data bytes",
                      path, e->string, (unsigned long long)data_size);
        uint64_t nbytes = numel * ml_dtype_size((ml_dtype)dt);
        if (en - b != nbytes)
            LOAD_FAIL("load: '%s': tensor '%s' spans %llu bytes, its dtype and shape need %llu",
                      path, e->string, (unsigned long long)(en - b), (unsigned long long)nbytes);
        ml_tensor *t = ml_tensor_empty((ml_dtype)dt, ML_CPU, ndim, shape);
        if (!t) goto fail;
        st->names[st->n] = strdup(e->string);
        st->tensors[st->n] = t;
        st->n++;
        if (!st->names[st->n - 1]) LOAD_FAIL("load: out of memory");
        if (nbytes && (fseek(f, (long)(8 + hlen + b), SEEK_SET) != 0 || fread(ml_data(t), 1, nbytes, f) != nbytes))
            LOAD_FAIL("load: '%s': cannot read the data of tensor '%s'", path, e->string);
    }
    cJSON_Delete(root);
    free(header);
    fclose(f);
    return st;
fail:
    cJSON_Delete(root);
    free(header);
    fclose(f);
    ml_safetensors_free(st);
    return NULL;
}
