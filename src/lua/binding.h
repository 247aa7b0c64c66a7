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
/* The collection policy before a large tensor (src/lua/util.c); L is the state
 * whose collector runs. Installed as a tensor.h collect hook by the CLI and the
 * embedding runtime. */
void ml_lua_collect_before_alloc(lua_State *L, size_t nbytes);
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
/* The same, naming fname: the core's generic "tensor: " prefix (shape and memory
 * checks of ml_tensor_empty) becomes "fname: ", another message gets "fname: "
 * in front unless it starts with it. Never returns. */
int ml_lua_error_in(lua_State *L, const char *fname);
/* Pushes "chunk:line: " of the user's code: the first Lua function on the stack
 * (from level 1, the caller of the running C function) that is not part of the
 * Lua half (chunks "@lua/moonlight/..."), so that a check in C reached through
 * library code names the user's line, as util.raise does in Lua. Falls back to
 * level 1 when there is no such function. */
void ml_lua_where(lua_State *L);
/* luaL_error with C's full printf formats (%lld, %g, %zu...), which Lua's own
 * formatter lacks, at the user's line (ml_lua_where). Never returns. */
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

/* ml.Generator (src/lua/generator.c): the object at idx or NULL; the option
 * `generator` of the options table at idx (NULL when absent; another value is an
 * error naming fname). Borrowed from the Lua value. */
struct ml_generator;
struct ml_generator *ml_lua_test_generator(lua_State *L, int idx);
struct ml_generator *ml_lua_opt_generator(lua_State *L, int idx, const char *fname);
void ml_lua_open_generator(lua_State *L, int module);
/* --- limits an embedding host places on a Lua state (src/api/runtime.c) ---
 * A state made with ml_lua_guard_alloc as its allocator carries a guard: its
 * memory budget (Lua heap and tensors, one limit), its file sandbox, and the
 * flag ml_interrupt raises. It is found through the allocator, which a script
 * cannot replace, not through anything a script could reach. States without one
 * (the CLI, stock lua5.4) are unconfined. */
struct ml_sandbox;
typedef struct ml_lua_guard {
    struct ml_budget *budget;         /* NULL: no memory limit */
    const struct ml_sandbox *sandbox; /* NULL: file access unconfined */
    _Atomic int *interrupted;         /* non-zero once the host asked to stop, or NULL */
    void *owner;                      /* the runtime */
} ml_lua_guard;
/* lua_Alloc with ud = the guard: counts the Lua heap into the budget's lua_bytes
 * and refuses growth past its limit (Lua then collects and raises "not enough
 * memory"). */
void *ml_lua_guard_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* The state's guard, or NULL. */
ml_lua_guard *ml_lua_guard_of(lua_State *L);
/* The path (a string) at idx checked against the state's sandbox for access
 * (ML_ACCESS_READ or ML_ACCESS_WRITE, src/sandbox.h). Pushes the path to use and
 * returns it: the resolved one, or idx's own string when the state is
 * unconfined. Raises an error naming fname when access is denied. */
const char *ml_lua_check_path(lua_State *L, int idx, int access, const char *fname);
/* true when the state's host asked it to stop (C loops that may run long check
 * it and return early; the interrupt hook then raises). */
int ml_lua_interrupted(lua_State *L);
/* Convolution and pooling options (issue 16): option key at idx as an integer
 * (both out[0] and out[1]) or a table of count integers (count 2: {h, w} into
 * out[0], out[1]; count 1: {n} into out[1]); def when absent. Returns 0, or 1
 * with the value left on the stack when it is a string (padding = "same"); any
 * other value is an error naming fname and the key. */
int ml_lua_opt_pair(lua_State *L, int idx, const char *key, const char *fname, int count,
                    int64_t def, int64_t out[2]);

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
/* ml.autograd.Function's nodes (src/lua/autograd_function.c), opened by the
 * autograd family. enter/leave bracket ml_backward: they name the state that
 * runs it (Lua backward functions are called there; returns the previous one)
 * and afterwards drop what freed Function nodes left in its registry. */
void ml_lua_open_autograd_function(lua_State *L, int module);
lua_State *ml_lua_function_enter(lua_State *L);
void ml_lua_function_leave(lua_State *L, lua_State *prev);
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
void ml_lua_open_sort(lua_State *L, int module, int methods);
/* convolution, pooling, batch norm (issue 16) */
void ml_lua_open_conv(lua_State *L, int module, int methods);
void ml_lua_open_pool(lua_State *L, int module, int methods);
void ml_lua_open_batchnorm(lua_State *L, int module, int methods);
/* normalisation, embeddings (issue 16) */
void ml_lua_open_norm(lua_State *L, int module, int methods);
void ml_lua_open_embedding(lua_State *L, int module, int methods);
void ml_lua_open_attention(lua_State *L, int module, int methods);

#endif
