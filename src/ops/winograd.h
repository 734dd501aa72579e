/* Winograd F(2x2, 3x3) for 3x3 convolutions with stride 1 and dilation 1
 * (Lavin & Gray 2016): each 2x2 output tile costs 16 multiplications per
 * (input, output) channel pair instead of 36, so the GEMM work of a 3x3 layer
 * drops by 2.25x; the transforms are adds only (and halves in the weight
 * transform), so the result differs from the direct sum only by fp32
 * rounding (a few ulps of the sum of |terms|).
 *
 * Tiles are processed in blocks of whole tile rows per thread: the input
 * transform V [16][Ci][tiles], 16 products U[pos] [Co,Ci] x V[pos] with an
 * AVX-512 micro-kernel (no packing), then the output transform, all in L2.
 * conv.c uses it for the forward pass and, as a convolution of dout with the
 * flipped and transposed weight, for the input gradient. AVX-512 only:
 * ser_winograd_supported() says whether it runs here. */
#ifndef SER_OPS_WINOGRAD_H
#define SER_OPS_WINOGRAD_H

int ser_winograd_supported(void);

/* out [B,Co,OH,OW] = conv3x3(in [B,Ci,H,W], weight, padding ph/pw <= 2) + bias [Co],
 * OH = H + 2 ph - 2, OW = W + 2 pw - 2 (both >= 1).
 * flip = 0: weight is [Co,Ci,3,3] (the forward pass).
 * flip = 1: weight is [Ci,Co,3,3] and is used transposed and rotated by 180
 *   degrees: with ph = pw = 2 - p this is the input gradient of a 3x3 conv with
 *   padding p (in = that conv's dout, out = its din).
 * accumulate = 1 adds into out instead of overwriting it. bias may be NULL.
 * Returns SER_ENOMEM when the per-thread scratch cannot grow. */
int ser_conv3x3_winograd(float *out, const float *in, const float *weight, const float *bias, int B, int Ci,
                         int H, int W, int Co, int ph, int pw, int flip, int accumulate);
/* The same with the precision of the 16 products given (bf = 1: bf16, needs
 * AVX512-BF16), whatever amp says: amp's rule times both (gemm_rule.c). */
int ser_conv3x3_winograd_prec(float *out, const float *in, const float *weight, const float *bias, int B, int Ci,
                              int H, int W, int Co, int ph, int pw, int flip, int accumulate, int bf);

/* ACCUMULATES dweight [Co,Ci,3,3] += dL/dW of out = conv3x3(in [B,Ci,H,W], W,
 * padding ph/pw <= 2) given dout [B,Co,OH,OW]. Returns SER_ENOMEM when the
 * per-thread scratch cannot grow. */
int ser_conv3x3_winograd_dweight(float *dweight, const float *in, const float *dout, int B, int Ci, int H, int W,
                                 int Co, int ph, int pw);

#endif
