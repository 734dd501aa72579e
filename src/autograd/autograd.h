/* Define-by-run reverse-mode autodiff.
 *
 * Each differentiable op, after computing its output, calls
 * ser_autograd_record(). When grad mode is on and an input requires grad, that
 * creates a node holding references to the inputs and attaches it to the
 * output as grad_fn. ser_backward() walks the graph from a root in reverse
 * topological order. Gradients flow as contiguous tensors of the input's
 * shape; a backward function ACCUMULATES into them (llm.c style), so one
 * buffer per tensor serves all its consumers with no extra adds.
 *
 * Saved tensors must not hold the node's own output with its grad_fn (that is
 * a reference cycle): save ser_tensor_alias(out) instead. */
#ifndef SER_AUTOGRAD_AUTOGRAD_H
#define SER_AUTOGRAD_AUTOGRAD_H

#include "../core/tensor.h"
#include "oplist.h"

typedef enum {
#define SER_OP_ENUM(e, name, fn) SER_OP_##e,
  SER_OPS(SER_OP_ENUM)
#undef SER_OP_ENUM
  SER_OP_COUNT
} ser_op;

#define SER_NODE_MAX_INPUTS 8
#define SER_NODE_MAX_SAVED 8
#define SER_NODE_MAX_ARGS 8

/* gout: gradient w.r.t. the node's output (contiguous, output shape).
 * gin[i]: NULL if input i needs no gradient, else a contiguous buffer of input
 * i's shape to ACCUMULATE into. Return 0 or a SER_E* code. */
typedef int (*ser_backward_fn)(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

typedef struct ser_op_info {
  const char *name;
  ser_backward_fn backward;
} ser_op_info;
extern const ser_op_info ser_op_table[SER_OP_COUNT];

struct ser_node {
  /* A plain int, unlike the _Atomic counts of tensors and storages (src/core/tensor.h), because
   * a node is never shared: ser_autograd_record creates it with count 1 and hands that one
   * reference to its output tensor (grad_fn), nothing else retains a node, and the count only
   * drops when that tensor's header is freed -- which the tensor's atomic count lets exactly one
   * thread do. Threads sharing a model (the C API, src/infer/) therefore never touch one node
   * from two threads: ser_graph_run turns grad mode off (thread-local), their weights are leaves
   * (no grad_fn), and nodes recorded in one thread hang off that thread's own outputs. No other
   * thread records or runs backward (the prefetch worker only loads and augments audio). Make
   * this _Atomic if anything starts retaining nodes (sharing a graph across threads). */
  int refcount;
  ser_op op;
  int n_inputs;
  ser_tensor *inputs[SER_NODE_MAX_INPUTS];  /* retained; NULL entries allowed (e.g. no bias) */
  ser_tensor *saved[SER_NODE_MAX_SAVED];    /* retained; released when the graph is freed */
  int64_t iarg[SER_NODE_MAX_ARGS];          /* op arguments (stride, dims, ...) */
  double farg[SER_NODE_MAX_ARGS];
  void *ctx;                                /* op-private state, freed with ctx_free */
  void (*ctx_free)(void *ctx);
  int out_ndim;
  int64_t out_shape[SER_MAX_DIMS];
  ser_tensor *grad_buf;                     /* engine: gradient of the output during backward */
  int grad_buf_fresh;                       /* engine: grad_buf is not written yet (uninitialised) */
  unsigned gin_fresh;                       /* engine -> backward: bit i set when gin[i] is uninitialised
                                               memory the backward must overwrite rather than add to
                                               (only for ops listed in overwrites_fresh, autograd.c) */
  int freed;                                /* inputs/saved released after backward */
  int mark;                                 /* engine: traversal state */
};

/* Grad mode (thread-local). ser_grad_enabled() is false inside no_grad. */
int ser_grad_enabled(void);
int ser_set_grad_enabled(int enabled);   /* returns the previous value */

/* True when any non-NULL input requires grad and grad mode is on. */
int ser_autograd_needed(int n_inputs, ser_tensor *const *inputs);

/* Records `op` producing `out` from inputs (NULL entries allowed). Sets *node
 * to the new node (already attached to out, which becomes requires_grad) or
 * NULL when nothing needs a gradient. Fails if the op has no backward. */
int ser_autograd_record(ser_tensor *out, ser_op op, int n_inputs, ser_tensor *const *inputs,
                        ser_node **node);

/* Backpropagates from root. grad may be NULL for a one-element root (then 1).
 * retain_graph keeps the graph for another backward. */
int ser_backward(ser_tensor *root, const ser_tensor *grad, int retain_graph);

void ser_node_release(ser_node *n);
/* Zeroes (or drops, set_to_none) a leaf's accumulated gradient. */
void ser_tensor_zero_grad(ser_tensor *t, int set_to_none);
/* A tensor sharing t's data with no history; requires_grad off. */
ser_tensor *ser_detach(ser_tensor *t);

/* Central-difference gradient check of f at `inputs` (those with
 * requires_grad). Uses L = sum(f(x) * R) for a fixed random R. Reports the
 * worst relative error through *worst (max over elements of
 * |analytic - numeric| / max(1, |numeric|)). Returns 0 if within tol,
 * SER_EINVAL with a message naming the input and element otherwise. */
typedef int (*ser_gradcheck_fn)(void *ctx, ser_tensor *const *inputs, ser_tensor **out);
int ser_gradcheck(ser_gradcheck_fn f, void *ctx, int n_inputs, ser_tensor *const *inputs, double eps,
                  double tol, double *worst);
/* Op ids seen by ser_backward since the last reset (for the op-table coverage test). */
void ser_autograd_seen_reset(void);
int ser_autograd_seen(ser_op op);

#endif
