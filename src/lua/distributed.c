/* The C side of ml.distributed (torch.distributed's names; src/dist.h) and of the
 * Trainer's gradient reducer (core._ddp, a userdata over ml_ddp). Ranks are
 * 0-based numbers, as torch's and MPI's: they are data, not Lua positions. */
#include <string.h>

#include "../dist.h"
#include "../error.h"
#include "../ops/shape.h"
#include "binding.h"

#define DDP_META "moonlight.DDPReducer"

static int fail(lua_State *L, const char *fname) {
    return luaL_error(L, "distributed.%s: %s", fname, ml_error());
}

static int l_is_available(lua_State *L) {
    const char *why = NULL;
    bool ok = ml_distributed_available(&why);
    lua_pushboolean(L, ok);
    if (ok) return 1;
    lua_pushstring(L, why);
    return 2;
}

static int l_is_initialized(lua_State *L) {
    lua_pushboolean(L, ml_distributed_is_initialized());
    return 1;
}

static int l_is_launched(lua_State *L) {
    lua_pushboolean(L, ml_distributed_launched());
    return 1;
}

/* init_process_group({backend = "mpi" | "nccl"}): starts MPI (NCCL comes on top
 * for CUDA tensors, on their first collective) */
static int l_init_process_group(lua_State *L) {
    static const char *const allowed[] = {"backend", NULL};
    ml_lua_check_options(L, 1, "distributed.init_process_group", allowed);
    const char *backend = ml_lua_opt_string(L, 1, "backend", "distributed.init_process_group", "mpi");
    if (strcmp(backend, "mpi") != 0 && strcmp(backend, "nccl") != 0)
        return luaL_error(L, "distributed.init_process_group: unknown backend '%s' (expected \"mpi\" or "
                             "\"nccl\")", backend);
    if (ml_distributed_init()) return fail(L, "init_process_group");
    return 0;
}

static int push_int_or_fail(lua_State *L, int v, const char *fname) {
    if (v < 0) return fail(L, fname);
    lua_pushinteger(L, v);
    return 1;
}

static int l_rank(lua_State *L) { return push_int_or_fail(L, ml_distributed_rank(), "rank"); }
static int l_world_size(lua_State *L) { return push_int_or_fail(L, ml_distributed_world_size(), "world_size"); }
static int l_local_rank(lua_State *L) { return push_int_or_fail(L, ml_distributed_local_rank(), "local_rank"); }
static int l_local_world_size(lua_State *L) {
    return push_int_or_fail(L, ml_distributed_local_size(), "local_world_size");
}

static const char *const op_names[] = {"sum", "max", "min", "mean", NULL};
static const ml_dist_op op_values[] = {ML_DIST_SUM, ML_DIST_MAX, ML_DIST_MIN, ML_DIST_MEAN};

/* all_reduce(t, {op = "sum"}): in place on every rank; returns t */
static int l_all_reduce(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    static const char *const allowed[] = {"op", NULL};
    ml_lua_check_options(L, 2, "distributed.all_reduce", allowed);
    const char *op = ml_lua_opt_string(L, 2, "op", "distributed.all_reduce", "sum");
    int k = 0;
    while (op_names[k] && strcmp(op_names[k], op) != 0) k++;
    if (!op_names[k])
        return luaL_error(L, "distributed.all_reduce: unknown op '%s' (expected \"sum\", \"mean\", "
                             "\"max\" or \"min\")", op);
    if (ml_distributed_all_reduce(t, op_values[k])) return fail(L, "all_reduce");
    lua_settop(L, 1);
    return 1;
}

/* broadcast(t, {src = 0}): t becomes rank src's t; returns t */
static int l_broadcast(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    static const char *const allowed[] = {"src", NULL};
    ml_lua_check_options(L, 2, "distributed.broadcast", allowed);
    int src = ml_lua_opt_integer(L, 2, "src", "distributed.broadcast", 0);
    if (ml_distributed_broadcast(t, src)) return fail(L, "broadcast");
    lua_settop(L, 1);
    return 1;
}

/* all_gather(t): a list of world_size tensors, list[r + 1] being rank r's t */
static int l_all_gather(lua_State *L) {
    ml_tensor *t = ml_lua_check_tensor(L, 1);
    ml_tensor *all = ml_distributed_all_gather(t);
    if (!all) return fail(L, "all_gather");
    int world = (int)all->shape[0];
    lua_createtable(L, world, 0);
    for (int r = 0; r < world; r++) {
        ml_tensor *row = ml_select(all, 0, r);
        if (!row) {
            ml_tensor_release(all);
            return fail(L, "all_gather");
        }
        ml_lua_push_tensor(L, row);
        lua_rawseti(L, -2, r + 1);
    }
    ml_tensor_release(all);
    return 1;
}

static int l_barrier(lua_State *L) {
    if (ml_distributed_barrier()) return fail(L, "barrier");
    return 0;
}

