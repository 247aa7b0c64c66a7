/* Fuzz target: the IDX reader (src/idx.c) on a file of the input's bytes, plain
 * (mapped or read) or, when the bytes start with gzip's magic, through zlib. A
 * tensor it returns must hold exactly what its shape says: every byte is read. */
#include <stdlib.h>

#include "error.h"
#include "fuzz.h"
#include "idx.h"

/* Reads every byte of t (ASan sees a read past the allocation). */
static unsigned touch(const ml_tensor *t) {
    const unsigned char *p = ml_data(t);
    size_t n = (size_t)ml_numel(t) * ml_dtype_size(t->dtype);
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += p[i];
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_limit_tensor_memory();
    ml_tensor *t = ml_idx_load(fuzz_write_file(data, size, ".idx"));
    if (t) {
        volatile unsigned s = touch(t);
        (void)s;
        if (!ml_is_contiguous(t) || t->ndim < 1) abort();
        ml_tensor_release(t);
    } else if (!ml_error()[0]) {
        abort(); /* a failure must say why */
    }
    ml_error_clear();
    return 0;
}
