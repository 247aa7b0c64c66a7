#include "autograd.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "ops.h"

static _Thread_local bool grad_disabled;
static _Thread_local ml_leaf_hook_fn leaf_hook;
static _Thread_local void *leaf_hook_ctx;

void ml_autograd_set_leaf_hook(ml_leaf_hook_fn fn, void *ctx) {
    leaf_hook = fn;
    leaf_hook_ctx = ctx;
}
static _Thread_local uint64_t next_seq;

bool ml_grad_enabled(void) { return !grad_disabled; }
void ml_set_grad_enabled(bool on) { grad_disabled = !on; }

bool ml_needs_graph(int n, ml_tensor *const *inputs) {
    if (grad_disabled) return false;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad) return true;
    return false;
}

/* Nodes come from the CPU allocator's free lists, as tensor structs do (see
 * tensor.c): the collector frees them in bursts. */
static ml_node *node_alloc(void) {
    ml_node *n = ml_cpu_backend()->memory->alloc(sizeof *n);
    if (n) memset(n, 0, sizeof *n);
    return n;
}

ml_node *ml_node_attach(ml_tensor *out, const char *name, ml_backward_fn fn, int n,
                        ml_tensor *const *inputs) {
    if (!ml_needs_graph(n, inputs)) return NULL;
    ml_node *node = node_alloc();
    if (!node) return NULL; /* no graph is better than a crash; backward will say so */
    node->refcount = 1;
    node->name = name;
    node->backward = fn;
    node->seq = next_seq++;
    node->n_inputs = n;
    for (int i = 0; i < n; i++) {
        ml_tensor *in = inputs[i];
        if (!in) continue;
        node->in_ndim[i] = in->ndim;
        memcpy(node->in_shape[i], in->shape, sizeof(int64_t) * (size_t)in->ndim);
        node->in_dtype[i] = in->dtype;
        if (!in->requires_grad) continue;
        node->needs_grad[i] = true;
        if (in->grad_fn) {
            node->next[i] = in->grad_fn;
            in->grad_fn->refcount++;
        } else {
            node->leaf[i] = ml_tensor_retain(in);
        }
    }
    out->grad_fn = node;
    out->requires_grad = true;
    return node;
}

void ml_node_save(ml_node *node, const ml_tensor *t) {
    if (node->n_saved < ML_NODE_MAX_SAVED) node->saved[node->n_saved++] = ml_tensor_alias(t);
}

/* Drops what backward needed; the node itself lives as long as its output. */
static void node_free_graph(ml_node *node) {
    for (int i = 0; i < node->n_inputs; i++) {
        if (node->next[i]) ml_node_release(node->next[i]);
        ml_tensor_release(node->leaf[i]);
        node->next[i] = NULL;
        node->leaf[i] = NULL;
    }
    for (int i = 0; i < node->n_saved; i++) {
        ml_tensor_release(node->saved[i]);
        node->saved[i] = NULL;
    }
    node->n_saved = 0;
    if (node->free_ctx && node->ctx) node->free_ctx(node->ctx);
    node->ctx = NULL;
    node->released = true;
}

void ml_node_release(ml_node *node) {
    /* Iterative for the common chain case: a long graph must not overflow the C
     * stack when its last output is collected. */
    while (node && --node->refcount == 0) {
        ml_node *only_next = NULL;
        int n_next = 0;
        for (int i = 0; i < node->n_inputs; i++)
            if (node->next[i]) {
                n_next++;
                only_next = node->next[i];
            }
        if (n_next == 1) {
            for (int i = 0; i < node->n_inputs; i++) node->next[i] = NULL;
        } else {
            only_next = NULL;
        }
        node_free_graph(node);
        ml_tensor_release(node->grad_accum);
        ml_cpu_backend()->memory->free(node, sizeof *node);
        node = only_next;
    }
}

/* --- backward --- */

/* A list with room for a small graph inside it (a loss on a leaf is one node): no
 * heap allocation per backward until that is full. Initialise with list_init. */
#define NODE_LIST_SMALL 32
typedef struct {
    ml_node **items;
    size_t n, cap;
    ml_node *small[NODE_LIST_SMALL];
} node_list;

static void list_init(node_list *l) {
    l->items = l->small;
    l->n = 0;
    l->cap = NODE_LIST_SMALL;
}

static void list_free(node_list *l) {
    if (l->items != l->small) free(l->items);
}

