#include "shape.h"

#include <string.h>

#include "../core/error.h"
#include "elementwise.h"

/* Records a one-input shape op; releases y on failure. */
static int record1(ser_tensor **out, ser_tensor *y, ser_op op, ser_tensor *x, ser_node **node) {
  int rc = ser_autograd_record(y, op, 1, &x, node);
  if (rc) {
    ser_tensor_release(y);
    *out = NULL;
    return rc;
  }
  *out = y;
  return 0;
}

int ser_view(ser_tensor **out, ser_tensor *x, int ndim, const int64_t *shape) {
  ser_tensor *y;
  int rc = ser_tensor_view_raw(&y, x, ndim, shape);
  if (rc) {
    *out = NULL;
    return rc;
  }
  ser_node *node;
  return record1(out, y, SER_OP_VIEW, x, &node);
}

int ser_view_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  if (!gin[0]) return 0;
  ser_tensor *v;
  int rc = ser_tensor_view_raw(&v, (ser_tensor *)g, gin[0]->ndim, gin[0]->shape);
  if (!rc) rc = ser_tensor_add_(gin[0], v, 1.0f);
  ser_tensor_release(v);
  return rc;
}

int ser_contiguous(ser_tensor **out, ser_tensor *x) {
  if (ser_tensor_is_contiguous(x)) {
    *out = ser_tensor_retain(x);
    return 0;
  }
  ser_tensor *y = ser_tensor_clone_raw(x);
  if (!y) return SER_ENOMEM;
  ser_node *node;
  return record1(out, y, SER_OP_CONTIGUOUS, x, &node);
}

int ser_contiguous_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  return gin[0] ? ser_tensor_add_(gin[0], g, 1.0f) : 0;
}

int ser_reshape(ser_tensor **out, ser_tensor *x, int ndim, const int64_t *shape) {
  ser_tensor *c;
  int rc = ser_contiguous(&c, x);
  if (rc) return rc;
  rc = ser_view(out, c, ndim, shape);
  ser_tensor_release(c);
  return rc;
}

int ser_permute(ser_tensor **out, ser_tensor *x, const int *perm) {
  ser_tensor *y;
  int rc = ser_tensor_permute_raw(&y, x, perm);
  if (rc) {
    *out = NULL;
    return rc;
  }
  ser_node *node;
  rc = record1(out, y, SER_OP_PERMUTE, x, &node);
  if (!rc && node)
    for (int i = 0; i < x->ndim; i++) node->iarg[i] = perm[i];
  return rc;
}

/* y = x.permute(perm): y[i...] = x[perm-ordered], so x's gradient viewed through
 * the same permutation lines up with g element for element. */
int ser_permute_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  if (!gin[0]) return 0;
  int perm[SER_MAX_DIMS];
  for (int i = 0; i < gin[0]->ndim; i++) perm[i] = (int)n->iarg[i];
  ser_tensor *v;
  int rc = ser_tensor_permute_raw(&v, gin[0], perm);
  if (!rc) rc = ser_tensor_add_(v, g, 1.0f);
  ser_tensor_release(v);
  return rc;
}

int ser_transpose(ser_tensor **out, ser_tensor *x, int d0, int d1) {
  if (d0 < 0 || d0 >= x->ndim || d1 < 0 || d1 >= x->ndim) {
    *out = NULL;
    return ser_error(SER_EINVAL, "transpose: dims %d and %d out of range for a %d-d tensor %s", d0 + 1, d1 + 1, x->ndim,
                     SER_SHAPE(x));
  }
  int perm[SER_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) perm[i] = i;
  perm[d0] = d1;
  perm[d1] = d0;
  return ser_permute(out, x, perm);
}

int ser_narrow(ser_tensor **out, ser_tensor *x, int dim, int64_t start, int64_t length) {
  ser_tensor *y;
  int rc = ser_tensor_narrow_raw(&y, x, dim, start, length);
  if (rc) {
    *out = NULL;
    return rc;
  }
  ser_node *node;
  rc = record1(out, y, SER_OP_NARROW, x, &node);
  if (!rc && node) {
    node->iarg[0] = dim;
    node->iarg[1] = start;
    node->iarg[2] = length;
  }
  return rc;
}

int ser_narrow_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  if (!gin[0]) return 0;
  ser_tensor *v;
  int rc = ser_tensor_narrow_raw(&v, gin[0], (int)n->iarg[0], n->iarg[1], n->iarg[2]);
  if (!rc) rc = ser_tensor_add_(v, g, 1.0f);
  ser_tensor_release(v);
  return rc;
}

int ser_select(ser_tensor **out, ser_tensor *x, int dim, int64_t index) {
  ser_tensor *y;
  int rc = ser_tensor_select_raw(&y, x, dim, index);
  if (rc) {
    *out = NULL;
    return rc;
  }
  ser_node *node;
  rc = record1(out, y, SER_OP_SELECT, x, &node);
  if (!rc && node) {
    node->iarg[0] = dim;
    node->iarg[1] = index;
  }
  return rc;
}

