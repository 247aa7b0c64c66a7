/* ml.autograd.Function's C half: the graph nodes of a user-defined op whose
 * backward is a Lua function (torch.autograd.Function).
 *
 * Cube.apply(x, ...) runs Cube.forward in Lua (lua/moonlight/autograd.lua), then
 * calls core._function_attach, which records one node, "CubeBackward", whose
 * rule calls the Lua closure `function(...) return Cube.backward(ctx, ...) end`
 * with one gradient per forward result and takes back one gradient per forward
 * argument. The engine (src/autograd.c) knows nodes of at most
 * ML_NODE_MAX_INPUTS inputs and one output; a Function has any number of both,
 * so the node is a small group of engine nodes sharing one record (fn_record):
 *
 *  - the main node F has the first inputs' edges (up to 4, or 3 and an edge to
 *    the next input relay); it calls Lua and puts the gradients of the inputs it
 *    has no edge to into the record;
 *  - input relays R1, R2, ... (older than F, so the engine runs them after it)
 *    hand those gradients on, 3 edges each plus the next relay (the last up to 4);
 *  - with several differentiable outputs, each output gets an output relay O_j
 *    (newer than F, so it runs first) that parks its gradient in the record.
 *
 * A relay's edge carries no data: the node before it sends a 0-dim "token"
 * tensor, which only makes the engine run it (the engine skips a node that no
 * gradient reached). The real gradients travel through the record.
 *
 * Lifetime. The outputs the user gets are new tensor structs over forward's
 * results (ml_tensor_alias), and only they carry the node, so forward's own
 * tensors, which ctx may hold, never refer to the node: no refcount cycle
 * through ctx. The closure (and through it ctx and its saved tensors) is held by
 * a registry reference that F drops when its graph is freed (after backward, or
 * when its outputs are collected). Nodes may be freed where no Lua call is safe
 * (a __gc inside another coroutine, lua_close, a host releasing a tensor after
 * closing its runtime), so F only queues the reference on the Lua state's anchor;
 * the queue is emptied by the next apply or backward on that state.
 *
 * Backward needs the lua_State: l_backward names the running one through
 * ml_lua_function_enter/leave, and F checks it belongs to the state that made it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd.h"
#include "../error.h"
#include "../ops.h"
#include "binding.h"

/* --- the anchor: one per Lua state, outliving it while nodes refer to it --- */

typedef struct {
    int refs;         /* the state's userdata + each record */
    bool alive;       /* false once the state has been closed */
    lua_State *main;  /* the state's main thread: identifies it */
    int *dead;        /* registry references to drop at the next sweep */
    size_t n_dead, cap;
} fn_anchor;

static char anchor_key; /* its address is the registry key of the anchor's userdata */

static void anchor_release(fn_anchor *a) {
    if (a && --a->refs == 0) {
        free(a->dead);
        free(a);
    }
}

/* the userdata's __gc: runs in lua_close at the latest */
static int anchor_gc(lua_State *L) {
    fn_anchor **ud = lua_touserdata(L, 1);
    if (ud && *ud) {
        (*ud)->alive = false;
        (*ud)->n_dead = 0;
        anchor_release(*ud);
        *ud = NULL;
    }
    return 0;
}

static lua_State *main_thread(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *m = lua_tothread(L, -1);
    lua_pop(L, 1);
    return m;
}

/* The state's anchor, made on first use (may raise a memory error). */
static fn_anchor *anchor_of(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &anchor_key);
    fn_anchor **ud = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (ud && *ud) return *ud;
    ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, anchor_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    fn_anchor *a = calloc(1, sizeof *a);
    if (!a) luaL_error(L, "autograd.Function: out of host memory");
    a->refs = 1;
    a->alive = true;
    a->main = main_thread(L);
    *ud = a;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &anchor_key);
    return a;
}

/* Drops the registry references queued by freed nodes (no Lua error: unref
 * only clears a registry slot). */
static void anchor_sweep(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &anchor_key);
    fn_anchor **ud = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!ud || !*ud) return;
    fn_anchor *a = *ud;
    for (size_t i = 0; i < a->n_dead; i++) luaL_unref(L, LUA_REGISTRYINDEX, a->dead[i]);
    a->n_dead = 0;
}

