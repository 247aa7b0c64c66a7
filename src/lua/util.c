#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../error.h"
#include "../ops.h"
#include "binding.h"

/* Lua does not see the memory behind a tensor; without a hint its collector would
 * let thousands of dead activations pile up between cycles. Each new tensor's bytes
 * (its data and its structs) are counted, and every so many bytes the collector is
 * asked for work worth them, which keeps memory flat over a training loop with no
 * collectgarbage(). Two policies:
 *
 * - incremental (Lua's default, a state we did not create): every 4 MiB a step
 *   worth the bytes. 4 MiB: dead small outputs come back (through the allocator's
 *   free lists) while still in cache, which made a [128, 32] x [32, 10] linear 15 %
 *   faster than 16 MiB did; 1 MiB made the epoch 10 % slower (collector work). Each
 *   such step ends up finishing a cycle, which marks the whole Lua heap (the
 *   library's modules included): ~15 % of the main thread's time in the MNIST run.
 * - generational (the states moonlight creates: the CLI, ml_open): tensors die
 *   young, which is what a minor collection is for; it visits only what is new, so
 *   every 2 MiB a minor collection frees the dead ones. A tensor that lived through
 *   two minor collections (a batch held across a step) is old and would wait for a
 *   major one, which Lua triggers from its own heap's growth, blind to tensor
 *   memory. So a full collection runs when the bytes of live tensors
 *   (ml_storage_live_bytes) have grown by 8 MiB since the last one, and at the
 *   latest every 512 MiB of new tensors: a steady training loop, whose live memory
 *   stays flat, needs almost none (a fixed every-64-MiB full collection, marking
 *   every object, was ~3 % of the MNIST run). The MNIST epoch is ~10 % faster than
 *   with the incremental steps, with the same peak RSS. Both policies bound the
 *   garbage in either mode, so a script that switches modes with collectgarbage()
 *   stays memory-safe. */
static _Thread_local size_t bytes_since_step, bytes_since_full;
static _Thread_local int64_t live_after_full = -1;
#define ML_GC_STEP_BYTES (4u << 20)
#define ML_GC_MINOR_BYTES (2u << 20)
#define ML_GC_GROWTH_BYTES ((int64_t)8 << 20)
#define ML_GC_FULL_BYTES ((size_t)512 << 20)
static const char generational_key;

void ml_lua_use_generational_gc(lua_State *L) {
    lua_gc(L, LUA_GCGEN, 0, 0);
    lua_pushboolean(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &generational_key);
}

static bool uses_generational_gc(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &generational_key);
    bool gen = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return gen;
}

static void full_collection(lua_State *L) {
    bytes_since_full = 0;
    lua_gc(L, LUA_GCCOLLECT);
    live_after_full = ml_storage_live_bytes();
}

/* Before a large tensor (tensor.h: ml_set_collect_hook; the CLI and the embedding
 * runtime install it), a full collection, when the tensor is at least 16 times
 * the Lua heap: marking a byte of heap costs about what writing a byte of tensor
 * does, so the collection costs a few percent of the tensor's own first write at
 * most. Then the dead activations of the layer before come back to the
 * allocator's cache in time for this one (a collection after each large tensor is
 * handed to Lua comes too early for that: the layer's input is live until the
 * next layer's call): a test pass at batch 1000 after the MNIST CNN's training
 * had three 48 MiB activations resident, one of them live (the bench's whole-run
 * peak RSS 333 -> 261 MiB with this and max_pool2d's positions kept only for a
 * backward). */
void ml_lua_collect_before_alloc(lua_State *L, size_t nbytes) {
    const int kb = lua_gc(L, LUA_GCCOUNT); /* -1 inside a finalizer or lua_close: no collection */
    if (kb >= 0 && nbytes >= 16 * ((size_t)kb << 10)) full_collection(L);
}

