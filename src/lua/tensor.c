/* The Tensor userdata: creation from Lua values, fields, indexing, conversion,
 * views, printing. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../autograd.h"
#include "../error.h"
#include "../ops.h"
#include "binding.h"

static const char *const creation_opts[] = {"dtype", "device", "requires_grad", NULL};
/* rand and randn also take torch's generator */
static const char *const random_opts[] = {"dtype", "device", "requires_grad", "generator", NULL};

/* --- building a tensor from nested Lua tables --- */

/* Finds the shape of a nested table by walking its first elements. */
static int nested_shape(lua_State *L, int idx, int64_t *shape) {
    int ndim = 0;
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1) && !ml_lua_test_tensor(L, -1)) {
        if (ndim >= ML_MAX_DIMS) ml_lua_errorf(L, "tensor: nested deeper than %d dims", ML_MAX_DIMS);
        shape[ndim++] = (int64_t)luaL_len(L, -1);
        if (shape[ndim - 1] == 0) break;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return ndim;
}

/* Element idx as a double (floating-point tensors). */
static void put_float(lua_State *L, int idx, void *out, int64_t pos) {
    int ok;
    double v;
    if (lua_isboolean(L, idx)) {
        v = lua_toboolean(L, idx);
        ok = 1;
    } else {
        v = lua_tonumberx(L, idx, &ok);
    }
    if (!ok) ml_lua_errorf(L, "tensor: element %lld is %s, expected a number", (long long)pos + 1,
                           luaL_typename(L, idx));
    ((double *)out)[pos] = v;
}

/* Element idx as an int64, exactly: a Lua integer as it is (a double held only 53
 * bits, so 2^53 + 1 became 2^53), a float truncated toward zero as a cast does,
 * but only when it is finite and within int64 (casting NaN or 1e300 is undefined
 * in C); with is_u8, the value must fit uint8 (torch refuses an overflow too). */
static int64_t to_exact_int(lua_State *L, int idx, int64_t pos, bool is_u8, const char *fname) {
    char what[48];
    if (pos >= 0) snprintf(what, sizeof what, "element %lld", (long long)pos + 1);
    else snprintf(what, sizeof what, "the value");
    int64_t v;
    if (lua_isboolean(L, idx)) {
        v = lua_toboolean(L, idx);
    } else if (lua_isinteger(L, idx)) {
        v = (int64_t)lua_tointeger(L, idx);
    } else {
        int ok;
        double d = lua_tonumberx(L, idx, &ok);
        if (!ok) ml_lua_errorf(L, "%s: %s is %s, expected a number", fname, what, luaL_typename(L, idx));
        /* [-2^63, 2^63): what truncates into int64; NaN fails both */
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
            char num[32];
            if (isnan(d)) snprintf(num, sizeof num, "nan");
            else snprintf(num, sizeof num, "%.17g", d); /* inf, -inf, 1e+300 */
            ml_lua_errorf(L, "%s: %s (%s) cannot be converted to %s", fname, what, num,
                          is_u8 ? "uint8" : "int64");
        }
        v = (int64_t)d;
    }
    if (is_u8 && (v < 0 || v > 255))
        ml_lua_errorf(L, "%s: %s (%lld) is outside uint8's range 0..255", fname, what, (long long)v);
    return v;
}

static void put_int64(lua_State *L, int idx, void *out, int64_t pos) {
    ((int64_t *)out)[pos] = to_exact_int(L, idx, pos, false, "tensor");
}

static void put_uint8(lua_State *L, int idx, void *out, int64_t pos) {
    ((uint8_t *)out)[pos] = (uint8_t)to_exact_int(L, idx, pos, true, "tensor");
}

typedef void (*put_fn)(lua_State *L, int idx, void *out, int64_t pos);

static void fill_nested(lua_State *L, int idx, int depth, int ndim, const int64_t *shape,
                        put_fn put, void *out, int64_t *pos) {
    if (depth == ndim) {
        put(L, idx, out, *pos);
        (*pos)++;
        return;
    }
    if (!lua_istable(L, idx) || (int64_t)luaL_len(L, idx) != shape[depth]) {
        ml_lua_errorf(L, "tensor: ragged nested table: expected %lld elements at depth %d, got %s",
                   (long long)shape[depth], depth + 1,
                   lua_istable(L, idx) ? "a different count" : luaL_typename(L, idx));
    }
    for (int64_t i = 0; i < shape[depth]; i++) {
        lua_geti(L, idx, i + 1);
        fill_nested(L, lua_absindex(L, -1), depth + 1, ndim, shape, put, out, pos);
        lua_pop(L, 1);
    }
}

static int set_requires_grad(lua_State *L, ml_tensor *t, int on, const char *fname) {
    if (on && !ml_dtype_is_float(t->dtype))
        return ml_lua_errorf(L, "%s: only floating point tensors can require grad, got %s", fname,
                          ml_dtype_name(t->dtype));
    if (!on && t->grad_fn)
        return ml_lua_errorf(L, "%s: requires_grad can only be cleared on a leaf tensor (use "
                          ":detach())", fname);
    t->requires_grad = on;
    return 0;
}

/* Applies the device/requires_grad options (opts: an absolute index) to a fresh
 * host tensor, taking over the reference. t is on the Lua stack before an option
 * is read, so that a bad option's error does not leak it. */
