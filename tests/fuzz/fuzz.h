/* Shared by the fuzz targets (tests/fuzz/fuzz_*.c). Each target defines
 * LLVMFuzzerTestOneInput; built with clang's -fsanitize=fuzzer it is a libFuzzer
 * program (scripts/fuzz), built with replay.c's main() it replays files and
 * directories of inputs (ctest fuzz.replay.*: the seed corpora and every crash
 * found, in every build, the sanitizer build included).
 *
 * What a target may not do: crash, trip a sanitizer, leak, hang, or allocate
 * without bound. Errors are fine (the inputs are mostly invalid): they must be
 * errors, with a message. Tensor memory is bounded by a memory budget, so an
 * input that asks for a large (valid) tensor is refused like any other. */
#ifndef ML_FUZZ_H
#define ML_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A file of this process (in /dev/shm when there is one) holding data; the same
 * path on every call. Aborts when it cannot be written (not an input's fault). */
const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix);

/* A Lua state with every standard library and moonlight loaded as the global
 * `ml` (as a stock lua5.4 with require "moonlight"); made once per process. */
struct lua_State;
struct lua_State *fuzz_lua_state(void);
/* Loads the chunk code once (cached under its address) and calls it with nargs
 * strings; a Lua error is the input's (returned as 1, the message left in
 * *error when error is not NULL), a load error aborts. */
int fuzz_lua_call(const char *code, int nargs, const char *const *args, const char **error);

/* Once per process: a memory budget of 32 MiB for every tensor this thread
 * makes, so that an input cannot ask for the machine's memory (nor spend its
 * time filling hundreds of MB: a refusal is as interesting as a success). */
void fuzz_limit_tensor_memory(void);

/* Lua source to put before a target's code: totable_values(shape), how many Lua
 * values t:totable() makes for a tensor of that shape, each level's tables
 * included (an empty tensor of shape [7470402, 0, ...] has no elements and makes
 * 7.5M tables: 900 MB, found by the fuzzer). In floats: integers would wrap. */
#define FUZZ_LUA_TOTABLE_VALUES                                                   \
    "local function totable_values(shape)\n"                                      \
    "  local values, level = 0, 1.0\n"                                            \
    "  for _, d in ipairs(shape) do level = level * d values = values + level end\n" \
    "  return values\n"                                                           \
    "end\n"

#endif
