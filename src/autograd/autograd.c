#include "autograd.h"

#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../ops/ops.h"

/* Every backward function named in the op list is declared by the op headers
 * that ops.h includes; the table is built from the same list, so an op without
 * a backward does not link, and the count is checked at compile time. */
const ser_op_info ser_op_table[SER_OP_COUNT] = {
#define SER_OP_ENTRY(e, name, fn) [SER_OP_##e] = {name, fn},
    SER_OPS(SER_OP_ENTRY)
#undef SER_OP_ENTRY
};
_Static_assert(sizeof ser_op_table / sizeof ser_op_table[0] == SER_OP_COUNT, "op table size");

static _Thread_local int grad_disabled;

int ser_grad_enabled(void) { return !grad_disabled; }

int ser_set_grad_enabled(int enabled) {
  int prev = !grad_disabled;
  grad_disabled = !enabled;
  return prev;
}

int ser_autograd_needed(int n_inputs, ser_tensor *const *inputs) {
  if (grad_disabled) return 0;
  for (int i = 0; i < n_inputs; i++)
    if (inputs[i] && inputs[i]->requires_grad) return 1;
  return 0;
}

static void node_free_inputs(ser_node *n) {
  for (int i = 0; i < SER_NODE_MAX_INPUTS; i++) {
    ser_tensor_release(n->inputs[i]);
    n->inputs[i] = NULL;
  }
  for (int i = 0; i < SER_NODE_MAX_SAVED; i++) {
    ser_tensor_release(n->saved[i]);
    n->saved[i] = NULL;
  }
  if (n->ctx && n->ctx_free) n->ctx_free(n->ctx);
  n->ctx = NULL;
  n->freed = 1;
}

void ser_node_release(ser_node *n) {
  if (!n || --n->refcount > 0) return;
  node_free_inputs(n);
  ser_tensor_release(n->grad_buf);
  free(n);
}

int ser_autograd_record(ser_tensor *out, ser_op op, int n_inputs, ser_tensor *const *inputs, ser_node **node) {
  *node = NULL;
  if (!ser_autograd_needed(n_inputs, inputs)) return 0;
  if (op < 0 || op >= SER_OP_COUNT || !ser_op_table[op].backward)
    return ser_error(SER_EUNSUPPORTED, "autograd: op %d has no backward; refusing to record it", (int)op);
  if (n_inputs > SER_NODE_MAX_INPUTS)
    return ser_error(SER_EINVAL, "autograd: %s has %d inputs, at most %d supported", ser_op_table[op].name, n_inputs,
                     SER_NODE_MAX_INPUTS);
  ser_node *n = calloc(1, sizeof *n);
  if (!n) return ser_error(SER_ENOMEM, "autograd: out of memory");
  /* the tensor layer frees a node through this hook; set before the first node exists */
  ser_tensor_set_node_release(ser_node_release);
  n->refcount = 1;
  n->op = op;
  n->n_inputs = n_inputs;
  for (int i = 0; i < n_inputs; i++) n->inputs[i] = ser_tensor_retain(inputs[i]);
  n->out_ndim = out->ndim;
  memcpy(n->out_shape, out->shape, sizeof n->out_shape);
  if (out->grad_fn) ser_node_release(out->grad_fn);
  out->grad_fn = n;
  out->requires_grad = 1;
  *node = n;
  return 0;
}

ser_tensor *ser_detach(ser_tensor *t) { return ser_tensor_alias(t); }

void ser_tensor_zero_grad(ser_tensor *t, int set_to_none) {
  if (!t->grad) return;
  if (set_to_none) {
    ser_tensor_release(t->grad);
    t->grad = NULL;
  } else {
    ser_tensor_fill(t->grad, 0);
  }
}

/* ---- backward engine ---- */

static unsigned char seen_ops[SER_OP_COUNT];
void ser_autograd_seen_reset(void) { memset(seen_ops, 0, sizeof seen_ops); }
int ser_autograd_seen(ser_op op) { return op >= 0 && op < SER_OP_COUNT && seen_ops[op]; }