int ser_select_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  if (!gin[0]) return 0;
  ser_tensor *v;
  int rc = ser_tensor_select_raw(&v, gin[0], (int)n->iarg[0], n->iarg[1]);
  if (!rc) rc = ser_tensor_add_(v, g, 1.0f);
  ser_tensor_release(v);
  return rc;
}

int ser_cat(ser_tensor **out, ser_tensor *const *xs, int n, int dim) {
  *out = NULL;
  if (n < 1) return ser_error(SER_EINVAL, "cat: expected at least one tensor");
  const ser_tensor *first = xs[0];
  if (dim < 0 || dim >= first->ndim)
    return ser_error(SER_EINVAL, "cat: dim %d out of range for %d-d tensors", dim + 1, first->ndim);
  int64_t shape[SER_MAX_DIMS];
  memcpy(shape, first->shape, sizeof shape);
  shape[dim] = 0;
  for (int i = 0; i < n; i++) {
    const ser_tensor *t = xs[i];
    int ok = t->ndim == first->ndim;
    for (int d = 0; ok && d < t->ndim; d++) ok = d == dim || t->shape[d] == first->shape[d];
    if (!ok)
      return ser_error(SER_EINVAL, "cat: tensor %d has shape %s, expected %s except in dim %d", i + 1, SER_SHAPE(t),
                       SER_SHAPE(first), dim + 1);
    shape[dim] += t->shape[dim];
  }
  int needs_grad = ser_autograd_needed(n, xs);
  if (needs_grad && n > SER_NODE_MAX_INPUTS)
    return ser_error(SER_EINVAL, "cat: %d tensors that require grad; at most %d are supported (cat in groups)", n,
                     SER_NODE_MAX_INPUTS);
  ser_tensor *y = ser_tensor_empty(first->ndim, shape);
  if (!y) return SER_ENOMEM;
  int64_t offset = 0;
  for (int i = 0; i < n; i++) {
    ser_tensor *v;
    int rc = ser_tensor_narrow_raw(&v, y, dim, offset, xs[i]->shape[dim]);
    if (!rc) rc = ser_tensor_copy_(v, xs[i]);
    ser_tensor_release(v);
    if (rc) {
      ser_tensor_release(y);
      return rc;
    }
    offset += xs[i]->shape[dim];
  }
  if (!needs_grad) {
    *out = y;
    return 0;
  }
  ser_node *node;
  int rc = ser_autograd_record(y, SER_OP_CAT, n, xs, &node);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  node->iarg[0] = dim;
  *out = y;
  return 0;
}

int ser_cat_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  int dim = (int)n->iarg[0];
  int64_t offset = 0;
  for (int i = 0; i < n->n_inputs; i++) {
    int64_t len = n->inputs[i]->shape[dim];
    if (gin[i]) {
      ser_tensor *v;
      int rc = ser_tensor_narrow_raw(&v, (ser_tensor *)g, dim, offset, len);
      if (!rc) rc = ser_tensor_add_(gin[i], v, 1.0f);
      ser_tensor_release(v);
      if (rc) return rc;
    }
    offset += len;
  }
  return 0;
}

/* squeeze/unsqueeze/flatten are reshapes of a (possibly copied) contiguous tensor. */
int ser_squeeze(ser_tensor **out, ser_tensor *x, int dim) {
  int64_t shape[SER_MAX_DIMS];
  int nd = 0;
  if (dim >= x->ndim) {
    *out = NULL;
    return ser_error(SER_EINVAL, "squeeze: dim %d out of range for a %d-d tensor", dim + 1, x->ndim);
  }
  for (int d = 0; d < x->ndim; d++)
    if (!(x->shape[d] == 1 && (dim < 0 || d == dim))) shape[nd++] = x->shape[d];
  return ser_reshape(out, x, nd, shape);
}

int ser_unsqueeze(ser_tensor **out, ser_tensor *x, int dim) {
  if (dim < 0 || dim > x->ndim || x->ndim == SER_MAX_DIMS) {
    *out = NULL;
    return ser_error(SER_EINVAL, "unsqueeze: position %d out of range 1..%d for a %d-d tensor", dim + 1, x->ndim + 1,
                     x->ndim);
  }
  int64_t shape[SER_MAX_DIMS];
  for (int d = 0, k = 0; d <= x->ndim; d++) shape[d] = d == dim ? 1 : x->shape[k++];
  return ser_reshape(out, x, x->ndim + 1, shape);
}

int ser_flatten(ser_tensor **out, ser_tensor *x, int start, int end) {
  if (x->ndim == 0) return ser_reshape(out, x, 1, (int64_t[]){1});
  if (start < 0 || end >= x->ndim || start > end) {
    *out = NULL;
    return ser_error(SER_EINVAL, "flatten: dims %d..%d out of range for a %d-d tensor %s", start + 1, end + 1, x->ndim,
                     SER_SHAPE(x));
  }
  int64_t shape[SER_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < start; d++) shape[nd++] = x->shape[d];
  int64_t m = 1;
  for (int d = start; d <= end; d++) m *= x->shape[d];
  shape[nd++] = m;
  for (int d = end + 1; d < x->ndim; d++) shape[nd++] = x->shape[d];
  return ser_reshape(out, x, nd, shape);
}
