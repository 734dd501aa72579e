#include "softmax.h"

#include <math.h>

#include "../core/error.h"

/* A contiguous tensor seen as [outer, len, inner] around `dim`. */
static void split(const ser_tensor *x, int dim, int64_t *outer, int64_t *len, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < dim; d++) *outer *= x->shape[d];
  for (int d = dim + 1; d < x->ndim; d++) *inner *= x->shape[d];
  *len = x->shape[dim];
}

static int forward(ser_tensor **out, ser_tensor *x, int dim, int take_log) {
  const char *op = take_log ? "log_softmax" : "softmax";
  *out = NULL;
  if (x->ndim == 0) return ser_error(SER_EINVAL, "%s: input is 0-d; expected at least 1 dimension", op);
  if (dim < 0 || dim >= x->ndim)
    return ser_error(SER_EINVAL, "%s: dim %d out of range for a %d-d tensor %s", op, dim + 1, x->ndim, SER_SHAPE(x));
  ser_tensor *xc = ser_tensor_contiguous_raw(x);
  ser_tensor *y = xc ? ser_tensor_empty(x->ndim, x->shape) : NULL;
  if (!y) {
    ser_tensor_release(xc);
    return SER_ENOMEM;
  }
  int64_t outer, len, inner;
  split(x, dim, &outer, &len, &inner);
  const float *src = ser_tensor_data(xc);
  float *dst = ser_tensor_data(y);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      const float *s = src + o * len * inner + i;
      float *d = dst + o * len * inner + i;
      float mx = -INFINITY;
      for (int64_t j = 0; j < len; j++) mx = s[j * inner] > mx ? s[j * inner] : mx;
      double sum = 0;
      for (int64_t j = 0; j < len; j++) sum += exp((double)s[j * inner] - mx);
      if (take_log) {
        float lse = (float)(mx + log(sum));
        for (int64_t j = 0; j < len; j++) d[j * inner] = s[j * inner] - lse;
      } else {
        for (int64_t j = 0; j < len; j++) d[j * inner] = (float)(exp((double)s[j * inner] - mx) / sum);
      }
    }
  ser_tensor_release(xc);
  ser_node *node;
  int rc = ser_autograd_record(y, take_log ? SER_OP_LOG_SOFTMAX : SER_OP_SOFTMAX, 1, &x, &node);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  if (node) {
    node->saved[0] = ser_tensor_alias(y);
    node->iarg[0] = dim;
  }
  *out = y;
  return 0;
}

int ser_softmax(ser_tensor **out, ser_tensor *x, int dim) { return forward(out, x, dim, 0); }
int ser_log_softmax(ser_tensor **out, ser_tensor *x, int dim) { return forward(out, x, dim, 1); }

/* softmax:     dx = y (g - sum(g y))
 * log_softmax: dx = g - exp(y) sum(g) */
static int backward(ser_node *n, const ser_tensor *gt, ser_tensor **gin, int take_log) {
  if (!gin[0]) return 0;
  const ser_tensor *yt = n->saved[0];
  int64_t outer, len, inner;
  split(yt, (int)n->iarg[0], &outer, &len, &inner);
  const float *y = ser_tensor_data(yt), *g = ser_tensor_data(gt);
  float *dx = ser_tensor_data(gin[0]);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * len * inner + i;
      double s = 0;
      for (int64_t j = 0; j < len; j++) {
        int64_t k = base + j * inner;
        s += take_log ? g[k] : (double)g[k] * y[k];
      }
      for (int64_t j = 0; j < len; j++) {
        int64_t k = base + j * inner;
        dx[k] += take_log ? (float)(g[k] - expf(y[k]) * s) : (float)(y[k] * (g[k] - s));
      }
    }
  return 0;
}

int ser_softmax_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) { return backward(n, g, gin, 0); }
int ser_log_softmax_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin) { return backward(n, g, gin, 1); }
