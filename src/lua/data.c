/* The C side of ml.data: the IDX reader and the batch gathers the DataLoader
 * calls (private names in the core table; lua/moonlight/data.lua is the face). */
#include "../idx.h"
#include "../ops.h"
#include "../sandbox.h"
#include "binding.h"

static int l_read_idx(lua_State *L) {
    return ml_lua_push_tensor(L, ml_idx_load(ml_lua_check_path(L, 1, ML_ACCESS_READ, "read_idx")));
}

static int l_read_idx_pair(lua_State *L) {
    ml_tensor *x, *y;
    const char *images = ml_lua_check_path(L, 1, ML_ACCESS_READ, "read_idx");
    const char *labels = ml_lua_check_path(L, 2, ML_ACCESS_READ, "read_idx");
    if (ml_idx_load_pair(images, labels, &x, &y))
        return ml_lua_error(L);
    ml_lua_push_tensor(L, x);
    ml_lua_push_tensor(L, y);
    return 2;
}

/* _gather_scaled(src, indices, scale, shift, add_channel [, dtype [, next_indices]]) */
static int l_gather_scaled(lua_State *L) {
    ml_tensor *src = ml_lua_check_tensor(L, 1), *idx = ml_lua_check_tensor(L, 2);
    ml_tensor *next = lua_isnoneornil(L, 7) ? NULL : ml_lua_check_tensor(L, 7);
    double scale = luaL_checknumber(L, 3), shift = luaL_checknumber(L, 4);
    int add_channel = lua_toboolean(L, 5);
    ml_dtype dt = ML_F32;
    if (!lua_isnoneornil(L, 6)) {
        int d = ml_dtype_from_name(luaL_checkstring(L, 6));
        if (d < 0) return ml_lua_errorf(L, "gather_scaled: unknown dtype '%s'", lua_tostring(L, 6));
        dt = (ml_dtype)d;
    }
    return ml_lua_push_tensor(L, ml_gather_scaled(src, idx, scale, shift, dt, add_channel, next));
}

/* _gather_one_hot(labels, indices, n_classes) -> float32 [B, n] */
static int l_gather_one_hot(lua_State *L) {
    ml_tensor *labels = ml_lua_check_tensor(L, 1), *idx = ml_lua_check_tensor(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    return ml_lua_push_tensor(L, ml_gather_one_hot(labels, idx, n, ML_F32));
}

static int l_gather_labels(lua_State *L) {
    ml_tensor *labels = ml_lua_check_tensor(L, 1), *idx = ml_lua_check_tensor(L, 2);
    return ml_lua_push_tensor(L, ml_gather_labels(labels, idx));
}

static int l_gather_rows(lua_State *L) {
    ml_tensor *src = ml_lua_check_tensor(L, 1), *idx = ml_lua_check_tensor(L, 2);
    return ml_lua_push_tensor(L, ml_gather_rows(src, idx));
}

/* _augment_crop(images [B, C, H, W], params int64 [B, 3], out_h, out_w, pad_mode, fill) */
static int l_augment_crop(lua_State *L) {
    ml_tensor *src = ml_lua_check_tensor(L, 1), *p = ml_lua_check_tensor(L, 2);
    lua_Integer oh = luaL_checkinteger(L, 3), ow = luaL_checkinteger(L, 4);
    int mode = (int)luaL_checkinteger(L, 5);
    double fill = luaL_optnumber(L, 6, 0);
    return ml_lua_push_tensor(L, ml_augment_crop(src, p, oh, ow, mode, fill));
}

/* _augment_affine(images, theta float64 [B, 6], bilinear, fill) */
static int l_augment_affine(lua_State *L) {
    ml_tensor *src = ml_lua_check_tensor(L, 1), *p = ml_lua_check_tensor(L, 2);
    return ml_lua_push_tensor(L, ml_augment_affine(src, p, lua_toboolean(L, 3), luaL_optnumber(L, 4, 0)));
}

/* _augment_jitter(images, params float64 [B, 3]) */
static int l_augment_jitter(lua_State *L) {
    ml_tensor *src = ml_lua_check_tensor(L, 1), *p = ml_lua_check_tensor(L, 2);
    return ml_lua_push_tensor(L, ml_augment_jitter(src, p));
}

void ml_lua_open_data(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {
        {"_read_idx", l_read_idx},         {"_read_idx_pair", l_read_idx_pair},
        {"_gather_scaled", l_gather_scaled}, {"_gather_one_hot", l_gather_one_hot},
        {"_gather_labels", l_gather_labels}, {"_gather_rows", l_gather_rows},
        {"_augment_crop", l_augment_crop}, {"_augment_affine", l_augment_affine},
        {"_augment_jitter", l_augment_jitter}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
