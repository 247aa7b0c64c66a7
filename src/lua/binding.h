/* Shared helpers of the Lua binding: tensor userdata, argument checks, options.
 *
 * Conventions: positions and dims a user types are 1-based (negative dims count
 * from the end); ml_lua_check_dim turns them into the core's 0-based dims. Every
 * error is a Lua error whose message starts with the function's name. */
#ifndef ML_LUA_BINDING_H
#define ML_LUA_BINDING_H

#include <lauxlib.h>
#include <lua.h>

#include "../tensor.h"

#define ML_TENSOR_MT "moonlight.Tensor"

/* States moonlight creates (the CLI, ml_open) run Lua's generational collector,
 * stepped by the bytes of the tensors handed to Lua (see src/lua/util.c). */
void ml_lua_use_generational_gc(lua_State *L);
/* Pushes t as a userdata, taking over the caller's reference. t NULL raises the
 * core's error (so `return ml_lua_push_tensor(L, ml_add(a, b))` is the idiom). */
int ml_lua_push_tensor(lua_State *L, ml_tensor *t);
ml_tensor *ml_lua_check_tensor(lua_State *L, int idx);
ml_tensor *ml_lua_test_tensor(lua_State *L, int idx);   /* NULL when not a tensor */
void ml_lua_cache_tensor_metatable(lua_State *L, int mt); /* once, when it is made */
/* A tensor, or a number turned into a 0-dim tensor of like's dtype and device
 * (float32 when like is an integer tensor and the number is fractional). Returns a
 * new reference: release it. */
ml_tensor *ml_lua_tensor_or_number(lua_State *L, int idx, const ml_tensor *like);
/* Raises the core's last error as a Lua error. */
int ml_lua_error(lua_State *L);
/* luaL_error with C's full printf formats (%lld, %g, %zu...), which Lua's own
 * formatter lacks. Never returns. */
int ml_lua_errorf(lua_State *L, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A 1-based (or negative) dim at idx into a 0-based one, checked against ndim. */
int ml_lua_check_dim(lua_State *L, int idx, int ndim, const char *fname);
int ml_lua_opt_dim(lua_State *L, int idx, int ndim, const char *fname, int def);
/* A shape given as a table {2, 3} or as numbers from idx on; stops at a table
 * argument that follows numbers (an options table). Returns ndim. */
int ml_lua_check_shape(lua_State *L, int idx, int64_t *shape, const char *fname);

/* Options tables: checks that every key at idx is one of allowed (NULL-ended);
 * idx may be none or nil (no options). The messages are those of the Lua half's
 * checker (lua/moonlight/util.lua): "fname: unknown option 'k' (expected one of:
 * a, b)", "fname: option 'k' must be a number, got string". */
void ml_lua_check_options(lua_State *L, int idx, const char *fname, const char *const *allowed);
/* One option's value, def when absent; a value of another type is an error
 * naming fname and the key. */
double ml_lua_opt_number(lua_State *L, int idx, const char *key, const char *fname, double def);
int ml_lua_opt_integer(lua_State *L, int idx, const char *key, const char *fname, int def);
int ml_lua_opt_bool(lua_State *L, int idx, const char *key, const char *fname, int def);
const char *ml_lua_opt_string(lua_State *L, int idx, const char *key, const char *fname, const char *def);
/* A tensor option, or NULL when absent; borrowed. */
ml_tensor *ml_lua_opt_tensor(lua_State *L, int idx, const char *key, const char *fname);
/* dtype / device options by name; def when absent. */
ml_dtype ml_lua_opt_dtype(lua_State *L, int idx, const char *fname, ml_dtype def);
ml_device ml_lua_opt_device(lua_State *L, int idx, const char *fname, ml_device def);

/* Registers funcs into the table at index t. */
void ml_lua_setfuncs(lua_State *L, int t, const luaL_Reg *funcs);

/* Each family registers its functions: methods into the Tensor methods table (at
 * index methods), module functions into the module table (index module). */
void ml_lua_open_tensor(lua_State *L, int module, int methods);
void ml_lua_open_elementwise(lua_State *L, int module, int methods);
void ml_lua_open_reduce(lua_State *L, int module, int methods);
void ml_lua_open_matmul(lua_State *L, int module, int methods);
void ml_lua_open_softmax(lua_State *L, int module, int methods);
void ml_lua_open_autograd(lua_State *L, int module, int methods);
void ml_lua_open_sys(lua_State *L, int module, int methods);
void ml_lua_open_plot(lua_State *L, int module, int methods);
void ml_lua_open_metrics(lua_State *L, int module, int methods);
void ml_lua_open_distributed(lua_State *L, int module, int methods);
void ml_lua_open_optim(lua_State *L, int module, int methods);
void ml_lua_open_nn(lua_State *L, int module, int methods);
void ml_lua_open_loss(lua_State *L, int module, int methods);
void ml_lua_open_serialization(lua_State *L, int module, int methods);
void ml_lua_open_cat(lua_State *L, int module, int methods);
void ml_lua_open_data(lua_State *L, int module, int methods);
void ml_lua_open_index(lua_State *L, int module, int methods);
void ml_lua_open_cuda(lua_State *L, int module, int methods);

#endif
