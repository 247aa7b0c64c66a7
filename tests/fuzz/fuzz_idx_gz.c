/* Fuzz target: the IDX reader behind gzip. The input is compressed into a valid
 * gzip file first, so that the reader's own checks (header, dims, sizes against
 * deflate's bound, trailing bytes) see every byte the fuzzer makes through the
 * decompressor; fuzz_idx.c feeds it raw (and corrupt) gzip streams. */
#include <stdlib.h>
#include <zlib.h>

#include "error.h"
#include "fuzz.h"
#include "idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_limit_tensor_memory();
    const char *path = fuzz_write_file(NULL, 0, ".idx.gz");
    gzFile g = gzopen(path, "wb");
    if (!g) abort();
    if (size && gzwrite(g, data, (unsigned)size) != (int)size) abort();
    gzclose(g);
    ml_tensor *t = ml_idx_load(path);
    if (t) {
        const unsigned char *p = ml_data(t);
        size_t n = (size_t)ml_numel(t) * ml_dtype_size(t->dtype);
        volatile unsigned s = 0;
        for (size_t i = 0; i < n; i++) s += p[i];
        ml_tensor_release(t);
    } else if (!ml_error()[0]) {
        abort();
    }
    ml_error_clear();
    return 0;
}