static int finish_creation(lua_State *L, ml_tensor *t, int opts, const char *fname) {
    if (!t) return ml_lua_error_in(L, fname);
    ml_lua_push_tensor(L, t); /* Lua owns it now: an option error below cannot leak it */
    ml_device dev = ml_lua_opt_device(L, opts, fname, ML_CPU);
    int rg = ml_lua_opt_bool(L, opts, "requires_grad", fname, 0);
    if (dev != t->storage->device) {
        ml_tensor *d = ml_to_device(t, dev);
        if (!d) return ml_lua_error_in(L, fname);
        lua_pop(L, 1);
        ml_lua_push_tensor(L, d);
        t = d;
    }
    if (rg) set_requires_grad(L, t, 1, fname);
    return 1;
}

static int l_tensor(lua_State *L) {
    ml_lua_check_options(L, 2, "tensor", creation_opts);
    ml_dtype dt = ml_lua_opt_dtype(L, 2, "tensor", ML_F32);
    ml_tensor *src = ml_lua_test_tensor(L, 1);
    if (src) {
        ml_tensor *c = ml_cast(src, dt);
        ml_tensor *copy = c ? ml_contiguous_copy(c) : NULL;
        ml_tensor_release(c);
        return finish_creation(L, copy, 2, "tensor");
    }
    int64_t shape[ML_MAX_DIMS];
    int ndim = 0;
    if (lua_istable(L, 1)) ndim = nested_shape(L, 1, shape);
    else if (!lua_isnumber(L, 1) && !lua_isboolean(L, 1))
        return ml_lua_errorf(L, "tensor: expected a number, a nested table of numbers or a tensor, got %s",
                          luaL_typename(L, 1));
    /* Filled in the dtype's own kind: integers exactly (int64 / uint8), floats
     * through float64 as torch.tensor does, then cast. */
    ml_dtype fill_dt = dt == ML_U8 ? ML_U8 : dt == ML_I64 ? ML_I64 : ML_F64;
    put_fn put = dt == ML_U8 ? put_uint8 : dt == ML_I64 ? put_int64 : put_float;
    ml_tensor *filled = ml_tensor_empty(fill_dt, ML_CPU, ndim, shape);
    if (!filled) return ml_lua_error_in(L, "tensor");
    /* park it on the stack so a ragged-table error does not leak it */
    ml_lua_push_tensor(L, filled);
    int64_t pos = 0;
    if (ml_numel(filled) > 0) fill_nested(L, 1, 0, ndim, shape, put, ml_data(filled), &pos);
    ml_tensor *t = ml_cast(filled, dt);
    if (t == filled) { /* the dtype filled: give a tensor of its own */
        ml_tensor_release(t);
        t = ml_contiguous_copy(filled);
    }
    return finish_creation(L, t, 2, "tensor");
}

/* zeros(shape, opts), ones, full(shape, value, opts), rand, randn */
static int creation_common(lua_State *L, const char *fname, int kind) {
    int64_t shape[ML_MAX_DIMS];
    int ndim = ml_lua_check_shape(L, 1, shape, fname);
    int next = lua_istable(L, 1) ? 2 : 1 + ndim;
    double value = 0;
    int value_idx = 0;
    if (kind == 2) { /* full */
        value_idx = next;
        value = luaL_checknumber(L, next);
        next++;
    }
    ml_lua_check_options(L, next, fname, kind >= 3 ? random_opts : creation_opts);
    ml_dtype dt = ml_lua_opt_dtype(L, next, fname, ML_F32);
    ml_generator *g = kind >= 3 ? ml_lua_opt_generator(L, next, fname) : NULL;
    if (!g) g = ml_default_generator();
    ml_tensor *t;
    if (kind == 3) t = ml_rand_from(g, dt, ML_CPU, ndim, shape, 0, 1);
    else if (kind == 4) t = ml_randn_from(g, dt, ML_CPU, ndim, shape, 0, 1);
    else if (value_idx && !ml_dtype_is_float(dt)) /* exact, and checked for uint8 */
        t = ml_full_int(dt, ML_CPU, ndim, shape,
                        to_exact_int(L, value_idx, -1, dt == ML_U8, fname));
    else t = ml_full(dt, ML_CPU, ndim, shape, kind == 1 ? 1.0 : value);
    return finish_creation(L, t, next, fname);
}

static int l_zeros(lua_State *L) { return creation_common(L, "zeros", 0); }
static int l_ones(lua_State *L) { return creation_common(L, "ones", 1); }
static int l_full(lua_State *L) { return creation_common(L, "full", 2); }
static int l_rand(lua_State *L) { return creation_common(L, "rand", 3); }
static int l_randn(lua_State *L) { return creation_common(L, "randn", 4); }

static int like_common(lua_State *L, double v) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    return ml_lua_push_tensor(L, ml_full_like(t, v));
}
static int l_zeros_like(lua_State *L) { return like_common(L, 0); }
static int l_ones_like(lua_State *L) { return like_common(L, 1); }