typedef struct {
  ser_node **items;
  int n, cap;
} node_list;

static int list_push(node_list *l, ser_node *n) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 64;
    ser_node **items = realloc(l->items, (size_t)cap * sizeof *items);
    if (!items) return ser_error(SER_ENOMEM, "backward: out of memory");
    l->items = items;
    l->cap = cap;
  }
  l->items[l->n++] = n;
  return 0;
}

/* Iterative post-order DFS: children (producers of inputs) before parents,
 * so walking the list backwards visits each node after all its consumers. */
static int topo_sort(ser_node *root, node_list *order) {
  node_list stack = {0};
  int rc = list_push(&stack, root);
  root->mark = 1;
  while (!rc && stack.n) {
    ser_node *n = stack.items[stack.n - 1];
    int pushed = 0;
    for (int i = 0; i < n->n_inputs && !pushed; i++) {
      ser_tensor *in = n->inputs[i];
      if (in && in->grad_fn && in->grad_fn->mark == 0) {
        in->grad_fn->mark = 1;
        rc = list_push(&stack, in->grad_fn);
        pushed = 1;
      }
    }
    if (!pushed && !rc) {
      stack.n--;
      n->mark = 2;
      rc = list_push(order, n);
    }
  }
  free(stack.items);
  return rc;
}

/* The buffer a backward accumulates into for input `in`: the producing node's
 * output gradient, or the leaf's .grad. A leaf's is created zeroed; a node's
 * is created uninitialised and marked fresh (*fresh = 1 until its first
 * writer has run): the first writer either overwrites it (ops that can, see
 * overwrites_fresh) or the engine zeroes it first. Skipping the zero fill
 * saves a pass over every activation-sized gradient (~5% of a CNN step). */
static ser_tensor *grad_target(ser_tensor *in, int *fresh) {
  *fresh = 0;
  if (!in || !in->requires_grad) return NULL;
  if (in->grad_fn) {
    if (!in->grad_fn->grad_buf) {
      in->grad_fn->grad_buf = ser_tensor_empty(in->ndim, in->shape);
      in->grad_fn->grad_buf_fresh = 1;
    }
    *fresh = in->grad_fn->grad_buf_fresh;
    return in->grad_fn->grad_buf;
  }
  if (in->grad && !ser_tensor_same_shape(in->grad, in)) {
    ser_tensor_release(in->grad);
    in->grad = NULL;
  }
  if (!in->grad) in->grad = ser_tensor_zeros(in->ndim, in->shape);
  return in->grad;
}

/* The inputs (bit i = gin[i]) whose gradient the op's backward writes in
 * full, instead of adding to it, when node->gin_fresh flags them: the
 * activation input of the ops that follow big activations. Every other
 * fresh buffer is zeroed by the engine before the backward runs. */
static unsigned overwrites_fresh(ser_op op) {
  switch (op) {
  case SER_OP_RELU:
  case SER_OP_CONV2D:
  case SER_OP_CONV1D:
  case SER_OP_BATCH_NORM:
  case SER_OP_BATCH_NORM_RELU:
  case SER_OP_MAX_POOL:
  case SER_OP_ADAPTIVE_AVG_POOL:
    return 1u;
  default:
    return 0u;
  }
}