/* destroy_process_group(): the orderly end of MPI in this process (every rank
 * calls it); nothing distributed works afterwards */
static int l_destroy_process_group(lua_State *L) {
    if (ml_distributed_finalize(ml_distributed_exit_timeout())) return fail(L, "destroy_process_group");
    return 0;
}

/* _abort(code, message): message on stderr, then every rank of the job ends */
static int l_abort(lua_State *L) {
    int code = (int)luaL_optinteger(L, 1, 1);
    const char *msg = luaL_optstring(L, 2, NULL);
    if (msg) {
        fprintf(stderr, "%s\n", msg);
        fflush(stderr);
    }
    ml_distributed_abort(code);
}

static int l_engine(lua_State *L) {
    const char *dev = luaL_optstring(L, 1, "cpu");
    int d = ml_device_from_name(dev);
    if (d < 0) return luaL_error(L, "distributed.engine: unknown device '%s'", dev);
    lua_pushstring(L, ml_distributed_engine((ml_device)d));
    return 1;
}

static int l_mpi_version(lua_State *L) {
    const char *v = ml_distributed_mpi_version();
    if (!v) return fail(L, "mpi_version");
    lua_pushstring(L, v);
    return 1;
}

/* --- the gradient reducer --- */

static ml_ddp **check_ddp(lua_State *L) {
    ml_ddp **d = luaL_checkudata(L, 1, DDP_META);
    if (!*d) luaL_error(L, "ddp: the reducer was freed");
    return d;
}

/* core._ddp(params, bucket_bytes): params a list of tensors */
static int l_ddp_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer bucket = luaL_optinteger(L, 2, 25 << 20);
    if (bucket < 1) return luaL_error(L, "ddp: bucket_cap_mb must be positive");
    int n = (int)luaL_len(L, 1);
    ml_tensor **params = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *params, 0);
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        params[i] = ml_lua_check_tensor(L, -1);
        lua_pop(L, 1);
    }
    ml_ddp **ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = NULL;
    luaL_setmetatable(L, DDP_META);
    *ud = ml_ddp_new(n, params, (size_t)bucket);
    if (!*ud) return luaL_error(L, "%s", ml_error());
    return 1;
}

static int l_ddp_prepare(lua_State *L) {
    if (ml_ddp_prepare(*check_ddp(L))) return luaL_error(L, "%s", ml_error());
    return 0;
}

/* reducer:finish(backward_ok) */
static int l_ddp_finish(lua_State *L) {
    ml_ddp **d = check_ddp(L);
    bool ok = lua_isnoneornil(L, 2) || lua_toboolean(L, 2);
    if (ml_ddp_finish(*d, ok)) return luaL_error(L, "%s", ml_error());
    return 0;
}

static int l_ddp_stats(lua_State *L) {
    ml_ddp_stats s;
    ml_ddp_get_stats(*check_ddp(L), &s);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, s.buckets);
    lua_setfield(L, -2, "buckets");
    lua_pushinteger(L, s.elements);
    lua_setfield(L, -2, "elements");
    lua_pushinteger(L, s.steps);
    lua_setfield(L, -2, "steps");
    lua_pushinteger(L, s.started_early);
    lua_setfield(L, -2, "started_early");
    lua_pushnumber(L, s.wait_s);
    lua_setfield(L, -2, "wait_s");
    return 1;
}

static int l_ddp_gc(lua_State *L) {
    ml_ddp **d = luaL_checkudata(L, 1, DDP_META);
    ml_ddp_free(*d);
    *d = NULL;
    return 0;
}

void ml_lua_open_distributed(lua_State *L, int module, int methods) {
    (void)methods;
    static const luaL_Reg funcs[] = {
        {"is_available", l_is_available},
        {"is_initialized", l_is_initialized},
        {"is_launched", l_is_launched},
        {"init_process_group", l_init_process_group},
        {"rank", l_rank},
        {"world_size", l_world_size},
        {"local_rank", l_local_rank},
        {"local_world_size", l_local_world_size},
        {"all_reduce", l_all_reduce},
        {"broadcast", l_broadcast},
        {"all_gather", l_all_gather},
        {"barrier", l_barrier},
        {"destroy_process_group", l_destroy_process_group},
        {"engine", l_engine},
        {"mpi_version", l_mpi_version},
        {"_abort", l_abort},
        {"_ddp", l_ddp_new},
        {NULL, NULL},
    };
    lua_newtable(L);
    ml_lua_setfuncs(L, lua_gettop(L), funcs);
    lua_setfield(L, module, "_distributed");
    static const luaL_Reg ddp_methods[] = {
        {"prepare", l_ddp_prepare},
        {"finish", l_ddp_finish},
        {"stats", l_ddp_stats},
        {NULL, NULL},
    };
    luaL_newmetatable(L, DDP_META);
    lua_newtable(L);
    luaL_setfuncs(L, ddp_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_ddp_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}