/* Queues ref for the next sweep. Out of memory, the closure stays in the
 * registry until the state closes: a leak of one closure, not a crash. */
static void anchor_queue(fn_anchor *a, int ref) {
    if (!a->alive || ref == LUA_NOREF) return;
    if (a->n_dead == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        int *d = realloc(a->dead, cap * sizeof *d);
        if (!d) return;
        a->dead = d;
        a->cap = cap;
    }
    a->dead[a->n_dead++] = ref;
}

/* --- node names: interned for the life of the process, since a node's name
 * outlives its graph (t.grad_fn is read after backward) --- */

typedef struct interned {
    struct interned *next;
    char name[];
} interned;

static interned *names;
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

/* "<fn>Backward", or NULL when out of memory. */
static const char *intern_backward_name(const char *fn) {
    size_t n = strlen(fn) + sizeof "Backward";
    pthread_mutex_lock(&names_lock);
    const char *found = NULL;
    for (interned *e = names; e && !found; e = e->next)
        if (strncmp(e->name, fn, n - sizeof "Backward") == 0 &&
            strcmp(e->name + n - sizeof "Backward", "Backward") == 0)
            found = e->name;
    if (!found) {
        interned *e = malloc(sizeof *e + n);
        if (e) {
            snprintf(e->name, n, "%sBackward", fn);
            e->next = names;
            names = e;
            found = e->name;
        }
    }
    pthread_mutex_unlock(&names_lock);
    return found;
}

/* --- the record shared by one apply's nodes --- */

typedef struct {
    int ndim;
    int64_t shape[ML_MAX_DIMS];
    ml_dtype dtype;
    ml_device device;
    int pos; /* 0-based position among forward's arguments (inputs) or results (outputs) */
} fn_meta;

typedef struct {
    int refs;            /* the nodes holding it */
    fn_anchor *anchor;
    int ref;             /* the closure's registry reference; LUA_NOREF once dropped */
    const char *name;    /* "CubeBackward" (interned); the Function is its prefix */
    bool materialize;    /* unreached outputs get zeros (true) or nil */
    int n_args, n_results;
    int n_in, n_out;     /* edges (inputs that require grad), differentiable outputs */
    fn_meta *in, *out;
    ml_tensor **grad_in;  /* [n_in]: gradients for the relays, set by F */
    ml_tensor **grad_out; /* [n_out]: gradients parked by the output relays */
    ml_tensor *token;
} fn_record;

static void record_release(void *p) {
    fn_record *r = p;
    if (!r || --r->refs > 0) return;
    for (int i = 0; i < r->n_in; i++) ml_tensor_release(r->grad_in[i]);
    for (int i = 0; i < r->n_out; i++) ml_tensor_release(r->grad_out[i]);
    ml_tensor_release(r->token);
    if (r->anchor) anchor_queue(r->anchor, r->ref);
    anchor_release(r->anchor);
    free(r->in);
    free(r->out);
    free(r->grad_in);
    free(r->grad_out);
    free(r);
}

/* F's ctx: F is done (its graph freed), so the closure, ctx and its saved
 * tensors go now, even while relays keep the record. */
static void main_release(void *p) {
    fn_record *r = p;
    if (r->anchor) anchor_queue(r->anchor, r->ref);
    r->ref = LUA_NOREF;
    record_release(r);
}

/* the length of "Cube" in "CubeBackward", for messages naming the Function */
static int fn_len(const fn_record *r) { return (int)(strlen(r->name) - strlen("Backward")); }

/* --- the Lua state that runs backward --- */

static _Thread_local lua_State *backward_state;

lua_State *ml_lua_function_enter(lua_State *L) {
    lua_State *prev = backward_state;
    backward_state = L;
    return prev;
}

void ml_lua_function_leave(lua_State *L, lua_State *prev) {
    backward_state = prev;
    anchor_sweep(L);
}

/* --- backward --- */

/* What the protected call works on. */
typedef struct {
    fn_record *r;
    ml_tensor **grads;  /* [n_out] the outputs' gradients (owned; NULL: none reached it) */
    ml_tensor **result; /* [n_in] the inputs' gradients (new references), out */
} call_job;

