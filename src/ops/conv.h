/* Convolution (cross-correlation, as PyTorch) in 2-D over NCHW and 1-D over NCL.
 *
 * Conv1d is Conv2d with H = KH = 1, so one kernel serves both. Method: im2col
 * of one image into a per-thread column buffer [C*KH*KW, OH*OW] (grow-only
 * scratch, no per-call allocation), then one GEMM with the weight viewed as
 * [OC, C*KH*KW]; images are spread over threads (single-threaded GEMMs) when
 * the batch has at least as many images as threads, otherwise the GEMMs are
 * threaded. The GEMMs go through ser_gemm, so amp (bf16) applies. Groups: the
 * 1-d grouped convolution is conv_grouped.h (one of these per image and group). */
#ifndef SER_OPS_CONV_H
#define SER_OPS_CONV_H

#include "../autograd/autograd.h"
#include "../core/tensor.h"

typedef struct ser_conv_geom {
  int B, C, H, W;      /* input [B, C, H, W] */
  int OC, KH, KW;      /* weight [OC, C, KH, KW] */
  int sh, sw;          /* stride >= 1 */
  int ph, pw;          /* zero padding >= 0, both sides */
  int dh, dw;          /* dilation >= 1 */
  int OH, OW;          /* output size: (H + 2 ph - dh (KH-1) - 1) / sh + 1 */
} ser_conv_geom;

/* Fills OH/OW from the rest; returns 0, or SER_EINVAL (message prefixed with
 * `op`) when a parameter is out of range or the kernel does not fit. */
int ser_conv_geom_init(ser_conv_geom *g, const char *op);

/* out [B,OC,OH,OW] = conv(in [B,C,H,W], weight [OC,C,KH,KW]) + bias [OC] (bias may be NULL).
 * Returns SER_ENOMEM if the column scratch cannot grow. */
int ser_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                       const ser_conv_geom *g);
/* ACCUMULATES: din [B,C,H,W] += dL/din, dweight [OC,C,KH,KW] += dL/dw, dbias [OC] += dL/db,
 * from dout [B,OC,OH,OW]; any of din/dweight/dbias may be NULL (not needed). */
int ser_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                        const float *weight, const ser_conv_geom *g);

/* Turns the 1-d Winograd path (kernel 9, stride 2, padding 4; winograd1d.h)
 * on or off for the kernels above (off: im2col + GEMM); on only takes effect
 * where it is supported. Returns the previous setting. Not thread-safe: call
 * it between convolutions (tests and benchmarks compare the two paths). */
int ser_conv_set_winograd1d(int on);
/* The same for the direct 1-input-channel, stride-2 kernel (conv1d_c1.h;
 * CNN1D's first layer); off: im2col + GEMM. */
int ser_conv_set_direct_c1(int on);

/* Autograd ops. Options per spatial dim ([0] = H, [1] = W; conv1d uses [0]). */
typedef struct ser_conv_opts {
  int stride[2];    /* default 1 */
  int padding[2];   /* default 0 */
  int dilation[2];  /* default 1 */
} ser_conv_opts;
#define SER_CONV_OPTS_DEFAULT ((ser_conv_opts){{1, 1}, {0, 0}, {1, 1}})

/* x [B,C,H,W], w [OC,C,KH,KW], b [OC] or NULL -> out [B,OC,OH,OW]. o NULL = defaults. */
int ser_conv2d(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b, const ser_conv_opts *o);
/* x [B,C,L], w [OC,C,K], b [OC] or NULL -> out [B,OC,OL]; uses o->stride[0] etc. */
int ser_conv1d(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b, const ser_conv_opts *o);

int ser_conv2d_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);
int ser_conv1d_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
