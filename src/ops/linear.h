/* Linear layer, PyTorch layout: y = x W^T + b over any leading dims.
 * x [..., in], W [out, in], b [out] or NULL -> y [..., out]. The products go
 * through ser_gemm, so amp (bf16) applies. */
#ifndef SER_OPS_LINEAR_H
#define SER_OPS_LINEAR_H

#include "../autograd/autograd.h"
#include "../core/tensor.h"

/* out [rows, OUT] = in [rows, IN] weight^T + bias (bias may be NULL). */
void ser_linear_forward(float *out, const float *in, const float *weight, const float *bias, int rows, int IN,
                        int OUT);
/* ACCUMULATES din [rows, IN], dweight [OUT, IN], dbias [OUT] (any may be NULL) from dout [rows, OUT]. */
void ser_linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                         const float *weight, int rows, int IN, int OUT);

int ser_linear(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b);
int ser_linear_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
