/* Grouped 1-d convolution (PyTorch's nn.Conv1d with groups > 1), the
 * positional embedding of wav2vec 2.0 / HuBERT / WavLM (kernel 128, 16 groups):
 *
 *   in [B, C, L], weight [OC, C/groups, K], bias [OC] -> out [B, OC, OL]
 *   output channels g*OC/groups .. (g+1)*OC/groups - 1 see only input channels
 *   g*C/groups .. (g+1)*C/groups - 1;  OL = (L + 2 pad - dil (K-1) - 1) / stride + 1
 *
 * Each (image, group) is one ungrouped convolution (ser_conv2d_forward with
 * B = 1 over the group's contiguous [C/groups, L] rows), so the im2col + GEMM
 * path, its threads and amp apply unchanged. g->C and g->OC are the totals. */
#ifndef SER_OPS_CONV_GROUPED_H
#define SER_OPS_CONV_GROUPED_H

#include "../autograd/autograd.h"
#include "../core/tensor.h"
#include "conv.h"

/* out [B,OC,1,OW] = grouped conv(in [B,C,1,W], weight [OC,C/groups,1,KW]) + bias [OC] (bias may be NULL).
 * g describes the whole convolution (g->C, g->OC the totals; H = KH = 1). */
int ser_conv1d_grouped_forward(float *out, const float *in, const float *weight, const float *bias, int groups,
                               const ser_conv_geom *g);

/* ACCUMULATES din [B,C,W], dweight [OC,C/groups,KW], dbias [OC] (any may be NULL) from dout [B,OC,OW]. */
int ser_conv1d_grouped_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                                const float *weight, int groups, const ser_conv_geom *g);

/* Autograd op: x [B,C,L], w [OC,C/groups,K], b [OC] or NULL -> out [B,OC,OL]; o's [0] entries
 * (stride, padding, dilation), NULL = defaults; groups >= 1 divides C and OC. */
int ser_conv1d_grouped(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b, int groups,
                       const ser_conv_opts *o);
int ser_conv1d_grouped_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