/* Called with the bytes of each tensor handed to Lua. */
static void account_tensor_bytes(lua_State *L, size_t nbytes) {
    bytes_since_step += nbytes;
    if (bytes_since_step <= ML_GC_MINOR_BYTES) return;
    if (uses_generational_gc(L)) {
        bytes_since_full += bytes_since_step;
        bytes_since_step = 0;
        const int64_t live = ml_storage_live_bytes();
        if (live_after_full < 0) live_after_full = live;
        if (live > live_after_full + ML_GC_GROWTH_BYTES || bytes_since_full > ML_GC_FULL_BYTES) {
            full_collection(L);
        } else {
            lua_gc(L, LUA_GCSTEP, 0); /* generational: one minor collection */
        }
    } else if (bytes_since_step > ML_GC_STEP_BYTES) {
        int kb = (int)(bytes_since_step >> 10);
        bytes_since_step = 0;
        lua_gc(L, LUA_GCSTEP, kb);
    }
}

static const char *called_name(lua_State *L);

int ml_lua_error(lua_State *L) {
    const char *msg = ml_error();
    /* the core's generic prefix (shape and memory checks of ml_tensor_empty) names
     * the function running instead, when it has a name */
    if (strncmp(msg, "tensor: ", 8) == 0) {
        const char *fname = called_name(L);
        if (strcmp(fname, "?") != 0) return ml_lua_error_in(L, fname);
    }
    return ml_lua_errorf(L, "%s", msg[0] ? msg : "moonlight: unknown error");
}

int ml_lua_error_in(lua_State *L, const char *fname) {
    const char *msg = ml_error();
    static const char core[] = "tensor: ";
    if (!msg[0]) return ml_lua_errorf(L, "%s: unknown error", fname);
    if (strncmp(msg, core, sizeof core - 1) == 0) msg += sizeof core - 1;
    else if (strncmp(msg, fname, strlen(fname)) == 0 && msg[strlen(fname)] == ':')
        return ml_lua_errorf(L, "%s", msg);
    return ml_lua_errorf(L, "%s: %s", fname, msg);
}

/* Chunks of the Lua half are named after their files (cmake/embed_lua.cmake). */
#define LIB_CHUNK "@lua/moonlight/"

void ml_lua_where(lua_State *L) {
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || strcmp(ar.what, "C") == 0) continue;
        if (strncmp(ar.source, LIB_CHUNK, sizeof LIB_CHUNK - 1) == 0) continue;
        if (ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
        break;
    }
    luaL_where(L, 1); /* the library's own line: no user frame on this stack */
}

int ml_lua_errorf(lua_State *L, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ml_lua_where(L);
    lua_pushstring(L, buf);
    lua_concat(L, 2);
    return lua_error(L);
}

/* The key under which table t (at the top of the stack) or one of its table
 * fields holds the function at index fn; NULL when none. The string stays alive
 * in the table. */
static const char *key_of(lua_State *L, int fn, int depth) {
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            if (lua_rawequal(L, -1, fn)) {
                const char *k = lua_tostring(L, -2);
                lua_pop(L, 2);
                return k;
            }
            if (depth > 0 && lua_type(L, -1) == LUA_TTABLE) {
                const char *k = key_of(L, fn, depth - 1);
                if (k) {
                    lua_pop(L, 2);
                    return k;
                }
            }
        }
        lua_pop(L, 1);
    }
    return NULL;
}

/* The name of the C function running at level 0 ("?" when none is found). A
 * function reached through a tail call has no name from its call site: it is
 * then looked up by value in the core module and its tables (such as _loss, the
 * C side of ml.F), as luaL_argerror looks in the loaded modules. */
static const char *called_name(lua_State *L) {
    lua_Debug ar;
    const char *fname = "?";
    if (!lua_getstack(L, 0, &ar)) return fname;
    lua_getinfo(L, "nf", &ar);
    int fn = lua_gettop(L);
    if (ar.name) {
        fname = ar.name;
    } else if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE &&
               lua_getfield(L, -1, "moonlight.core") == LUA_TTABLE) {
        const char *k = key_of(L, fn, 1);
        if (k) fname = k + (k[0] == '_'); /* _loss's entries: their public names */
    }
    /* the strings live on in the registry's tables: safe to pop */
    lua_settop(L, fn - 1);
    return fname;
}

