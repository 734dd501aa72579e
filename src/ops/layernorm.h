/* LayerNorm over the last dim (PyTorch nn.LayerNorm / F.layer_norm with
 * normalized_shape = [dim]: biased variance, eps inside the square root). */
#ifndef SER_OPS_LAYERNORM_H
#define SER_OPS_LAYERNORM_H

#include <stdint.h>

#include "../autograd/autograd.h"
#include "../core/tensor.h"

/* out [rows, dim] = (in - mean) * rstd * weight + bias; weight/bias may be NULL (affine off);
 * mean, rstd [rows] are written when non-NULL (saved for backward). out may be in (in place). */
void ser_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *weight,
                           const float *bias, int64_t rows, int dim, float eps);
/* ACCUMULATES din [rows, dim], dweight [dim], dbias [dim] (any may be NULL). */
void ser_layernorm_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                            const float *weight, const float *mean, const float *rstd, int64_t rows, int dim);

/* out = layer_norm(x) over x's last dim; weight, bias [dim] or NULL; eps > 0 finite. */
int ser_layer_norm(ser_tensor **out, ser_tensor *x, ser_tensor *weight, ser_tensor *bias, double eps);
int ser_layer_norm_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