static int l_eye(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    lua_Integer m = lua_isinteger(L, 2) ? lua_tointeger(L, 2) : n;
    int opts = lua_isinteger(L, 2) ? 3 : 2;
    ml_lua_check_options(L, opts, "eye", creation_opts);
    ml_dtype dt = ml_lua_opt_dtype(L, opts, "eye", ML_F32);
    return finish_creation(L, ml_eye(dt, ML_CPU, n, m), opts, "eye");
}

/* arange(end) / arange(start, end [, step]) [, opts] */
static int l_arange(lua_State *L) {
    int nnum = 0;
    while (nnum < 3 && lua_type(L, nnum + 1) == LUA_TNUMBER) nnum++;
    if (nnum == 0) return ml_lua_errorf(L, "arange: expected arange(end) or arange(start, end [, step])");
    double start = 0, end, step = 1;
    if (nnum == 1) end = lua_tonumber(L, 1);
    else {
        start = lua_tonumber(L, 1);
        end = lua_tonumber(L, 2);
        if (nnum == 3) step = lua_tonumber(L, 3);
    }
    ml_lua_check_options(L, nnum + 1, "arange", creation_opts);
    ml_dtype dt = ml_lua_opt_dtype(L, nnum + 1, "arange", ML_F32);
    return finish_creation(L, ml_arange(start, end, step, dt, ML_CPU), nnum + 1, "arange");
}

/* randperm(n [, {generator = g}]) */
static int l_randperm(lua_State *L) {
    static const char *const opts[] = {"generator", NULL};
    lua_Integer n = luaL_checkinteger(L, 1);
    ml_lua_check_options(L, 2, "randperm", opts);
    ml_generator *g = ml_lua_opt_generator(L, 2, "randperm");
    return ml_lua_push_tensor(L, ml_randperm_from(g ? g : ml_default_generator(), n));
}

static int l_manual_seed(lua_State *L) {
    lua_Integer s = luaL_checkinteger(L, 1);
    ml_manual_seed((uint64_t)s);
    return 0;
}

static int l_initial_seed(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)ml_default_generator()->seed);
    return 1;
}

/* The generator's state as a string (for checkpoints) and back. */
static int l_get_rng_state(lua_State *L) {
    ml_generator *g = ml_default_generator();
    lua_pushlstring(L, (const char *)g, sizeof *g);
    return 1;
}

static int l_set_rng_state(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    if (n != sizeof(ml_generator))
        return ml_lua_errorf(L, "set_rng_state: expected a state of %d bytes from get_rng_state, got %d",
                          (int)sizeof(ml_generator), (int)n);
    memcpy(ml_default_generator(), s, n);
    return 0;
}

/* --- fields and metamethods --- */

static int l_gc(lua_State *L) {
    ml_tensor **ud = luaL_checkudata(L, 1, ML_TENSOR_MT);
    ml_tensor_release(*ud);
    *ud = NULL;
    return 0;
}

static int push_shape(lua_State *L, const ml_tensor *t) {
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_shape(lua_State *L) { return push_shape(L, ml_lua_check_tensor(L, 1)); }

static int l_size(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) return push_shape(L, t);
    int d = ml_lua_check_dim(L, 2, t->ndim, "size");
    lua_pushinteger(L, t->ndim ? t->shape[d] : 1);
    return 1;
}

static int l_stride(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_createtable(L, t->ndim, 0);
        for (int i = 0; i < t->ndim; i++) {
            lua_pushinteger(L, t->strides[i]);
            lua_rawseti(L, -2, i + 1);
        }
        return 1;
    }
    int d = ml_lua_check_dim(L, 2, t->ndim, "stride");
    lua_pushinteger(L, t->ndim ? t->strides[d] : 1);
    return 1;
}

static int l_dim(lua_State *L) {
    lua_pushinteger(L, ml_lua_check_tensor(L, 1)->ndim);
    return 1;
}

static int l_numel(lua_State *L) {
    lua_pushinteger(L, ml_numel(ml_lua_check_tensor(L, 1)));
    return 1;
}

static int l_len(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    if (t->ndim == 0) return ml_lua_errorf(L, "len: a 0-dim tensor has no length (use :item())");
    lua_pushinteger(L, t->shape[0]);
    return 1;
}

/* Reads element k (row-major over the view) of a host tensor as a Lua value. */
static void push_element(lua_State *L, const ml_tensor *t, const int64_t *idx) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += idx[i] * t->strides[i];
    const char *base = (const char *)ml_data(t);
    switch (t->dtype) {
    case ML_F32: lua_pushnumber(L, ((const float *)base)[off]); break;
    case ML_F64: lua_pushnumber(L, ((const double *)base)[off]); break;
    case ML_I64: lua_pushinteger(L, ((const int64_t *)base)[off]); break;
    case ML_U8: lua_pushinteger(L, ((const uint8_t *)base)[off]); break;
    default: lua_pushnil(L);
    }
}

/* A host copy of t when it lives on a device (synchronises), else t retained. */
static ml_tensor *host_view(lua_State *L, ml_tensor *t) {
    if (t->storage->device == ML_CPU) return ml_tensor_retain(t);
    bool was = ml_grad_enabled();
    ml_set_grad_enabled(false);
    ml_tensor *h = ml_to_device(t, ML_CPU);
    ml_set_grad_enabled(was);
    if (!h) ml_lua_error(L);
    return h;
}