int ser_backward(ser_tensor *root, const ser_tensor *grad, int retain_graph) {
  if (!root->requires_grad)
    return ser_error(SER_ESTATE, "backward: tensor %s does not require grad and has no grad_fn", SER_SHAPE(root));
  if (grad && !ser_tensor_same_shape(grad, root))
    return ser_error(SER_EINVAL, "backward: gradient has shape %s, expected the tensor's shape %s", SER_SHAPE(grad),
                     SER_SHAPE(root));
  if (!grad && ser_tensor_numel(root) != 1)
    return ser_error(SER_EINVAL,
                     "backward: grad can be implicitly created only for one-element outputs, got %s; pass a gradient",
                     SER_SHAPE(root));
  if (!root->grad_fn) { /* a leaf: its gradient is the seed */
    int fresh;
    ser_tensor *g = grad_target(root, &fresh);
    if (!g) return SER_ENOMEM;
    if (grad) return ser_tensor_add_(g, grad, 1.0f); /* reads any view of grad, no copy */
    ser_tensor_data(g)[0] += 1.0f;
    return 0;
  }
  if (root->grad_fn->freed)
    return ser_error(SER_ESTATE,
                     "backward: trying to backward through the graph a second time (its buffers were freed); "
                     "pass retain_graph = true to the first backward if you need to");

  node_list order = {0};
  int rc = topo_sort(root->grad_fn, &order);
  for (int i = 0; i < order.n; i++) {
    order.items[i]->mark = 0;
    if (order.items[i]->freed && !rc)
      rc = ser_error(SER_ESTATE, "backward: part of the graph (op %s) was already freed by an earlier backward; "
                                 "use retain_graph = true", ser_op_table[order.items[i]->op].name);
  }
  if (!rc) {
    ser_node *r = root->grad_fn;
    ser_tensor_release(r->grad_buf);
    r->grad_buf = grad ? ser_tensor_clone_raw(grad) : ser_tensor_full(root->ndim, root->shape, 1.0f);
    if (!r->grad_buf) rc = SER_ENOMEM;
  }
  /* Backward functions may call forward ops; they must record nothing. */
  int prev_grad = ser_set_grad_enabled(0);
  for (int k = order.n - 1; k >= 0 && !rc; k--) {
    ser_node *n = order.items[k];
    if (!n->grad_buf) continue; /* no gradient reached this node */
    ser_tensor *gin[SER_NODE_MAX_INPUTS] = {0};
    unsigned fresh_bits = 0;
    for (int i = 0; i < n->n_inputs; i++) {
      ser_tensor *in = n->inputs[i];
      if (!in || !in->requires_grad) continue;
      int fresh;
      gin[i] = grad_target(in, &fresh);
      if (!gin[i]) {
        rc = SER_ENOMEM;
        break;
      }
      if (fresh) fresh_bits |= 1u << i;
    }
    if (!rc && fresh_bits) {
      /* Zero what the op cannot overwrite: every fresh buffer for most ops, and
       * one that two inputs share (x op x), where the second write must add. */
      unsigned ok = overwrites_fresh(n->op);
      for (int i = 0; i < n->n_inputs; i++) {
        if (!(fresh_bits & (1u << i))) continue;
        int shared = 0;
        for (int j = 0; j < n->n_inputs; j++) shared |= j != i && gin[j] == gin[i];
        if (!(ok & (1u << i)) || shared) {
          memset(ser_tensor_data(gin[i]), 0, sizeof(float) * (size_t)ser_tensor_numel(gin[i]));
          n->inputs[i]->grad_fn->grad_buf_fresh = 0;
          fresh_bits &= ~(1u << i);
        }
      }
    }
    if (!rc) {
      seen_ops[n->op] = 1;
      n->gin_fresh = fresh_bits;
      rc = ser_op_table[n->op].backward(n, n->grad_buf, gin);
      n->gin_fresh = 0;
      for (int i = 0; i < n->n_inputs; i++)
        if (fresh_bits & (1u << i)) n->inputs[i]->grad_fn->grad_buf_fresh = 0;
      if (rc) ser_error_prefix(rc, "backward of %s", ser_op_table[n->op].name);
    }
    ser_tensor_release(n->grad_buf);
    n->grad_buf = NULL;
  }
  ser_set_grad_enabled(prev_grad);
  for (int k = 0; k < order.n; k++) {
    ser_node *n = order.items[k];
    ser_tensor_release(n->grad_buf);
    n->grad_buf = NULL;
    if (!retain_graph) node_free_inputs(n);
  }
  free(order.items);
  return rc;
}