static bool expandable(const fn_meta *m, const ml_tensor *g) {
    if (m->ndim > g->ndim) return false;
    for (int i = 0; i < m->ndim; i++) {
        int64_t a = m->shape[m->ndim - 1 - i], b = g->shape[g->ndim - 1 - i];
        if (a != b && a != 1) return false;
    }
    return true;
}

/* Runs inside lua_pcall: calls the closure with one value per forward result and
 * checks what it returns (the messages are raised as they are). */
static int call_backward(lua_State *L) {
    call_job *job = lua_touserdata(L, 1);
    fn_record *r = job->r;
    const int fl = fn_len(r);
    luaL_checkstack(L, r->n_results + 4, "autograd.Function backward");
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref);
    int base = lua_gettop(L);
    for (int k = 0; k < r->n_results; k++) lua_pushnil(L);
    for (int j = 0; j < r->n_out; j++) {
        ml_tensor *g = job->grads[j];
        job->grads[j] = NULL;
        if (!g && r->materialize) {
            const fn_meta *m = &r->out[j];
            g = ml_zeros(m->dtype, m->device, m->ndim, m->shape);
            if (!g) return ml_lua_errorf(L, "%.*s.backward: %s", fl, r->name, ml_error());
        }
        if (!g) continue;
        ml_lua_push_tensor(L, g);
        lua_replace(L, base + 1 + r->out[j].pos);
    }
    if (lua_pcall(L, r->n_results, LUA_MULTRET, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        return ml_lua_errorf(L, "%.*s.backward: %s", fl, r->name,
                          msg ? msg : luaL_typename(L, -1));
    }
    int got = lua_gettop(L) - base + 1;
    if (got > r->n_args)
        return ml_lua_errorf(L, "%.*s.backward returned %d gradients for %d forward arguments", fl,
                          r->name, got, r->n_args);
    int e = 0;
    for (int a = 0; a < got; a++) {
        int idx = base + a;
        bool edge = e < r->n_in && r->in[e].pos == a;
        ml_tensor *g = ml_lua_test_tensor(L, idx);
        if (!edge) {
            /* an argument with no edge: nil, or a gradient nobody needs (a
             * tensor that does not require grad); a value for a non-tensor
             * argument is a mistake, as torch says */
            if (!g && !lua_isnil(L, idx))
                return ml_lua_errorf(L, "%.*s.backward: gradient %d is a %s; a gradient is a tensor or nil",
                                  fl, r->name, a + 1, luaL_typename(L, idx));
            continue;
        }
        const fn_meta *m = &r->in[e];
        if (!g && !lua_isnil(L, idx))
            return ml_lua_errorf(L, "%.*s.backward: gradient %d is a %s; a gradient is a tensor or nil",
                              fl, r->name, a + 1, luaL_typename(L, idx));
        if (g) {
            char gs[ML_SHAPE_STR_MAX], is[ML_SHAPE_STR_MAX];
            if (g->storage->device != m->device)
                return ml_lua_errorf(L, "%.*s.backward: gradient %d is on %s, its input on %s", fl,
                                  r->name, a + 1, ml_device_name(g->storage->device),
                                  ml_device_name(m->device));
            if (!expandable(m, g))
                return ml_lua_errorf(L, "%.*s.backward: gradient %d has shape %s, its input %s", fl,
                                  r->name, a + 1, ml_shape_str(g->ndim, g->shape, gs, sizeof gs),
                                  ml_shape_str(m->ndim, m->shape, is, sizeof is));
            /* a broadcast gradient is summed to the input's shape and a gradient
             * of another dtype cast to the input's, as torch's engine does */
            ml_tensor *s = ml_sum_to_shape(g, m->ndim, m->shape);
            if (s && s->dtype != m->dtype) {
                ml_tensor *c = ml_cast(s, m->dtype);
                ml_tensor_release(s);
                s = c;
            }
            if (!s) return ml_lua_errorf(L, "%.*s.backward: %s", fl, r->name, ml_error());
            job->result[e] = s;
        }
        e++;
    }
    return 0;
}