/* What a Lua table where a tensor belongs most likely means, to follow "got
 * table" in a message; "" for other types. */
static const char *got_hint(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TTABLE ? " (a Lua table: make it a tensor with ml.tensor(...))" : "";
}

/* The tensor metatable is also kept in the registry under this address: a light
 * userdata key, where luaL_testudata/luaL_setmetatable look the name string up
 * (hashing and comparing it) for every tensor argument and result. */
static const char tensor_mt_key;

void ml_lua_cache_tensor_metatable(lua_State *L, int mt) {
    lua_pushvalue(L, mt);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tensor_mt_key);
}

static void push_tensor_metatable(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &tensor_mt_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        luaL_getmetatable(L, ML_TENSOR_MT);
    }
}

int ml_lua_push_tensor(lua_State *L, ml_tensor *t) {
    if (!t) return ml_lua_error(L);
    ml_tensor **ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = t;
    push_tensor_metatable(L);
    lua_setmetatable(L, -2);
    account_tensor_bytes(L, t->storage->nbytes + sizeof(ml_tensor) + sizeof(ml_storage));
    return 1;
}

ml_tensor *ml_lua_test_tensor(lua_State *L, int idx) {
    ml_tensor **ud = lua_touserdata(L, idx);
    if (!ud || !lua_getmetatable(L, idx)) return NULL;
    push_tensor_metatable(L);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? *ud : NULL;
}

ml_tensor *ml_lua_check_tensor(lua_State *L, int idx) {
    ml_tensor *t = ml_lua_test_tensor(L, idx);
    if (!t) {
        const char *fname = called_name(L);
        ml_lua_errorf(L, "%s: argument %d must be a tensor, got %s%s", fname, idx,
                      luaL_typename(L, idx), got_hint(L, idx));
    }
    return t;
}

ml_tensor *ml_lua_tensor_or_number(lua_State *L, int idx, const ml_tensor *like) {
    ml_tensor *t = ml_lua_test_tensor(L, idx);
    if (t) return ml_tensor_retain(t);
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        t = ml_scalar(lua_toboolean(L, idx), like ? like->dtype : ML_F32, like ? like->storage->device : ML_CPU);
    } else if (lua_type(L, idx) == LUA_TNUMBER && like && like->dtype == ML_I64 && lua_isinteger(L, idx)) {
        /* exact: an int64 tensor's operand beyond 2^53 would be rounded as a double */
        t = ml_full_int(ML_I64, like->storage->device, 0, NULL, lua_tointeger(L, idx));
    } else if (lua_type(L, idx) == LUA_TNUMBER) {
        double v = lua_tonumber(L, idx);
        ml_dtype dt = like ? like->dtype : ML_F32;
        if (!ml_dtype_is_float(dt) && (!lua_isinteger(L, idx) && v != floor(v))) dt = ML_F32;
        t = ml_scalar(v, dt, like ? like->storage->device : ML_CPU);
    } else {
        const char *fname = called_name(L);
        ml_lua_errorf(L, "%s: argument %d must be a tensor or a number, got %s%s", fname, idx,
                      luaL_typename(L, idx), got_hint(L, idx));
    }
    if (!t) ml_lua_error(L);
    return t;
}

int ml_lua_check_dim(lua_State *L, int idx, int ndim, const char *fname) {
    lua_Integer d = luaL_checkinteger(L, idx);
    int n = ndim > 0 ? ndim : 1; /* a 0-dim tensor accepts dim 1 / -1 as torch */
    if (d == 0 || d > n || d < -n)
        return ml_lua_errorf(L, "%s: dim %d out of range for a %d-dim tensor (expected 1..%d or "
                          "-%d..-1; dims are 1-based)", fname, (int)d, ndim, n, n);
    return d > 0 ? (int)d - 1 : (int)(d + n);
}