static int l_item(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    if (ml_numel(t) != 1) {
        char a[ML_SHAPE_STR_MAX];
        return ml_lua_errorf(L, "item: a tensor with %lld elements (shape %s) cannot be converted to "
                          "a number; it needs exactly one", (long long)ml_numel(t),
                          ml_shape_str(t->ndim, t->shape, a, sizeof a));
    }
    ml_tensor *h = host_view(L, t);
    int64_t idx[ML_MAX_DIMS] = {0};
    push_element(L, h, idx);
    ml_tensor_release(h);
    return 1;
}

static void push_nested(lua_State *L, const ml_tensor *t, int depth, int64_t *idx) {
    if (depth == t->ndim) {
        push_element(L, t, idx);
        return;
    }
    lua_createtable(L, (int)t->shape[depth], 0); /* <= INT_MAX: l_totable checked */
    for (int64_t i = 0; i < t->shape[depth]; i++) {
        idx[depth] = i;
        push_nested(L, t, depth + 1, idx);
        lua_rawseti(L, -2, i + 1);
    }
}

/* totable(): nested Lua tables. Refused when it would make more Lua values (the
 * tables of every level and the numbers) than Lua can index, 2^31 - 1: a shape
 * such as [2^40, 0] has no element but would make 2^40 empty tables. */
static int l_totable(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int64_t count = 0, level = 1;
    for (int d = 0; d < t->ndim && count <= INT32_MAX; d++) {
        if (!ml_mul_size(level, t->shape[d], &level)) level = INT64_MAX;
        count = level > INT64_MAX - count ? INT64_MAX : count + level;
    }
    if (count > INT32_MAX) {
        char a[ML_SHAPE_STR_MAX];
        return ml_lua_errorf(L, "totable: a tensor of shape %s makes more Lua tables and numbers "
                             "than Lua can index (2^31 - 1)", ml_shape_str(t->ndim, t->shape, a, sizeof a));
    }
    ml_tensor *h = host_view(L, t);
    ml_lua_push_tensor(L, h); /* owned by the stack: a memory error below cannot leak it */
    int64_t idx[ML_MAX_DIMS] = {0};
    push_nested(L, h, 0, idx);
    return 1;
}

/* --- printing, in PyTorch's style --- */

static void format_value(const ml_tensor *t, const int64_t *idx, char *buf, size_t n) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += idx[i] * t->strides[i];
    const char *base = (const char *)ml_data(t);
    switch (t->dtype) {
    case ML_F32: snprintf(buf, n, "%.4f", ((const float *)base)[off]); break;
    case ML_F64: snprintf(buf, n, "%.4f", ((const double *)base)[off]); break;
    case ML_I64: snprintf(buf, n, "%lld", (long long)((const int64_t *)base)[off]); break;
    case ML_U8: snprintf(buf, n, "%d", ((const uint8_t *)base)[off]); break;
    default: buf[0] = 0;
    }
}

static void print_nested(luaL_Buffer *b, const ml_tensor *t, int depth, int64_t *idx, int indent) {
    char buf[64];
    if (depth == t->ndim) {
        format_value(t, idx, buf, sizeof buf);
        luaL_addstring(b, buf);
        return;
    }
    luaL_addchar(b, '[');
    int64_t n = t->shape[depth];
    bool elide = n > 6;
    for (int64_t i = 0; i < n; i++) {
        if (elide && i == 3) {
            luaL_addstring(b, depth == t->ndim - 1 ? "..., " : "...,\n");
            if (depth != t->ndim - 1)
                for (int k = 0; k < indent + depth + 1; k++) luaL_addchar(b, ' ');
            i = n - 3;
        }
        idx[depth] = i;
        print_nested(b, t, depth + 1, idx, indent);
        if (i + 1 < n) {
            if (depth == t->ndim - 1) luaL_addstring(b, ", ");
            else {
                luaL_addstring(b, ",");
                for (int k = depth + 1; k < t->ndim; k++) luaL_addchar(b, '\n');
                for (int k = 0; k < indent + depth + 1; k++) luaL_addchar(b, ' ');
            }
        }
    }
    luaL_addchar(b, ']');
}