/* The rule of F: the Lua call, then the gradients of its own edges; the others
 * wait in the record for the relays. */
static int main_backward(ml_node *node, ml_tensor *grad_out, ml_tensor **gin) {
    fn_record *r = node->ctx;
    const int fl = fn_len(r);
    lua_State *L = backward_state;
    if (!L || !r->anchor->alive || main_thread(L) != r->anchor->main)
        return ml_error_set("%s: backward through a Function written in Lua must be called from "
                            "the Lua state that applied it", r->name);
    if (r->ref == LUA_NOREF)
        return ml_error_set("%s: its backward was already freed", r->name);
    ml_tensor *grads_small[4], *result_small[4];
    ml_tensor **grads = r->n_out <= 4 ? grads_small : calloc((size_t)r->n_out, sizeof *grads);
    ml_tensor **result = r->n_in <= 4 ? result_small : calloc((size_t)r->n_in, sizeof *result);
    if (!grads || !result) {
        if (grads != grads_small) free(grads);
        return ml_error_set("%s: out of host memory", r->name);
    }
    memset(result, 0, sizeof *result * (size_t)r->n_in);
    if (r->n_out == 1) {
        grads[0] = ml_tensor_retain(grad_out);
    } else {
        for (int j = 0; j < r->n_out; j++) {
            grads[j] = r->grad_out[j];
            r->grad_out[j] = NULL;
        }
    }
    call_job job = {r, grads, result};
    int rc = 0;
    if (!lua_checkstack(L, 4)) {
        rc = ml_error_set("%.*s.backward: Lua stack overflow", fl, r->name);
    } else {
        int top = lua_gettop(L);
        lua_pushcfunction(L, call_backward);
        lua_pushlightuserdata(L, &job);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            rc = ml_error_set("%s", msg ? msg : "autograd.Function: error in backward");
        }
        lua_settop(L, top);
    }
    for (int j = 0; j < r->n_out; j++) ml_tensor_release(grads[j]);
    int direct = node->ints[1];
    for (int e = 0; e < r->n_in; e++) {
        if (rc) ml_tensor_release(result[e]);
        else if (e < direct) gin[e] = result[e];
        else r->grad_in[e] = result[e];
    }
    if (!rc && direct < node->n_inputs) gin[direct] = ml_tensor_retain(r->token);
    if (grads != grads_small) free(grads);
    if (result != result_small) free(result);
    return rc;
}

/* An input relay: edges ints[0] .. ints[0] + ints[1] - 1, then maybe the next relay. */
static int input_relay_backward(ml_node *node, ml_tensor *grad_out, ml_tensor **gin) {
    (void)grad_out;
    fn_record *r = node->ctx;
    int first = (int)node->ints[0], direct = (int)node->ints[1];
    for (int i = 0; i < direct; i++) {
        gin[i] = r->grad_in[first + i];
        r->grad_in[first + i] = NULL;
    }
    if (direct < node->n_inputs) gin[direct] = ml_tensor_retain(r->token);
    return 0;
}

/* An output relay: parks output ints[0]'s gradient and wakes F. */
static int output_relay_backward(ml_node *node, ml_tensor *grad_out, ml_tensor **gin) {
    fn_record *r = node->ctx;
    int j = (int)node->ints[0];
    ml_tensor_release(r->grad_out[j]);
    r->grad_out[j] = ml_tensor_retain(grad_out);
    gin[0] = ml_tensor_retain(r->token);
    return 0;
}

/* --- apply --- */