int ml_lua_opt_dim(lua_State *L, int idx, int ndim, const char *fname, int def) {
    if (lua_isnoneornil(L, idx)) return def;
    return ml_lua_check_dim(L, idx, ndim, fname);
}

int ml_lua_check_shape(lua_State *L, int idx, int64_t *shape, const char *fname) {
    int n = 0;
    if (lua_istable(L, idx) && !ml_lua_test_tensor(L, idx)) {
        n = (int)luaL_len(L, idx);
        if (n > ML_MAX_DIMS) return ml_lua_errorf(L, "%s: %d dims given, at most %d", fname, n, ML_MAX_DIMS);
        for (int i = 0; i < n; i++) {
            lua_geti(L, idx, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok) return ml_lua_errorf(L, "%s: size %d of the shape must be an integer, got %s",
                                       fname, i + 1, luaL_typename(L, -1));
            shape[i] = v;
            lua_pop(L, 1);
        }
        return n;
    }
    while (lua_type(L, idx + n) == LUA_TNUMBER) {
        if (n >= ML_MAX_DIMS) return ml_lua_errorf(L, "%s: at most %d dims", fname, ML_MAX_DIMS);
        int ok;
        lua_Integer v = lua_tointegerx(L, idx + n, &ok);
        if (!ok) return ml_lua_errorf(L, "%s: sizes must be integers", fname);
        shape[n++] = v;
    }
    if (n == 0 && !lua_isnoneornil(L, idx))
        return ml_lua_errorf(L, "%s: expected a shape (a table of sizes or sizes as numbers), got %s",
                          fname, luaL_typename(L, idx));
    return n;
}

/* The type name an option message shows: "tensor" for a tensor (Lua's is "userdata"). */
static const char *opt_typename(lua_State *L, int idx) {
    return ml_lua_test_tensor(L, idx) ? "tensor" : luaL_typename(L, idx);
}

void ml_lua_check_options(lua_State *L, int idx, const char *fname, const char *const *allowed) {
    if (lua_isnoneornil(L, idx)) return;
    if (!lua_istable(L, idx))
        ml_lua_errorf(L, "%s: options must be a table, got %s", fname, opt_typename(L, idx));
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            ml_lua_errorf(L, "%s: option names must be strings, got %s", fname, luaL_typename(L, -1));
        const char *k = lua_tostring(L, -1);
        bool ok = false;
        for (int i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0) ok = true;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; allowed[i]; i++) {
                if (i) luaL_addstring(&b, ", ");
                luaL_addstring(&b, allowed[i]);
            }
            luaL_pushresult(&b);
            ml_lua_errorf(L, "%s: unknown option '%s' (expected one of: %s)", fname, k, lua_tostring(L, -1));
        }
    }
}

/* Pushes opts[key] (nil when no options). */
static int get_opt(lua_State *L, int idx, const char *key) {
    if (!lua_istable(L, idx)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, idx, key);
}

static void opt_type_error(lua_State *L, const char *fname, const char *key, const char *expected) {
    ml_lua_errorf(L, "%s: option '%s' must be %s, got %s", fname, key, expected, opt_typename(L, -1));
}

double ml_lua_opt_number(lua_State *L, int idx, const char *key, const char *fname, double def) {
    int t = get_opt(L, idx, key);
    double v = def;
    if (t == LUA_TNUMBER) v = lua_tonumber(L, -1);
    else if (t != LUA_TNIL) opt_type_error(L, fname, key, "a number");
    lua_pop(L, 1);
    return v;
}

