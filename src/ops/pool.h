/* Pooling over NCHW (2-d) and NCL (1-d, as H = 1): max, average, adaptive average.
 * PyTorch 1.13 semantics: floor mode (a partial last window is dropped),
 * max pooling pads with -inf and propagates NaN, average pooling counts the
 * zero padding (count_include_pad=True), adaptive windows are
 * [floor(i*H/OH), ceil((i+1)*H/OH)). Stride 0 in the options means "= kernel". */
#ifndef SER_OPS_POOL_H
#define SER_OPS_POOL_H

#include <stdint.h>

#include "../autograd/autograd.h"
#include "../core/tensor.h"

typedef struct ser_pool_geom {
  int B, C, H, W;   /* input [B,C,H,W] */
  int KH, KW;       /* window */
  int sh, sw;       /* stride >= 1 */
  int ph, pw;       /* padding, at most half the window */
  int OH, OW;       /* (H + 2 ph - KH) / sh + 1 */
} ser_pool_geom;

/* Fills OH/OW; SER_EINVAL with a message prefixed by `op` on a bad geometry. */
int ser_pool_geom_init(ser_pool_geom *g, const char *op);

/* out [B,C,OH,OW] = window max of in [B,C,H,W]; idx gets each max's flat
 * index ih*W + iw within its plane (PyTorch's indices). */
void ser_maxpool2d_forward(float *out, int32_t *idx, const float *in, const ser_pool_geom *g);
/* ACCUMULATES din [B,C,H,W] += dout [B,C,OH,OW] routed to the argmax positions. */
void ser_maxpool2d_backward(float *din, const float *dout, const int32_t *idx, const ser_pool_geom *g);
/* The same written, not added: din = dout at the argmax positions, zero at
 * every other element (the form the autograd engine uses on a fresh,
 * uninitialised gradient buffer; exposed for tests). */
void ser_maxpool2d_backward_overwrite(float *din, const float *dout, const int32_t *idx, const ser_pool_geom *g);

/* The 2x2 stride-2 unpadded max pool (MaxPool2d(2), the models' case) has
 * kernels per instruction set: scalar, AVX2 (forward only; its backward is
 * the scalar one) and AVX-512 (forward and backward). By default the widest
 * the CPU runs is used; ser_pool_set_isa chooses one (tests and benchmarks
 * compare them; a request above ser_pool_best_isa() is lowered to it) and
 * returns the previous choice. Not thread-safe: call it between pooling calls. */
enum { SER_POOL_SCALAR, SER_POOL_AVX2, SER_POOL_AVX512 };
int ser_pool_best_isa(void);
int ser_pool_set_isa(int isa);

/* out [B,C,OH,OW] = window mean of in (padding counted as zeros). */
void ser_avgpool2d_forward(float *out, const float *in, const ser_pool_geom *g);
/* ACCUMULATES din += dout spread evenly over each window. */
void ser_avgpool2d_backward(float *din, const float *dout, const ser_pool_geom *g);
/* out [B,C,OH,OW] = adaptive mean of in [B,C,H,W]. */
void ser_adaptive_avgpool2d_forward(float *out, const float *in, int B, int C, int H, int W, int OH, int OW);
/* ACCUMULATES din [B,C,H,W] from dout [B,C,OH,OW]. */
void ser_adaptive_avgpool2d_backward(float *din, const float *dout, int B, int C, int H, int W, int OH, int OW);

typedef struct ser_pool_opts {
  int kernel[2];    /* [0] = H, [1] = W; the 1-d ops use [0] */
  int stride[2];    /* 0 = kernel (PyTorch's default) */
  int padding[2];
} ser_pool_opts;

/* x [B,C,H,W] -> [B,C,OH,OW]; indices (may be NULL) receives the argmax flat
 * indices (0-based, as float) for inspection. */
int ser_max_pool2d(ser_tensor **out, ser_tensor **indices, ser_tensor *x, const ser_pool_opts *o);
int ser_max_pool1d(ser_tensor **out, ser_tensor **indices, ser_tensor *x, const ser_pool_opts *o); /* [B,C,L] */
int ser_avg_pool2d(ser_tensor **out, ser_tensor *x, const ser_pool_opts *o);
int ser_avg_pool1d(ser_tensor **out, ser_tensor *x, const ser_pool_opts *o);
/* Output size oh x ow (>= 1 each); 1-d takes [B,C,L] -> [B,C,ol]. */
int ser_adaptive_avg_pool2d(ser_tensor **out, ser_tensor *x, int oh, int ow);
int ser_adaptive_avg_pool1d(ser_tensor **out, ser_tensor *x, int ol);

int ser_max_pool_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);
int ser_avg_pool_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);
int ser_adaptive_avg_pool_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
