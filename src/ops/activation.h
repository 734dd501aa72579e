/* Activations beyond the core's relu/sigmoid/tanh (src/ops/elementwise.h). */
#ifndef SER_OPS_ACTIVATION_H
#define SER_OPS_ACTIVATION_H

#include "../autograd/autograd.h"
#include "../core/tensor.h"

/* out[i] = in[i] > 0 ? in[i] : slope * in[i]   (n elements) */
void ser_leaky_relu_forward(float *out, const float *in, int64_t n, float slope);
/* ACCUMULATES din[i] += dout[i] * (in[i] > 0 ? 1 : slope), PyTorch's choice at 0. */
void ser_leaky_relu_backward(float *din, const float *dout, const float *in, int64_t n, float slope);

int ser_leaky_relu(ser_tensor **out, ser_tensor *x, double slope);  /* PyTorch default slope 0.01 */
int ser_leaky_relu_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

/* GELU, exact erf form (PyTorch's default approximate='none'):
 * out[i] = in[i]/2 (1 + erf(in[i]/sqrt 2))   (n elements; erf vectorised, abs error < 2e-7);
 * out may be in (in place). */
void ser_gelu_forward(float *out, const float *in, int64_t n);
/* ACCUMULATES din[i] += dout[i] (Phi(in[i]) + in[i] phi(in[i])) */
void ser_gelu_backward(float *din, const float *dout, const float *in, int64_t n);

int ser_gelu(ser_tensor **out, ser_tensor *x);
int ser_gelu_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