int ml_lua_opt_integer(lua_State *L, int idx, const char *key, const char *fname, int def) {
    int t = get_opt(L, idx, key);
    int v = def;
    if (t == LUA_TNUMBER && lua_isinteger(L, -1)) v = (int)lua_tointeger(L, -1);
    else if (t == LUA_TNUMBER && lua_tonumber(L, -1) == floor(lua_tonumber(L, -1))) v = (int)lua_tonumber(L, -1);
    else if (t != LUA_TNIL) opt_type_error(L, fname, key, "an integer");
    lua_pop(L, 1);
    return v;
}

int ml_lua_opt_bool(lua_State *L, int idx, const char *key, const char *fname, int def) {
    int t = get_opt(L, idx, key);
    int v = def;
    if (t == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL) opt_type_error(L, fname, key, "a boolean");
    lua_pop(L, 1);
    return v;
}

const char *ml_lua_opt_string(lua_State *L, int idx, const char *key, const char *fname, const char *def) {
    int t = get_opt(L, idx, key);
    const char *v = def;
    /* the string stays alive: it is referenced from the options table */
    if (t == LUA_TSTRING) v = lua_tostring(L, -1);
    else if (t != LUA_TNIL) opt_type_error(L, fname, key, "a string");
    lua_pop(L, 1);
    return v;
}

ml_tensor *ml_lua_opt_tensor(lua_State *L, int idx, const char *key, const char *fname) {
    int t = get_opt(L, idx, key);
    ml_tensor *v = NULL;
    if (t != LUA_TNIL) {
        v = ml_lua_test_tensor(L, -1);
        if (!v) opt_type_error(L, fname, key, "a tensor");
    }
    lua_pop(L, 1);
    return v;
}

ml_dtype ml_lua_opt_dtype(lua_State *L, int idx, const char *fname, ml_dtype def) {
    const char *name = ml_lua_opt_string(L, idx, "dtype", fname, NULL);
    if (!name) return def;
    int dt = ml_dtype_from_name(name);
    if (dt < 0)
        ml_lua_errorf(L, "%s: unknown dtype '%s' (expected float32, float64, int64 or uint8)", fname, name);
    return (ml_dtype)dt;
}

ml_device ml_lua_opt_device(lua_State *L, int idx, const char *fname, ml_device def) {
    const char *name = ml_lua_opt_string(L, idx, "device", fname, NULL);
    if (!name) return def;
    int dev = ml_device_from_name(name);
    if (dev < 0) ml_lua_errorf(L, "%s: unknown device '%s' (expected \"cpu\" or \"cuda\")", fname, name);
    return (ml_device)dev;
}

void ml_lua_setfuncs(lua_State *L, int t, const luaL_Reg *funcs) {
    t = lua_absindex(L, t);
    for (; funcs->name; funcs++) {
        lua_pushcfunction(L, funcs->func);
        lua_setfield(L, t, funcs->name);
    }
}

/* --- convolution and pooling options (issue 16) --- */

int ml_lua_opt_pair(lua_State *L, int idx, const char *key, const char *fname, int count,
                    int64_t def, int64_t out[2]) {
    out[0] = out[1] = def;
    const int t = get_opt(L, idx, key);
    int rc = 0;
    if (t == LUA_TNIL) rc = 0;
    else if (t == LUA_TNUMBER && lua_isinteger(L, -1)) out[0] = out[1] = lua_tointeger(L, -1);
    else if (t == LUA_TTABLE && lua_rawlen(L, -1) == (lua_Unsigned)count) {
        for (int i = 0; i < count; i++) {
            lua_rawgeti(L, -1, i + 1);
            if (!lua_isinteger(L, -1)) rc = -1;
            else out[2 - count + i] = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
    } else if (t == LUA_TSTRING) rc = 1;
    else rc = -1;
    if (rc < 0)
        ml_lua_errorf(L, "%s: option '%s' must be an integer or a table of %d integers (%s), got %s", fname,
                      key, count, count == 2 ? "{h, w}" : "{n}", luaL_typename(L, -1));
    if (rc == 0) lua_pop(L, 1); /* a string stays on the stack for the caller */
    return rc;
}
