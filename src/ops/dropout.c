#include "dropout.h"

#include "../core/error.h"

void ser_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p, ser_rng *rng) {
  if (!rng) rng = ser_rng_global();
  float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; i++) {
    mask[i] = ser_rng_uniform(rng) < p ? 0.0f : scale;
    out[i] = in[i] * mask[i];
  }
}

void ser_dropout_backward(float *din, const float *dout, const float *mask, int64_t n) {
  for (int64_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}

int ser_dropout(ser_tensor **out, ser_tensor *x, double p, int training, ser_rng *rng) {
  *out = NULL;
  if (!x) return ser_error(SER_EINVAL, "dropout: input is required");
  if (!(p >= 0.0 && p <= 1.0)) return ser_error(SER_EINVAL, "dropout: probability must be in [0, 1], got %g", p);
  if (!training || p == 0.0) {
    *out = ser_tensor_retain(x);
    return 0;
  }
  int64_t n = ser_tensor_numel(x);
  ser_tensor *y = ser_tensor_empty(x->ndim, x->shape), *mask = ser_tensor_empty(x->ndim, x->shape);
  ser_tensor *xc = ser_tensor_contiguous_raw(x);
  int rc = (!y || !mask || !xc) ? SER_ENOMEM : 0;
  if (!rc) {
    if (p == 1.0) { /* everything dropped; 1/(1-p) would be inf and 0*inf NaN */
      ser_tensor_fill(y, 0.0f);
      ser_tensor_fill(mask, 0.0f);
    } else {
      ser_dropout_forward(ser_tensor_data(y), ser_tensor_data(mask), ser_tensor_data(xc), n, (float)p, rng);
    }
    ser_node *node = NULL;
    rc = ser_autograd_record(y, SER_OP_DROPOUT, 1, &x, &node);
    if (!rc && node) node->saved[0] = ser_tensor_retain(mask);
  }
  ser_tensor_release(xc);
  ser_tensor_release(mask);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

int ser_dropout_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (gin[0])
    ser_dropout_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout), ser_tensor_data(node->saved[0]),
                         ser_tensor_numel(gout));
  return 0;
}