static int l_tostring(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    ml_tensor *h = host_view(L, t);
    ml_lua_push_tensor(L, h); /* owned by the stack: a memory error below cannot leak it */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "tensor(");
    int64_t idx[ML_MAX_DIMS] = {0};
    print_nested(&b, h, 0, idx, 7);
    if (t->dtype != ML_F32) {
        luaL_addstring(&b, ", dtype=");
        luaL_addstring(&b, ml_dtype_name(t->dtype));
    }
    if (t->storage->device != ML_CPU) luaL_addstring(&b, ", device='cuda:0'");
    if (t->grad_fn) {
        luaL_addstring(&b, ", grad_fn=<");
        luaL_addstring(&b, t->grad_fn->name);
        luaL_addstring(&b, ">");
    } else if (t->requires_grad) {
        luaL_addstring(&b, ", requires_grad=True");
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

/* --- conversion and copies --- */

static int cast_to(lua_State *L, ml_dtype dt) {
    return ml_lua_push_tensor(L, ml_cast(ml_lua_check_tensor(L, 1), dt));
}
static int l_float(lua_State *L) { return cast_to(L, ML_F32); }
static int l_double(lua_State *L) { return cast_to(L, ML_F64); }
static int l_long(lua_State *L) { return cast_to(L, ML_I64); }
static int l_byte(lua_State *L) { return cast_to(L, ML_U8); }

/* to("cuda"), to("float64"), to({device =, dtype =}), to(other_tensor) */
static int l_to(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    ml_tensor *like = ml_lua_test_tensor(L, 2);
    int dev = t->storage->device, dt = t->dtype;
    if (like) {
        dev = like->storage->device;
        dt = like->dtype;
    } else if (lua_type(L, 2) == LUA_TSTRING) {
        const char *s = lua_tostring(L, 2);
        int d = ml_device_from_name(s), ty = ml_dtype_from_name(s);
        if (d >= 0) dev = d;
        else if (ty >= 0) dt = ty;
        else return ml_lua_errorf(L, "to: '%s' is neither a device (cpu, cuda) nor a dtype", s);
    } else if (lua_istable(L, 2)) {
        static const char *const allowed[] = {"device", "dtype", NULL};
        ml_lua_check_options(L, 2, "to", allowed);
        dev = ml_lua_opt_device(L, 2, "to", (ml_device)dev);
        dt = ml_lua_opt_dtype(L, 2, "to", (ml_dtype)dt);
    } else {
        return ml_lua_errorf(L, "to: expected a device name, a dtype name, a tensor or an options table");
    }
    ml_tensor *moved = ml_to_device(t, (ml_device)dev);
    if (!moved) return ml_lua_error(L);
    ml_tensor *cast = ml_cast(moved, (ml_dtype)dt);
    ml_tensor_release(moved);
    return ml_lua_push_tensor(L, cast);
}

static int l_cuda(lua_State *L) {
    return ml_lua_push_tensor(L, ml_to_device(ml_lua_check_tensor(L, 1), ML_CUDA));
}
static int l_cpu(lua_State *L) {
    return ml_lua_push_tensor(L, ml_to_device(ml_lua_check_tensor(L, 1), ML_CPU));
}

static int l_clone(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    /* a differentiable copy: contiguous() of a transposed alias would not copy */
    ml_tensor *c = ml_contiguous_copy(t);
    if (c && ml_needs_graph(1, &t)) {
        ml_tensor *z = ml_zeros_like(c);
        ml_tensor *s = z ? ml_add(t, z) : NULL; /* add records the graph */
        ml_tensor_release(z);
        ml_tensor_release(c);
        c = s;
    }
    return ml_lua_push_tensor(L, c);
}

static int l_contiguous(lua_State *L) {
    return ml_lua_push_tensor(L, ml_contiguous(ml_lua_check_tensor(L, 1)));
}

static int l_is_contiguous(lua_State *L) {
    lua_pushboolean(L, ml_is_contiguous(ml_lua_check_tensor(L, 1)));
    return 1;
}

/* In-place ops change data autograd may have saved; refuse them on tensors that
 * take part in a graph, as torch does for leaves that require grad. */
static void check_inplace(lua_State *L, ml_tensor *t, const char *fname) {
    if (ml_grad_enabled() && t->requires_grad)
        ml_lua_errorf(L, "%s: a tensor that requires grad cannot be modified in place outside "
                   "ml.no_grad", fname);
}

static int l_fill_(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    check_inplace(L, t, "fill_");
    double v = luaL_checknumber(L, 2);
    if (t->dtype == ML_I64 && lua_isinteger(L, 2)) { /* exact beyond 2^53 */
        ml_tensor *s = ml_full_int(ML_I64, t->storage->device, 0, NULL, lua_tointeger(L, 2));
        int rc = s ? ml_copy_(t, s) : -1;
        ml_tensor_release(s);
        if (rc) return ml_lua_error_in(L, "fill_");
    } else if (ml_fill_(t, v)) {
        return ml_lua_error_in(L, "fill_");
    }
    lua_settop(L, 1);
    return 1;
}

static int l_zero_(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    check_inplace(L, t, "zero_");
    if (ml_fill_(t, 0)) return ml_lua_error(L);
    lua_settop(L, 1);
    return 1;
}

static int l_copy_(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    check_inplace(L, t, "copy_");
    ml_tensor *src = ml_lua_tensor_or_number(L, 2, t);
    int rc = ml_copy_(t, src);
    ml_tensor_release(src);
    if (rc) return ml_lua_error(L);
    lua_settop(L, 1);
    return 1;
}

/* add_(other [, alpha]) : t += alpha * other */
static int l_add_(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    check_inplace(L, t, "add_");
    double alpha = luaL_optnumber(L, 3, 1.0);
    ml_tensor *src = ml_lua_tensor_or_number(L, 2, t);
    ml_tensor *scaled = alpha == 1.0 ? ml_tensor_retain(src) : ml_mul_scalar(src, alpha);
    ml_tensor_release(src);
    int rc = scaled ? ml_add_inplace(t, scaled) : -1;
    ml_tensor_release(scaled);
    if (rc) return ml_lua_error(L);
    lua_settop(L, 1);
    return 1;
}

static int l_requires_grad_(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    set_requires_grad(L, t, lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2), "requires_grad_");
    lua_settop(L, 1);
    return 1;
}

/* --- views --- */

