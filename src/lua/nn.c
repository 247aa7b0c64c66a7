/* The C side of ml.nn: what modules need beyond the ops. */
#include "../autograd.h"
#include "../ops.h"
#include "binding.h"

/* _set_data(t, src): t takes over src's data, shape and dtype, keeping its identity
 * (its userdata, requires_grad and place in optimizers), as torch's
 * `param.data = src`. Module:to(device) moves parameters with it. */
static int l_set_data(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1), *src = ml_lua_check_tensor(L, 2);
    if (t->grad_fn) return ml_lua_errorf(L, "_set_data: only a leaf tensor's data can be replaced");
    if (t->requires_grad && !ml_dtype_is_float(src->dtype))
        return ml_lua_errorf(L, "_set_data: a tensor that requires grad needs floating data, got %s",
                          ml_dtype_name(src->dtype));
    if (t == src) return 0;
    /* the alias keeps the old storage alive until the swap is done, then drops it
     * through the one release path */
    ml_tensor *old = ml_tensor_alias(t);
    if (!old) return ml_lua_error(L);
    src->storage->refcount++;
    t->storage->refcount--; /* t's own count; old still holds one */
    t->storage = src->storage;
    t->dtype = src->dtype;
    t->ndim = src->ndim;
    for (int i = 0; i < ML_MAX_DIMS; i++) {
        t->shape[i] = src->shape[i];
        t->strides[i] = src->strides[i];
    }
    t->offset = src->offset;
    ml_tensor_release(old);
    return 0;
}

void ml_lua_open_nn(lua_State *L, int module, int methods) {
    (void)methods;
    lua_pushcfunction(L, l_set_data);
    lua_setfield(L, module, "_set_data");
}