static void meta_of(fn_meta *m, const ml_tensor *t, int pos) {
    m->ndim = t->ndim;
    memcpy(m->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    m->dtype = t->dtype;
    m->device = t->storage->device;
    m->pos = pos;
}

/* A stand-in tensor whose only use is to give a node an edge to `to`. */
static ml_tensor edge_to(ml_node *to) {
    ml_tensor t;
    memset(&t, 0, sizeof t);
    t.requires_grad = true;
    t.grad_fn = to;
    return t;
}

/* Makes the node that takes the edges [first, n_in) of the record: itself with
 * up to 4 of them, or 3 and an edge to a relay holding the rest (made first, so
 * it is older). On success the node's only reference is owned by *out's
 * grad_fn. Returns the node, or NULL (ml_error set). */
static ml_node *make_input_chain(fn_record *r, ml_tensor *const *edges, int first, ml_tensor *out,
                                 ml_backward_fn fn) {
    int left = r->n_in - first;
    int direct = left <= ML_NODE_MAX_INPUTS ? left : ML_NODE_MAX_INPUTS - 1;
    ml_tensor *inputs[ML_NODE_MAX_INPUTS];
    for (int i = 0; i < direct; i++) inputs[i] = edges[first + i];
    ml_node *relay = NULL;
    ml_tensor relay_edge;
    int n = direct;
    if (direct < left) {
        ml_tensor relay_out;
        memset(&relay_out, 0, sizeof relay_out);
        relay = make_input_chain(r, edges, first + direct, &relay_out, input_relay_backward);
        if (!relay) return NULL;
        relay_edge = edge_to(relay);
        inputs[n++] = &relay_edge;
    }
    ml_node *node = ml_node_attach(out, r->name, fn, n, inputs);
    if (relay) ml_node_release(relay); /* relay_out's reference: node holds it now */
    if (!node) return ml_error_set("%s: out of memory", r->name), NULL;
    node->ints[0] = first;
    node->ints[1] = direct;
    node->ctx = r;
    node->free_ctx = fn == main_backward ? main_release : record_release;
    r->refs++;
    return node;
}

static fn_record *record_new(const char *name, int n_args, int n_results, int n_in, int n_out) {
    fn_record *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->ref = LUA_NOREF;
    r->name = name;
    r->n_args = n_args;
    r->n_results = n_results;
    r->n_in = n_in;
    r->n_out = n_out;
    r->in = calloc((size_t)n_in, sizeof *r->in);
    r->out = calloc((size_t)n_out, sizeof *r->out);
    r->grad_in = calloc((size_t)n_in, sizeof *r->grad_in);
    r->grad_out = calloc((size_t)n_out, sizeof *r->grad_out);
    int64_t scalar_shape[1] = {1};
    r->token = ml_zeros(ML_F32, ML_CPU, 0, scalar_shape);
    r->refs = 1; /* the caller's, dropped once the nodes hold it */
    if (!r->in || !r->out || !r->grad_in || !r->grad_out || !r->token) {
        record_release(r);
        return NULL;
    }
    return r;
}

/* _function_attach(name, closure, args, results, non_differentiable, materialize)
 *   name: the Function's name ("Cube"); closure: function(...) -> one gradient per
 *   argument; args, results: tables with n (forward's arguments and results);
 *   non_differentiable: nil or a set {[tensor] = true} of results left out;
 *   materialize: unreached outputs get zeros (else nil).
 * Returns a table with n: the results, each differentiable one (a floating
 * point tensor) replaced by a tensor over the same data whose grad_fn is the
 * Function's node. Grad mode and an input requiring grad are the caller's checks. */
static int l_function_attach(lua_State *L) {
    const char *fname = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    bool has_nd = !lua_isnoneornil(L, 5);
    if (has_nd) luaL_checktype(L, 5, LUA_TTABLE);
    bool materialize = lua_toboolean(L, 6);
    lua_getfield(L, 3, "n");
    int n_args = (int)luaL_checkinteger(L, -1);
    lua_getfield(L, 4, "n");
    int n_results = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 2);
    fn_anchor *anchor = anchor_of(L);
    anchor_sweep(L);
    const char *name = intern_backward_name(fname);
    if (!name) return luaL_error(L, "%s.apply: out of host memory", fname);

    /* the result table first: every allocation that may raise comes before the
     * nodes are made */
    lua_createtable(L, n_results, 1);
    int res = lua_gettop(L);
    lua_pushinteger(L, n_results);
    lua_setfield(L, res, "n");
    int n_in = 0, n_out = 0;
    for (int a = 1; a <= n_args; a++) {
        lua_rawgeti(L, 3, a);
        ml_tensor *t = ml_lua_test_tensor(L, -1);
        if (t && t->requires_grad) n_in++;
        lua_pop(L, 1);
    }
    bool *diff = lua_newuserdatauv(L, (size_t)(n_results > 0 ? n_results : 1), 0);
    for (int k = 1; k <= n_results; k++) {
        lua_rawgeti(L, 4, k);
        ml_tensor *t = ml_lua_test_tensor(L, -1);
        bool d = t && ml_dtype_is_float(t->dtype);
        if (d && has_nd) {
            lua_pushvalue(L, -1);
            d = lua_rawget(L, 5) == LUA_TNIL;
            lua_pop(L, 1);
        }
        diff[k - 1] = d;
        if (d) n_out++;
        lua_pop(L, 1);
    }
    if (n_in == 0 || n_out == 0) {
        /* nothing to differentiate: the results as they are */
        for (int k = 1; k <= n_results; k++) {
            lua_rawgeti(L, 4, k);
            lua_rawseti(L, res, k);
        }
        lua_pushvalue(L, res);
        return 1;
    }
    /* the outputs: new tensor structs over forward's results, pushed (and so
     * owned by Lua) before any node exists */
    ml_tensor **outs = lua_newuserdatauv(L, sizeof *outs * (size_t)n_out, 0);
    ml_tensor **edges = lua_newuserdatauv(L, sizeof *edges * (size_t)n_in, 0);
    fn_record *r = record_new(name, n_args, n_results, n_in, n_out);
    if (!r) return luaL_error(L, "%s.apply: out of memory", fname);
    int e = 0;
    for (int a = 1; a <= n_args; a++) {
        lua_rawgeti(L, 3, a);
        ml_tensor *t = ml_lua_test_tensor(L, -1);
        if (t && t->requires_grad) {
            meta_of(&r->in[e], t, a - 1);
            edges[e++] = t; /* borrowed: args keeps them alive during this call */
        }
        lua_pop(L, 1);
    }
    int j = 0;
    for (int k = 1; k <= n_results; k++) {
        lua_rawgeti(L, 4, k);
        if (diff[k - 1]) {
            ml_tensor *t = ml_lua_test_tensor(L, -1);
            meta_of(&r->out[j], t, k - 1);
            ml_tensor *alias = ml_tensor_alias(t);
            lua_pop(L, 1);
            if (!alias) {
                record_release(r);
                return ml_lua_error(L);
            }
            ml_lua_push_tensor(L, alias); /* Lua owns it from here */
            outs[j++] = alias;
        }
        lua_rawseti(L, res, k);
    }
    r->anchor = anchor;
    anchor->refs++;
    r->materialize = materialize;

    /* the closure's reference: the last Lua call that may raise */
    lua_pushvalue(L, 2);
    r->ref = luaL_ref(L, LUA_REGISTRYINDEX);

    /* the nodes: F on the only output, or on a stand-in that the output relays
     * take over; the input relays inside make_input_chain */
    ml_tensor main_out;
    memset(&main_out, 0, sizeof main_out);
    ml_node *f = make_input_chain(r, edges, 0, n_out == 1 ? outs[0] : &main_out, main_backward);
    int rc = f ? 0 : -1;
    if (f && n_out > 1) {
        ml_tensor f_edge = edge_to(f);
        ml_tensor *in[1] = {&f_edge};
        for (j = 0; j < n_out && rc == 0; j++) {
            ml_node *o = ml_node_attach(outs[j], name, output_relay_backward, 1, in);
            if (!o) {
                rc = ml_error_set("%s.apply: out of memory", fname);
                break;
            }
            o->ints[0] = j;
            o->ctx = r;
            o->free_ctx = record_release;
            r->refs++;
        }
        ml_node_release(f); /* main_out's reference: the output relays hold F now */
    }
    if (!f) {
        /* nothing holds the closure: drop it now */
        luaL_unref(L, LUA_REGISTRYINDEX, r->ref);
        r->ref = LUA_NOREF;
    }
    record_release(r); /* this call's reference */
    if (rc) return ml_lua_error(L);
    lua_pushvalue(L, res);
    return 1;
}

void ml_lua_open_autograd_function(lua_State *L, int module) {
    static const luaL_Reg funcs[] = {{"_function_attach", l_function_attach}, {NULL, NULL}};
    ml_lua_setfuncs(L, module, funcs);
}