static int list_push(node_list *l, ml_node *n) {
    if (l->n == l->cap) {
        size_t cap = l->cap * 2;
        ml_node **items = l->items == l->small ? malloc(cap * sizeof *items)
                                               : realloc(l->items, cap * sizeof *items);
        if (!items) return ml_error_set("backward: out of host memory");
        if (l->items == l->small) memcpy(items, l->small, l->n * sizeof *items);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = n;
    return 0;
}

/* Collects every node reachable from root once, retaining each: freeing the graph
 * afterwards drops edges, and a node whose output is gone must outlive that. The
 * top bit of seq marks a node as visited while collecting. */
static int collect(ml_node *root, node_list *out) {
    node_list stack;
    list_init(&stack);
    int rc = list_push(&stack, root);
    root->seq |= (uint64_t)1 << 63; /* visited mark, cleared below */
    while (rc == 0 && stack.n) {
        ml_node *n = stack.items[--stack.n];
        rc = list_push(out, n);
        if (rc == 0) n->refcount++;
        for (int i = 0; rc == 0 && i < n->n_inputs; i++) {
            ml_node *m = n->next[i];
            if (m && !(m->seq >> 63)) {
                m->seq |= (uint64_t)1 << 63;
                rc = list_push(&stack, m);
            }
        }
    }
    list_free(&stack);
    for (size_t i = 0; i < out->n; i++) out->items[i]->seq &= ~((uint64_t)1 << 63);
    return rc;
}

static int by_seq_desc(const void *a, const void *b) {
    uint64_t x = (*(ml_node *const *)a)->seq, y = (*(ml_node *const *)b)->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* sum += g, taking ownership of g; *sum may be NULL. */
static int accumulate(ml_tensor **sum, ml_tensor *g) {
    if (!*sum) {
        *sum = g;
        return 0;
    }
    ml_tensor *s = ml_add(*sum, g);
    ml_tensor_release(g);
    if (!s) return -1;
    ml_tensor_release(*sum);
    *sum = s;
    return 0;
}

/* Adds g into leaf->grad. A fresh tensor of its own becomes the grad; an existing
 * grad is updated in place, as PyTorch's AccumulateGrad does, so that optimizers
 * holding leaf->grad see the sum. */
static int accumulate_leaf(ml_tensor *leaf, ml_tensor *g) {
    if (!ml_same_shape(leaf, g)) {
        char a[ML_SHAPE_STR_MAX], b[ML_SHAPE_STR_MAX];
        ml_error_set("backward: gradient of shape %s for a leaf of shape %s",
                     ml_shape_str(g->ndim, g->shape, a, sizeof a),
                     ml_shape_str(leaf->ndim, leaf->shape, b, sizeof b));
        ml_tensor_release(g);
        return -1;
    }
    if (!leaf->grad) {
        ml_tensor *own = (g->refcount == 1 && !g->grad_fn && ml_is_contiguous(g) &&
                          g->storage->refcount == 1)
                             ? g
                             : ml_contiguous_copy(g);
        if (own != g) ml_tensor_release(g);
        if (!own) return -1;
        leaf->grad = own;
        return 0;
    }
    int rc = ml_add_inplace(leaf->grad, g);
    ml_tensor_release(g);
    return rc;
}

/* A leaf and the position, in execution order, of the last node with an edge to it. */
typedef struct {
    ml_tensor *leaf;
    size_t last;
} leaf_last;

static int by_leaf_then_pos(const void *a, const void *b) {
    const leaf_last *x = a, *y = b;
    if (x->leaf != y->leaf) return (uintptr_t)x->leaf < (uintptr_t)y->leaf ? -1 : 1;
    return x->last < y->last ? -1 : x->last > y->last;
}

static int by_pos(const void *a, const void *b) {
    const leaf_last *x = a, *y = b;
    return x->last < y->last ? -1 : x->last > y->last;
}

/* For the leaf hook: every leaf edge of the sorted nodes, reduced to one entry
 * per leaf with its last node, sorted by that position. *out is malloc'd (NULL
 * when there is no leaf edge). */
static int leaf_schedule(const node_list *nodes, leaf_last **out, size_t *n_out) {
    size_t n = 0;
    for (size_t i = 0; i < nodes->n; i++)
        for (int k = 0; k < nodes->items[i]->n_inputs; k++)
            if (nodes->items[i]->needs_grad[k] && nodes->items[i]->leaf[k]) n++;
    *out = NULL;
    *n_out = 0;
    if (!n) return 0;
    leaf_last *e = malloc(n * sizeof *e);
    if (!e) return ml_error_set("backward: out of host memory");
    size_t j = 0;
    for (size_t i = 0; i < nodes->n; i++)
        for (int k = 0; k < nodes->items[i]->n_inputs; k++)
            if (nodes->items[i]->needs_grad[k] && nodes->items[i]->leaf[k])
                e[j++] = (leaf_last){nodes->items[i]->leaf[k], i};
    qsort(e, n, sizeof *e, by_leaf_then_pos);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && e[m - 1].leaf == e[i].leaf) e[m - 1].last = e[i].last; /* sorted: the later one */
        else e[m++] = e[i];
    }
    qsort(e, m, sizeof *e, by_pos);
    *out = e;
    *n_out = m;
    return 0;
}

