#include "reduce.h"

#include <math.h>
#include <string.h>

#include "../core/error.h"
#include "elementwise.h"

/* Geometry of a reduction: the input made contiguous with the reduced dims
 * moved last, so each output element reduces one contiguous run of `inner`
 * values. */
typedef struct {
  int64_t outer, inner;
  int out_ndim;
  int64_t out_shape[SER_MAX_DIMS];   /* as returned (keepdim or not) */
  int64_t kept_shape[SER_MAX_DIMS];  /* input rank, reduced dims = 1 */
} reduce_geom;

static int plan(const char *op, ser_tensor *x, unsigned dims, int keepdim, reduce_geom *g, ser_tensor **moved) {
  *moved = NULL;
  if (dims & ~((1u << x->ndim) - 1u) && dims != SER_ALL_DIMS)
    return ser_error(SER_EINVAL, "%s: dimension out of range for a %d-d tensor %s", op, x->ndim, SER_SHAPE(x));
  if (dims == SER_ALL_DIMS) dims = (1u << x->ndim) - 1u;
  int perm[SER_MAX_DIMS], k = 0;
  g->outer = 1;
  g->inner = 1;
  g->out_ndim = 0;
  for (int d = 0; d < x->ndim; d++) {
    int red = (dims >> d) & 1;
    g->kept_shape[d] = red ? 1 : x->shape[d];
    if (!red) {
      perm[k++] = d;
      g->outer *= x->shape[d];
      g->out_shape[g->out_ndim++] = x->shape[d];
    } else {
      g->inner *= x->shape[d];
      if (keepdim) g->out_shape[g->out_ndim++] = 1;
    }
  }
  if (keepdim) {
    g->out_ndim = x->ndim;
    memcpy(g->out_shape, g->kept_shape, sizeof g->out_shape);
  }
  for (int d = 0; d < x->ndim; d++)
    if ((dims >> d) & 1) perm[k++] = d;
  ser_tensor *p;
  int rc = ser_tensor_permute_raw(&p, x, perm);
  if (rc) return rc;
  *moved = ser_tensor_contiguous_raw(p);
  ser_tensor_release(p);
  return *moved ? 0 : SER_ENOMEM;
}

typedef enum { RED_SUM, RED_MEAN, RED_VAR } redop;

static int reduce(ser_tensor **out, ser_tensor *x, unsigned dims, int keepdim, redop op, int correction) {
  static const char *names[] = {"sum", "mean", "var"};
  *out = NULL;
  reduce_geom g;
  ser_tensor *m;
  int rc = plan(names[op], x, dims, keepdim, &g, &m);
  if (rc) return rc;
  if (op == RED_VAR && g.inner - correction <= 0) {
    /* PyTorch returns NaN with a warning; a clear error serves users better. */
    ser_tensor_release(m);
    return ser_error(SER_EINVAL, "var: %lld elements per reduction with correction %d; need more than %d",
                     (long long)g.inner, correction, correction);
  }
  ser_tensor *o = ser_tensor_empty(g.out_ndim, g.out_shape);
  if (!o) {
    ser_tensor_release(m);
    return SER_ENOMEM;
  }
  const float *src = ser_tensor_data(m);
  float *dst = ser_tensor_data(o);
  for (int64_t i = 0; i < g.outer; i++) {
    const float *row = src + i * g.inner;
    double s = 0;
    for (int64_t j = 0; j < g.inner; j++) s += row[j];
    if (op == RED_SUM) {
      dst[i] = (float)s;
    } else if (op == RED_MEAN) {
      dst[i] = (float)(s / (double)g.inner);
    } else {
      double mean = s / (double)g.inner, ss = 0;
      for (int64_t j = 0; j < g.inner; j++) ss += (row[j] - mean) * (row[j] - mean);
      dst[i] = (float)(ss / (double)(g.inner - correction));
    }
  }
  ser_tensor_release(m);
  static const ser_op ops[] = {SER_OP_SUM, SER_OP_MEAN, SER_OP_VAR};
  ser_node *node;
  rc = ser_autograd_record(o, ops[op], 1, &x, &node);
  if (rc) {
    ser_tensor_release(o);
    return rc;
  }
  if (node) {
    /* iarg: rank, correction, then the input shape with reduced dims set to 1 */
    node->iarg[0] = x->ndim;
    node->iarg[1] = correction;
    memcpy(node->iarg + 2, g.kept_shape, (size_t)x->ndim * sizeof(int64_t));
    node->farg[0] = (double)g.inner;
  }
  *out = o;
  return 0;
}

int ser_sum(ser_tensor **out, ser_tensor *x, unsigned dims, int keepdim) { return reduce(out, x, dims, keepdim, RED_SUM, 0); }
int ser_mean(ser_tensor **out, ser_tensor *x, unsigned dims, int keepdim) { return reduce(out, x, dims, keepdim, RED_MEAN, 0); }
int ser_var(ser_tensor **out, ser_tensor *x, unsigned dims, int correction, int keepdim) {
  return reduce(out, x, dims, keepdim, RED_VAR, correction);
}