static int l_view_common(lua_State *L, bool copy_ok) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int64_t shape[ML_MAX_DIMS];
    int ndim = ml_lua_check_shape(L, 2, shape, copy_ok ? "reshape" : "view");
    return ml_lua_push_tensor(L, copy_ok ? ml_reshape(t, ndim, shape) : ml_view(t, ndim, shape));
}
static int l_view(lua_State *L) { return l_view_common(L, false); }
static int l_reshape(lua_State *L) { return l_view_common(L, true); }

static int l_t(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    if (t->ndim > 2) return ml_lua_errorf(L, "t: expects a tensor with at most 2 dims, got %d (use transpose)", t->ndim);
    if (t->ndim < 2) return ml_lua_push_tensor(L, ml_tensor_retain(t));
    return ml_lua_push_tensor(L, ml_transpose(t, 0, 1));
}

static int l_transpose(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int a = ml_lua_check_dim(L, 2, t->ndim, "transpose"), b = ml_lua_check_dim(L, 3, t->ndim, "transpose");
    return ml_lua_push_tensor(L, ml_transpose(t, a, b));
}

static int l_permute(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int64_t dims64[ML_MAX_DIMS];
    int n = ml_lua_check_shape(L, 2, dims64, "permute");
    if (n != t->ndim) return ml_lua_errorf(L, "permute: %d dims given for a %d-dim tensor", n, t->ndim);
    int dims[ML_MAX_DIMS];
    for (int i = 0; i < n; i++) {
        int64_t d = dims64[i];
        if (d == 0 || d > n || d < -n) return ml_lua_errorf(L, "permute: dim %d out of range (1-based)", (int)d);
        dims[i] = d > 0 ? (int)d - 1 : (int)(d + n);
    }
    return ml_lua_push_tensor(L, ml_permute(t, dims));
}

/* narrow(dim, start, length), start 1-based */
static int l_narrow(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int d = ml_lua_check_dim(L, 2, t->ndim, "narrow");
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    if (start < 0) start += t->shape[d] + 1;
    return ml_lua_push_tensor(L, ml_narrow(t, d, start - 1, len));
}

/* Pushes the view of t along d from start of length len (narrow). */
static void push_piece(lua_State *L, ml_tensor *t, int d, int64_t start, int64_t len) {
    ml_lua_push_tensor(L, ml_narrow(t, d, start, len));
}

/* Pushes the pieces of `size` along d (the last one shorter) as torch.split does,
 * one empty piece for an empty dim; returns how many. */
static int push_even_pieces(lua_State *L, ml_tensor *t, int d, int64_t size, const char *fname) {
    const int64_t dim_size = t->shape[d];
    if (size == 0 && dim_size > 0)
        return ml_lua_errorf(L, "%s: a piece size of 0 needs an empty dim, dim %d has size %lld",
                             fname, d + 1, (long long)dim_size);
    const int64_t n = size == 0 || dim_size == 0 ? 1 : (dim_size + size - 1) / size;
    if (n > INT_MAX / 2) return ml_lua_errorf(L, "%s: %lld pieces are too many", fname, (long long)n);
    luaL_checkstack(L, (int)n, "too many pieces");
    for (int64_t i = 0; i < n; i++)
        push_piece(L, t, d, i * size, i < n - 1 ? size : dim_size - size * (n - 1));
    return (int)n;
}

/* The dim of split/chunk at idx (the first when absent), for a tensor with dims. */
static int piece_dim(lua_State *L, int idx, const ml_tensor *t, const char *fname) {
    if (t->ndim == 0) return ml_lua_errorf(L, "%s: a 0-dim tensor has no dim to cut", fname);
    return ml_lua_opt_dim(L, idx, t->ndim, fname, 0);
}

/* split(size, dim = 1) or split({sizes...}, dim = 1) -> views along dim, as
 * torch.split (multiple results: local a, b = t:split(2)) */
static int l_split(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    const int d = piece_dim(L, 3, t, "split");
    if (lua_istable(L, 2)) { /* sizes that add up to the dim's size */
        const int n = (int)luaL_len(L, 2);
        int64_t total = 0;
        for (int i = 1; i <= n; i++) {
            int isint;
            lua_geti(L, 2, i);
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint || v < 0)
                return ml_lua_errorf(L, "split: sizes must be non-negative integers, size %d is not",
                                     i);
            total += v;
        }
        if (total != t->shape[d]) {
            char a[ML_SHAPE_STR_MAX];
            return ml_lua_errorf(L, "split: sizes add up to %lld, dim %d of the tensor of shape %s "
                                 "has size %lld (they must be equal)", (long long)total, d + 1,
                                 ml_shape_str(t->ndim, t->shape, a, sizeof a),
                                 (long long)t->shape[d]);
        }
        luaL_checkstack(L, n, "too many pieces");
        int64_t start = 0;
        for (int i = 1; i <= n; i++) {
            lua_geti(L, 2, i);
            const int64_t len = (int64_t)lua_tointeger(L, -1);
            lua_pop(L, 1);
            push_piece(L, t, d, start, len);
            start += len;
        }
        return n;
    }
    int isint;
    lua_Integer size = lua_tointegerx(L, 2, &isint);
    if (!isint || size < 0)
        return ml_lua_errorf(L, "split: the piece size must be a non-negative integer or a table of "
                             "sizes, got %s", isint ? lua_tostring(L, 2) : luaL_typename(L, 2));
    return push_even_pieces(L, t, d, (int64_t)size, "split");
}

