#include "activation.h"

#include <math.h>

#include "../core/error.h"

void ser_leaky_relu_forward(float *out, const float *in, int64_t n, float slope) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : slope * in[i];
}

void ser_leaky_relu_backward(float *din, const float *dout, const float *in, int64_t n, float slope) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) din[i] += in[i] > 0.0f ? dout[i] : slope * dout[i];
}

int ser_leaky_relu(ser_tensor **out, ser_tensor *x, double slope) {
  *out = NULL;
  if (!x) return ser_error(SER_EINVAL, "leaky_relu: input is required");
  if (!isfinite(slope)) return ser_error(SER_EINVAL, "leaky_relu: negative slope must be finite, got %g", slope);
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *y = ser_tensor_empty(x->ndim, x->shape);
  int rc = (!xc || !y) ? SER_ENOMEM : 0;
  if (!rc) {
    ser_leaky_relu_forward(ser_tensor_data(y), ser_tensor_data(xc), ser_tensor_numel(x), (float)slope);
    ser_node *node = NULL;
    rc = ser_autograd_record(y, SER_OP_LEAKY_RELU, 1, &x, &node);
    if (!rc && node) {
      node->saved[0] = ser_detach(xc);
      node->farg[0] = slope;
    }
  }
  ser_tensor_release(xc);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

int ser_leaky_relu_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (gin[0])
    ser_leaky_relu_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout), ser_tensor_data(node->saved[0]),
                            ser_tensor_numel(gout), (float)node->farg[0]);
  return 0;
}