int ser_std(ser_tensor **out, ser_tensor *x, unsigned dims, int correction, int keepdim) {
  ser_tensor *v;
  int rc = ser_var(&v, x, dims, correction, keepdim);
  if (rc) return rc;
  rc = ser_sqrt(out, v);
  ser_tensor_release(v);
  return rc;
}

/* g viewed with the input's rank (reduced dims of size 1), ready to broadcast. */
static int kept_view(ser_node *n, const ser_tensor *g, ser_tensor **view) {
  int nd = (int)n->iarg[0];
  int64_t shape[SER_MAX_DIMS];
  for (int d = 0; d < nd; d++) shape[d] = n->iarg[2 + d];
  return ser_tensor_view_raw(view, (ser_tensor *)g, nd, shape);
}

int ser_sum_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  if (!gin[0]) return 0;
  ser_tensor *v;
  int rc = kept_view(n, g, &v);
  if (!rc) rc = ser_tensor_add_(gin[0], v, 1.0f);
  ser_tensor_release(v);
  return rc;
}

int ser_mean_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  if (!gin[0]) return 0;
  ser_tensor *v;
  int rc = kept_view(n, g, &v);
  if (!rc) rc = ser_tensor_add_(gin[0], v, (float)(1.0 / n->farg[0]));
  ser_tensor_release(v);
  return rc;
}

/* d var / dx = 2 (x - mean) / (N - correction) */
int ser_var_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) {
  if (!gin[0]) return 0;
  int prev = ser_set_grad_enabled(0);
  ser_tensor *x = ser_detach(n->inputs[0]), *gv = NULL, *mean = NULL, *centered = NULL, *prod = NULL;
  unsigned dims = 0;
  for (int d = 0; d < x->ndim; d++)
    if (n->iarg[2 + d] == 1 && x->shape[d] != 1) dims |= 1u << d;
  int rc = kept_view(n, g, &gv);
  if (!rc) rc = ser_mean(&mean, x, dims ? dims : 0, 1);
  if (!rc) rc = ser_sub(&centered, x, mean);
  if (!rc) rc = ser_mul(&prod, centered, gv);
  if (!rc) rc = ser_tensor_add_(gin[0], prod, (float)(2.0 / (n->farg[0] - (double)n->iarg[1])));
  ser_tensor_release(x);
  ser_tensor_release(gv);
  ser_tensor_release(mean);
  ser_tensor_release(centered);
  ser_tensor_release(prod);
  ser_set_grad_enabled(prev);
  return rc;
}

static int argext(ser_tensor **values, ser_tensor **indices, ser_tensor *x, int dim, int keepdim, int want_max) {
  const char *op = want_max ? "max" : "min";
  *values = NULL;
  if (indices) *indices = NULL;
  if (dim < 0 || dim >= x->ndim)
    return ser_error(SER_EINVAL, "%s: dim %d out of range for a %d-d tensor", op, dim + 1, x->ndim);
  if (x->shape[dim] == 0) return ser_error(SER_EINVAL, "%s: dim %d of %s is empty", op, dim + 1, SER_SHAPE(x));
  reduce_geom g;
  ser_tensor *m;
  int rc = plan(op, x, 1u << dim, keepdim, &g, &m);
  if (rc) return rc;
  ser_tensor *v = ser_tensor_empty(g.out_ndim, g.out_shape);
  ser_tensor *ix = indices ? ser_tensor_empty(g.out_ndim, g.out_shape) : NULL;
  if (!v || (indices && !ix)) {
    ser_tensor_release(m);
    ser_tensor_release(v);
    ser_tensor_release(ix);
    return SER_ENOMEM;
  }
  const float *src = ser_tensor_data(m);
  for (int64_t i = 0; i < g.outer; i++) {
    const float *row = src + i * g.inner;
    int64_t best = 0;
    for (int64_t j = 1; j < g.inner && !isnan(row[best]); j++)
      if (isnan(row[j]) || (want_max ? row[j] > row[best] : row[j] < row[best])) best = j;
    ser_tensor_data(v)[i] = row[best];
    if (ix) ser_tensor_data(ix)[i] = (float)best;
  }
  ser_tensor_release(m);
  *values = v;
  if (indices) *indices = ix;
  return 0;
}

int ser_max_dim(ser_tensor **values, ser_tensor **indices, ser_tensor *x, int dim, int keepdim) {
  return argext(values, indices, x, dim, keepdim, 1);
}
int ser_min_dim(ser_tensor **values, ser_tensor **indices, ser_tensor *x, int dim, int keepdim) {
  return argext(values, indices, x, dim, keepdim, 0);
}

static int extreme_all(float *value, const ser_tensor *x, int want_max) {
  int64_t n = ser_tensor_numel(x);
  if (n == 0) return ser_error(SER_EINVAL, "%s: tensor %s is empty", want_max ? "max" : "min", SER_SHAPE(x));
  float best = ser_tensor_get_flat(x, 0);
  for (int64_t i = 1; i < n && !isnan(best); i++) {
    float v = ser_tensor_get_flat(x, i);
    if (isnan(v) || (want_max ? v > best : v < best)) best = v;
  }
  *value = best;
  return 0;
}
int ser_max_all(float *value, const ser_tensor *x) { return extreme_all(value, x, 1); }
int ser_min_all(float *value, const ser_tensor *x) { return extreme_all(value, x, 0); }
