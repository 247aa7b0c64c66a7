/* luaopen_moonlight_core: the C half of `require "moonlight"`. Builds the Tensor
 * metatable, then lets each op family register its methods and functions. */
#include "../backend.h"
#include "binding.h"

void ml_lua_tensor_metatable(lua_State *L, int methods);

static int l_cuda_is_available(lua_State *L) {
    lua_pushboolean(L, ml_cuda_backend() != NULL);
    return 1;
}

int luaopen_moonlight_core(lua_State *L);
int luaopen_moonlight_core(lua_State *L) {
    lua_newtable(L);
    int module = lua_gettop(L);
    lua_newtable(L);
    int methods = lua_gettop(L);
    ml_lua_tensor_metatable(L, methods);
    ml_lua_open_tensor(L, module, methods);
    ml_lua_open_elementwise(L, module, methods);
    ml_lua_open_reduce(L, module, methods);
    ml_lua_open_matmul(L, module, methods);
    ml_lua_open_softmax(L, module, methods);
    ml_lua_open_autograd(L, module, methods);
    ml_lua_open_sys(L, module, methods);
    ml_lua_open_plot(L, module, methods);
    ml_lua_open_metrics(L, module, methods);
    ml_lua_open_optim(L, module, methods);
    ml_lua_open_nn(L, module, methods);
    ml_lua_open_loss(L, module, methods);
    ml_lua_open_serialization(L, module, methods);
    ml_lua_open_cat(L, module, methods);
    ml_lua_open_data(L, module, methods);
    ml_lua_open_index(L, module, methods);
    ml_lua_open_cuda(L, module, methods);
    ml_lua_open_generator(L, module);
    ml_lua_open_sort(L, module, methods);
    /* convolution, pooling, batch norm (issue 16) */
    ml_lua_open_conv(L, module, methods);
    ml_lua_open_pool(L, module, methods);
    ml_lua_open_batchnorm(L, module, methods);
    /* normalisation, embeddings (issue 16) */
    ml_lua_open_norm(L, module, methods);
    ml_lua_open_embedding(L, module, methods);
    ml_lua_open_attention(L, module, methods);
    ml_lua_open_distributed(L, module, methods);
    lua_pushcfunction(L, l_cuda_is_available);
    lua_setfield(L, module, "cuda_is_available");
    /* the methods table is reachable for the Lua half (ml.Tensor) */
    lua_pushvalue(L, methods);
    lua_setfield(L, module, "Tensor");
    lua_settop(L, module);
    return 1;
}
