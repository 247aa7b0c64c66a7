/* Fuzz target: the safetensors reader (src/safetensors.c, its JSON header
 * included) through ml.load. A file it accepts must work as tensors (printed,
 * summed, turned into tables) and must round-trip: ml.save of what it gave, read
 * back, gives the same names, dtypes, shapes and values, bit for bit. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"

static const char code[] =
    FUZZ_LUA_TOTABLE_VALUES
    "local path, out = ...\n"
    "local ok, t, meta = pcall(ml.load, path)\n"
    "if not ok then assert(type(t) == 'string' and t:find('load: ', 1, true), t) return end\n"
    "for name, x in pairs(t) do\n"
    "  assert(type(name) == 'string')\n"
    "  local s = tostring(x)\n"
    "  local sum = x:sum():item()\n"
    "  if totable_values(x:shape()) <= 65536 then x:totable() end\n"
    "end\n"
    "ml.save(t, out, meta)\n"
    "local back, meta2 = ml.load(out)\n"
    "for k, v in pairs(meta) do assert(meta2[k] == v, k) end\n"
    "for name, x in pairs(t) do\n"
    "  local y = assert(back[name], name)\n"
    "  assert(x.dtype == y.dtype and #x:shape() == #y:shape(), name)\n"
    "  for d, n in ipairs(x:shape()) do assert(y:shape()[d] == n, name) end\n"
    "  if x:numel() > 0 then\n"
    "    local same = x:eq(y):long():sum():item()\n"
    "    if x.dtype == 'float32' or x.dtype == 'float64' then\n"
    "      local nan_x, nan_y = 1 - x:eq(x):long(), 1 - y:eq(y):long()\n"
    "      same = same + (nan_x * nan_y):sum():item()\n"
    "    end\n"
    "    assert(same == x:numel(), name .. ': values differ after a round trip')\n"
    "  end\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_limit_tensor_memory();
    static char out[256];
    if (!out[0]) snprintf(out, sizeof out, "/tmp/ml_fuzz_%d_out.safetensors", (int)getpid());
    const char *args[2] = {fuzz_write_file(data, size, ".safetensors"), out};
    const char *err;
    if (fuzz_lua_call(code, 2, args, &err)) {
        /* a file ml.load accepted that does not work, or does not round-trip */
        fprintf(stderr, "fuzz_safetensors: %s\n", err);
        abort();
    }
    return 0;
}