int ml_backward(ml_tensor *root, ml_tensor *grad) {
    char sh[ML_SHAPE_STR_MAX];
    if (!root->requires_grad)
        return ml_error_set("backward: the tensor does not require grad and has no grad_fn");
    if (grad && !ml_same_shape(grad, root)) {
        char sh2[ML_SHAPE_STR_MAX];
        return ml_error_set("backward: grad of shape %s for a tensor of shape %s",
                            ml_shape_str(grad->ndim, grad->shape, sh, sizeof sh),
                            ml_shape_str(root->ndim, root->shape, sh2, sizeof sh2));
    }
    if (!grad && ml_numel(root) != 1)
        return ml_error_set("backward: grad can be implicitly created only for scalar outputs "
                            "(got shape %s); pass a gradient",
                            ml_shape_str(root->ndim, root->shape, sh, sizeof sh));
    if (grad && grad->storage->device != root->storage->device)
        return ml_error_set("backward: grad is on %s, the tensor on %s",
                            ml_device_name(grad->storage->device),
                            ml_device_name(root->storage->device));
    ml_tensor *g0 = grad ? ml_tensor_retain(grad) : ml_full_like(root, 1.0);
    if (!g0) return -1;
    /* no graph is recorded while gradients are computed */
    bool was_enabled = ml_grad_enabled();
    ml_set_grad_enabled(false);
    int rc = 0;
    if (!root->grad_fn) {
        rc = accumulate_leaf(root, g0);
        if (rc == 0 && leaf_hook) rc = leaf_hook(leaf_hook_ctx, root);
        ml_set_grad_enabled(was_enabled);
        return rc;
    }
    if (root->grad_fn->released) {
        ml_tensor_release(g0);
        ml_set_grad_enabled(was_enabled);
        return ml_error_set("backward: trying to backward through the graph a second time; "
                            "its saved tensors were freed after the first backward");
    }
    node_list nodes;
    list_init(&nodes);
    rc = collect(root->grad_fn, &nodes);
    if (rc == 0 && nodes.n > 1) qsort(nodes.items, nodes.n, sizeof *nodes.items, by_seq_desc);
    root->grad_fn->grad_accum = g0;
    leaf_last *sched = NULL;
    size_t n_sched = 0, next_leaf = 0;
    if (rc == 0 && leaf_hook) rc = leaf_schedule(&nodes, &sched, &n_sched);
    for (size_t i = 0; rc == 0 && i < nodes.n; i++) {
        /* the leaves whose last node ran before this one are final */
        for (; rc == 0 && next_leaf < n_sched && sched[next_leaf].last < i; next_leaf++)
            rc = leaf_hook(leaf_hook_ctx, sched[next_leaf].leaf);
        if (rc != 0) break;
        ml_node *n = nodes.items[i];
        ml_tensor *g = n->grad_accum;
        n->grad_accum = NULL;
        if (!g) continue; /* no gradient reached it */
        if (n->released) {
            ml_tensor_release(g);
            rc = ml_error_set("backward: trying to backward through the graph a second time "
                              "(%s was freed)", n->name);
            break;
        }
        ml_tensor *gin[ML_NODE_MAX_INPUTS] = {0};
        rc = n->backward(n, g, gin);
        ml_tensor_release(g);
        for (int k = 0; k < n->n_inputs; k++) {
            if (!gin[k]) continue;
            if (rc != 0 || !n->needs_grad[k]) {
                ml_tensor_release(gin[k]);
            } else if (n->next[k]) {
                rc = accumulate(&n->next[k]->grad_accum, gin[k]);
            } else if (n->leaf[k]) {
                rc = accumulate_leaf(n->leaf[k], gin[k]);
            } else {
                ml_tensor_release(gin[k]);
            }
        }
    }
    for (; rc == 0 && next_leaf < n_sched; next_leaf++) rc = leaf_hook(leaf_hook_ctx, sched[next_leaf].leaf);
    free(sched);
    for (size_t i = 0; i < nodes.n; i++) {
        ml_tensor_release(nodes.items[i]->grad_accum);
        nodes.items[i]->grad_accum = NULL;
        node_free_graph(nodes.items[i]);
    }
    for (size_t i = 0; i < nodes.n; i++) ml_node_release(nodes.items[i]);
    list_free(&nodes);
    ml_set_grad_enabled(was_enabled);
    return rc;
}