/* chunk(n, dim = 1) -> at most n views along dim, each ceil(size / n) long but the
 * last, as torch.chunk (fewer than n when the size does not allow n) */
static int l_chunk(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int isint;
    lua_Integer chunks = lua_tointegerx(L, 2, &isint);
    if (!isint || chunks <= 0)
        return ml_lua_errorf(L, "chunk: the number of chunks must be a positive integer, got %s",
                             isint ? lua_tostring(L, 2) : luaL_typename(L, 2));
    const int d = piece_dim(L, 3, t, "chunk");
    const int64_t dim_size = t->shape[d];
    if (dim_size == 0) { /* torch: `chunks` empty pieces */
        if (chunks > INT_MAX / 2) return ml_lua_errorf(L, "chunk: too many pieces");
        luaL_checkstack(L, (int)chunks, "too many pieces");
        for (lua_Integer i = 0; i < chunks; i++) push_piece(L, t, d, 0, 0);
        return (int)chunks;
    }
    return push_even_pieces(L, t, d, (dim_size + chunks - 1) / chunks, "chunk");
}

/* select(dim, index), index 1-based (negative from the end) */
static int l_select(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int d = ml_lua_check_dim(L, 2, t->ndim, "select");
    lua_Integer i = luaL_checkinteger(L, 3);
    if (i == 0) return ml_lua_errorf(L, "select: index 0 is not a position (positions are 1-based)");
    return ml_lua_push_tensor(L, ml_select(t, d, i > 0 ? i - 1 : i));
}

static int l_squeeze(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int d = lua_isnoneornil(L, 2) ? ML_ALL_DIMS : ml_lua_check_dim(L, 2, t->ndim, "squeeze");
    return ml_lua_push_tensor(L, ml_squeeze(t, d));
}

/* unsqueeze(dim): the new dim's place among ndim + 1 (1-based, negative from the
 * end: -1 appends, as torch's) */
static int l_unsqueeze(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    const lua_Integer d = luaL_checkinteger(L, 2), n = t->ndim + 1;
    if (d == 0 || d > n || d < -n)
        return ml_lua_errorf(L, "unsqueeze: dim %lld out of range for a %d-dim tensor (a new dim "
                             "goes at 1..%lld or %lld..-1)", (long long)d, t->ndim, (long long)n,
                             (long long)-n);
    return ml_lua_push_tensor(L, ml_unsqueeze(t, d > 0 ? (int)d - 1 : (int)(d + n)));
}

static int l_expand(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int64_t shape[ML_MAX_DIMS];
    int ndim = ml_lua_check_shape(L, 2, shape, "expand");
    return ml_lua_push_tensor(L, ml_expand(t, ndim, shape));
}

static int l_flatten(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    int s = ml_lua_opt_dim(L, 2, t->ndim, "flatten", 0);
    int e = ml_lua_opt_dim(L, 3, t->ndim, "flatten", t->ndim ? t->ndim - 1 : 0);
    return ml_lua_push_tensor(L, ml_flatten(t, s, e));
}

/* --- __index / __newindex --- */

static int l_index(lua_State *L) {
    ml_tensor *t = *(ml_tensor **)lua_touserdata(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {
        /* methods first: they are the common case */
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
        lua_pop(L, 1);
        const char *k = lua_tostring(L, 2);
        if (strcmp(k, "dtype") == 0) lua_pushstring(L, ml_dtype_name(t->dtype));
        else if (strcmp(k, "device") == 0) lua_pushstring(L, ml_device_name(t->storage->device));
        else if (strcmp(k, "requires_grad") == 0) lua_pushboolean(L, t->requires_grad);
        else if (strcmp(k, "is_leaf") == 0) lua_pushboolean(L, t->grad_fn == NULL);
        else if (strcmp(k, "grad_fn") == 0) {
            if (t->grad_fn) lua_pushstring(L, t->grad_fn->name);
            else lua_pushnil(L);
        } else if (strcmp(k, "grad") == 0) {
            if (!t->grad) lua_pushnil(L);
            else ml_lua_push_tensor(L, ml_tensor_retain(t->grad));
        } else if (strcmp(k, "is_cuda") == 0) lua_pushboolean(L, t->storage->device == ML_CUDA);
        else if (strcmp(k, "T") == 0 || strcmp(k, "mT") == 0) {
            if (t->ndim < 2) return ml_lua_push_tensor(L, ml_tensor_retain(t));
            return ml_lua_push_tensor(L, ml_transpose(t, -2, -1));
        } else lua_pushnil(L);
        return 1;
    }
    if (lua_isinteger(L, 2)) {
        lua_Integer i = lua_tointeger(L, 2);
        if (i == 0) return ml_lua_errorf(L, "index: 0 is not a position (positions are 1-based)");
        return ml_lua_push_tensor(L, ml_select(t, 0, i > 0 ? i - 1 : i));
    }
    return ml_lua_errorf(L, "index: a tensor is indexed by a 1-based integer or a field name, got %s",
                      luaL_typename(L, 2));
}

static int l_newindex(lua_State *L) {
    ml_tensor *t = *(ml_tensor **)lua_touserdata(L, 1);
    if (lua_isinteger(L, 2)) { /* t[i] = value: copy into the row */
        lua_Integer i = lua_tointeger(L, 2);
        check_inplace(L, t, "index assignment");
        if (i == 0) return ml_lua_errorf(L, "index: 0 is not a position (positions are 1-based)");
        ml_tensor *src = ml_lua_tensor_or_number(L, 3, t); /* may raise: before row exists */
        ml_tensor *row = ml_select(t, 0, i > 0 ? i - 1 : i);
        if (!row) {
            ml_tensor_release(src);
            return ml_lua_error(L);
        }
        int rc = ml_copy_(row, src);
        ml_tensor_release(row);
        ml_tensor_release(src);
        return rc ? ml_lua_error(L) : 0;
    }
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "requires_grad") == 0) {
        set_requires_grad(L, t, lua_toboolean(L, 3), "requires_grad");
    } else if (strcmp(k, "grad") == 0) {
        if (lua_isnil(L, 3)) {
            ml_tensor_release(t->grad);
            t->grad = NULL;
        } else {
            ml_tensor *g = ml_lua_check_tensor(L, 3);
            if (!ml_same_shape(g, t)) {
                char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
                return ml_lua_errorf(L, "grad: assigned gradient has shape %s, the tensor %s",
                                  ml_shape_str(g->ndim, g->shape, a, sizeof a),
                                  ml_shape_str(t->ndim, t->shape, b, sizeof b));
            }
            ml_tensor *own = ml_contiguous_copy(g);
            if (!own) return ml_lua_error(L);
            ml_tensor_release(t->grad);
            t->grad = own;
        }
    } else {
        return ml_lua_errorf(L, "tensor: cannot set field '%s' (settable: requires_grad, grad)", k);
    }
    return 0;
}

