/* Polyphase Winograd for CNN1D's convolutions: Conv1d with kernel 9,
 * stride 2, padding 4, dilation 1.
 *
 * y[o] = sum_k w[k] x[2o + k - 4] splits into the even samples xe[j] = x[2j]
 * with the 5 even taps and the odd samples xo[j] = x[2j+1] with the 4 odd
 * taps, two stride-1 correlations. Each is computed for tiles of 4 outputs by
 * Winograd's minimal filtering (Toom-Cook, points 0, +-1, +-2, +-1/2 and
 * infinity): F(4,5) costs 8 multiplications and F(4,4) 7, so a tile of 4
 * outputs takes 15 products per (input, output) channel pair instead of 36
 * (2.4x fewer). As in winograd.c the products are GEMMs over the tiles of a
 * block, here through ser_gemm (OpenBLAS sgemm, or bf16 under amp): the two
 * phases share 7 points, whose products are summed, so there are 8 GEMMs
 * U[s] [OC,2C] x V[s] [2C,tiles] (K = C for the point -1/2). The transforms
 * are AVX-512 and work on 16 tiles per vector.
 *
 * Gradients are the exact adjoints: Z[s] = A dY per tile, dV[s] = U[s]^T Z[s]
 * (then B dV scattered back into the input), dU[s] = sum over tiles
 * Z[s] V[s]^T (then dW = G^T dU). Rounding: a few 1e-7 of the sum of |terms|
 * in fp32 (im2col: about 1e-7); under amp, V and U are rounded to bf16 after
 * the transform: 0.24-0.56 of the bf16 GEMM bound on CNN1D's layer shapes
 * (tests/c/test_conv.c), against 0.11-0.13 for the bf16 im2col GEMM.
 * AVX-512 only: ser_winograd1d_supported() says whether it runs here. */
#ifndef SER_OPS_WINOGRAD1D_H
#define SER_OPS_WINOGRAD1D_H

int ser_winograd1d_supported(void);

/* The floats of V and M per block (default 786432, or SER_WINO1D_FLOATS),
 * which set the tiles per block; <= 0 restores the default. Returns the
 * previous value. For tests (small shapes that still cross block edges) and
 * tuning; not thread-safe: call it between convolutions. */
long ser_winograd1d_set_block_floats(long floats);

/* out [B,OC,OW] = conv1d(in [B,C,W], weight [OC,C,9], stride 2, padding 4) + bias [OC]
 * (bias may be NULL), OW = (W - 1) / 2 + 1. Returns SER_ENOMEM when the
 * per-thread scratch cannot grow. */
int ser_conv1d_k9s2_winograd(float *out, const float *in, const float *weight, const float *bias, int B, int C,
                             int W, int OC);

/* The same convolution's gradients from dout [B,OC,OW]: din [B,C,W] is
 * ACCUMULATED (or overwritten with din_overwrite: then it may hold garbage,
 * and every element is written), dweight [OC,C,9] and dbias [OC] are
 * ACCUMULATED; any may be NULL. The bias gradient is summed while dout is
 * transformed (no pass of its own), per image and then over the images in
 * order, so it does not depend on the thread count. Returns SER_ENOMEM when
 * the per-thread scratch cannot grow. */
int ser_conv1d_k9s2_winograd_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                                      const float *weight, int B, int C, int W, int OC, int din_overwrite);

#endif
