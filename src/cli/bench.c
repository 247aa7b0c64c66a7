/* `require "moonlight.bench"` (the CLI only, not the library): peers for the
 * benchmarks under scripts/bench/ — a direct OpenBLAS cblas_sgemm call (with
 * OpenBLAS's own threads) and memcpy on the same sizes as the moonlight ops they
 * are compared with, and a monotonic clock. Not part of the public API. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "../threads.h"
#include "../lua/binding.h"

static double now(void) { return ml_clock_seconds(); }

static int l_bench_now(lua_State *L) {
    lua_pushnumber(L, now());
    return 1;
}

static float *filled(size_t n) {
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

/* bench.sgemm(m, n, k, trans_a, trans_b, reps) -> seconds for reps row-major
 * C[m, n] = op(A) @ op(B) calls (beta 0), buffers allocated and touched first. */
static int l_bench_sgemm(lua_State *L) {
    lua_Integer m = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2), k = luaL_checkinteger(L, 3);
    int ta = lua_toboolean(L, 4), tb = lua_toboolean(L, 5);
    lua_Integer reps = luaL_optinteger(L, 6, 1);
    if (m <= 0 || n <= 0 || k <= 0 || reps <= 0) return ml_lua_errorf(L, "bench.sgemm: sizes must be positive");
    float *a = filled((size_t)(m * k)), *b = filled((size_t)(k * n)), *c = filled((size_t)(m * n));
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return ml_lua_errorf(L, "bench.sgemm: out of memory");
    }
    blasint lda = (blasint)(ta ? m : k), ldb = (blasint)(tb ? k : n);
    double t0 = now();
    for (lua_Integer r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (blasint)m, (blasint)n, (blasint)k, 1.0f, a, lda, b, ldb, 0.0f, c, (blasint)n);
    double dt = now() - t0;
    free(a);
    free(b);
    free(c);
    lua_pushnumber(L, dt);
    return 1;
}

/* bench.memcpy(nbytes, reps) -> seconds for reps memcpy calls between two touched
 * buffers of nbytes. */
static int l_bench_memcpy(lua_State *L) {
    lua_Integer nbytes = luaL_checkinteger(L, 1), reps = luaL_optinteger(L, 2, 1);
    if (nbytes <= 0 || reps <= 0) return ml_lua_errorf(L, "bench.memcpy: sizes must be positive");
    char *src = malloc((size_t)nbytes), *dst = malloc((size_t)nbytes);
    if (!src || !dst) {
        free(src);
        free(dst);
        return ml_lua_errorf(L, "bench.memcpy: out of memory");
    }
    memset(src, 1, (size_t)nbytes);
    memset(dst, 0, (size_t)nbytes);
    double t0 = now();
    for (lua_Integer r = 0; r < reps; r++) {
        memcpy(dst, src, (size_t)nbytes);
        src[r % nbytes] ^= dst[(r * 7) % nbytes]; /* keep the copies observable */
    }
    double dt = now() - t0;
    free(src);
    free(dst);
    lua_pushnumber(L, dt);
    return 1;
}

int luaopen_moonlight_bench(lua_State *L);
int luaopen_moonlight_bench(lua_State *L) {
    static const luaL_Reg funcs[] = {{"now", l_bench_now}, {"sgemm", l_bench_sgemm},
                                     {"memcpy", l_bench_memcpy}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