static int l_is_tensor(lua_State *L) {
    lua_pushboolean(L, ml_lua_test_tensor(L, 1) != NULL);
    return 1;
}

void ml_lua_open_tensor(lua_State *L, int module, int methods) {
    static const luaL_Reg module_funcs[] = {
        {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"full", l_full},
        {"rand", l_rand}, {"randn", l_randn}, {"eye", l_eye}, {"arange", l_arange},
        {"randperm", l_randperm}, {"zeros_like", l_zeros_like}, {"ones_like", l_ones_like},
        {"manual_seed", l_manual_seed}, {"initial_seed", l_initial_seed},
        {"get_rng_state", l_get_rng_state}, {"set_rng_state", l_set_rng_state},
        {"is_tensor", l_is_tensor}, {NULL, NULL}};
    static const luaL_Reg method_funcs[] = {
        {"shape", l_shape}, {"size", l_size}, {"stride", l_stride}, {"dim", l_dim},
        {"numel", l_numel}, {"item", l_item}, {"totable", l_totable}, {"float", l_float},
        {"double", l_double}, {"long", l_long}, {"byte", l_byte}, {"to", l_to},
        {"cuda", l_cuda}, {"cpu", l_cpu}, {"clone", l_clone}, {"contiguous", l_contiguous},
        {"is_contiguous", l_is_contiguous}, {"fill_", l_fill_}, {"zero_", l_zero_},
        {"copy_", l_copy_}, {"add_", l_add_}, {"requires_grad_", l_requires_grad_},
        {"view", l_view}, {"reshape", l_reshape}, {"t", l_t}, {"transpose", l_transpose},
        {"permute", l_permute}, {"narrow", l_narrow}, {"select", l_select},
        {"squeeze", l_squeeze}, {"unsqueeze", l_unsqueeze}, {"expand", l_expand},
        {"flatten", l_flatten}, {"split", l_split}, {"chunk", l_chunk}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, module_funcs);
    ml_lua_setfuncs(L, methods, method_funcs);
    /* the views are module functions too: ml.reshape(t, ...), ml.flatten(t) */
    static const char *const shared[] = {"reshape", "transpose", "permute", "narrow", "select",
                                         "squeeze", "unsqueeze", "flatten", "clone", "t", "split",
                                         "chunk", NULL};
    for (int i = 0; shared[i]; i++) {
        lua_getfield(L, methods, shared[i]);
        lua_setfield(L, module, shared[i]);
    }
}

/* Creates the metatable; methods is filled by every family afterwards. */
void ml_lua_tensor_metatable(lua_State *L, int methods);
void ml_lua_tensor_metatable(lua_State *L, int methods) {
    luaL_newmetatable(L, ML_TENSOR_MT);
    int mt = lua_gettop(L);
    ml_lua_cache_tensor_metatable(L, mt);
    lua_pushvalue(L, methods);
    lua_pushcclosure(L, l_index, 1);
    lua_setfield(L, mt, "__index");
    lua_pushcfunction(L, l_newindex);
    lua_setfield(L, mt, "__newindex");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, mt, "__gc");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, mt, "__tostring");
    lua_pushcfunction(L, l_len);
    lua_setfield(L, mt, "__len");
    lua_pushstring(L, "Tensor");
    lua_setfield(L, mt, "__name");
    lua_pop(L, 1);
}
