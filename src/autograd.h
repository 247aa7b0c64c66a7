/* Autograd: a dynamic graph recorded as ops run, walked once by backward().
 *
 * Every differentiable op that sees an input requiring grad (while grad mode is
 * on) makes one node and hangs it on its output as grad_fn. A node keeps edges to
 * where each input's gradient goes: the input's own grad_fn, or the input itself
 * when it is a leaf that requires grad (the gradient accumulates in leaf->grad).
 * It keeps no reference to its inputs' data unless the rule needs it; what it
 * needs it saves as detached aliases (ml_tensor_alias), which breaks the cycle
 * output -> grad_fn -> saved output.
 *
 * backward() orders the reachable nodes by creation sequence (an input's node is
 * always older than its consumer's), runs each rule once, and then releases every
 * node's saved tensors and edges: the graph is freed as in PyTorch without
 * retain_graph, so memory stays flat over a training loop. */
#ifndef ML_AUTOGRAD_H
#define ML_AUTOGRAD_H

#include "tensor.h"

#define ML_NODE_MAX_INPUTS 4
#define ML_NODE_MAX_SAVED 5

typedef struct ml_node ml_node;

/* Computes the gradient of each input from grad_out (the gradient of the node's
 * output, the output's shape). Writes a new reference, or NULL for "no gradient",
 * into grad_in[i] for each input i that needs one (node->needs_grad[i]).
 * Returns 0, or -1 with ml_error set. */
typedef int (*ml_backward_fn)(ml_node *node, ml_tensor *grad_out, ml_tensor **grad_in);

struct ml_node {
    int refcount;
    const char *name;               /* "MulBackward", for messages and debugging */
    ml_backward_fn backward;
    uint64_t seq;                   /* creation order */
    int n_inputs;
    bool needs_grad[ML_NODE_MAX_INPUTS];
    ml_node *next[ML_NODE_MAX_INPUTS];     /* the input's grad_fn (retained), or NULL */
    ml_tensor *leaf[ML_NODE_MAX_INPUTS];   /* the input itself when it is a grad leaf (retained) */
    int n_saved;
    ml_tensor *saved[ML_NODE_MAX_SAVED];   /* detached aliases the rule needs */
    /* Op parameters the rule needs (dims, shapes, scalars). */
    int64_t ints[ML_MAX_DIMS * 2];
    double scalars[4];
    int in_ndim[ML_NODE_MAX_INPUTS];
    int64_t in_shape[ML_NODE_MAX_INPUTS][ML_MAX_DIMS];
    ml_dtype in_dtype[ML_NODE_MAX_INPUTS];
    void *ctx;                      /* anything else, freed with free_ctx */
    void (*free_ctx)(void *ctx);
    bool released;                  /* backward already ran through it */
    ml_tensor *grad_accum;          /* gradient being summed during backward */
};

/* Grad mode is per thread, so runtimes in different threads don't interfere. */
bool ml_grad_enabled(void);
void ml_set_grad_enabled(bool on);

/* True when an op on these inputs must record a node. */
bool ml_needs_graph(int n, ml_tensor *const *inputs);

/* Makes a node for an op over inputs and attaches it to out (out->grad_fn,
 * out->requires_grad). Returns the node so the op can save what the rule needs,
 * or NULL when no graph is needed (then it does nothing). */
ml_node *ml_node_attach(ml_tensor *out, const char *name, ml_backward_fn fn, int n,
                        ml_tensor *const *inputs);
/* Saves a detached alias of t in node->saved[node->n_saved++]. */
void ml_node_save(ml_node *node, const ml_tensor *t);
void ml_node_release(ml_node *node);

/* A function ml_backward calls, on its own thread, once for each leaf whose
 * gradient is final for this backward: after the last node with an edge to the
 * leaf has run (whether or not a gradient came through it; leaf->grad may then
 * be NULL), or at once when root itself is the leaf. Leaves that backward does
 * not reach are not reported. Returning -1 (with ml_error set) fails the
 * backward. What data-parallel training starts its all-reduces from (src/ddp.c);
 * PyTorch's post-accumulate-grad hooks. */
typedef int (*ml_leaf_hook_fn)(void *ctx, ml_tensor *leaf);
/* Sets this thread's hook (NULL: none, the default); costs nothing when unset. */
void ml_autograd_set_leaf_hook(ml_leaf_hook_fn fn, void *ctx);

/* Runs backward from root. grad is the gradient of root (NULL: root must hold one
 * element, and the gradient is 1). Returns 0, or -1 with ml_error set. */
int ml_backward(ml_tensor *root, ml_tensor *grad);

#endif
