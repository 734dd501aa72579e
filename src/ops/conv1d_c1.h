/* Direct Conv1d for one input channel and stride 2 (CNN1D's first layer:
 * [B,1,64000] waveform, 32 output channels, kernel 9, padding 4).
 *
 * im2col + GEMM writes a column matrix 9x the input (in L2-sized blocks) for a
 * product with K = 9 (the taps); this kernel writes none, though it measured
 * no faster (docs/engine.md: both are bound by the output and dout traffic).
 * Each image's samples are split once into the even and odd phases
 * (zero-padded at both ends), after which tap k of output o reads phase
 * (k - pad) & 1 at o + floor((k - pad) / 2): contiguous loads, 16 outputs per
 * vector, one FMA per tap. The weight gradient runs the same loop over dout
 * (one accumulator per tap plus one for the bias, dout read once); sums are
 * kept per image and added over the images in order, so they do not depend on
 * the thread count. AVX-512 only (ser_conv1d_c1s2_supported); the input
 * gradient stays on im2col (the first layer's input never needs one). */
#ifndef SER_OPS_CONV1D_C1_H
#define SER_OPS_CONV1D_C1_H

/* Kernel sizes the direct path takes (1..SER_CONV1D_C1_MAX_K taps). */
#define SER_CONV1D_C1_MAX_K 16

/* The CPU has AVX-512 (F). */
int ser_conv1d_c1s2_supported(void);

/* out [B,OC,OW] = conv1d(in [B,1,W], weight [OC,1,K], stride 2, padding pad) + bias [OC]
 * (bias may be NULL), OW = (W + 2 pad - K) / 2 + 1 >= 1, 1 <= K <= SER_CONV1D_C1_MAX_K,
 * 0 <= pad < K. Returns SER_ENOMEM when the phase scratch cannot grow. */
int ser_conv1d_c1s2_forward(float *out, const float *in, const float *weight, const float *bias, int B, int W,
                            int OC, int K, int pad);

/* ACCUMULATES dweight [OC,1,K] and dbias [OC] (either may be NULL) from
 * dout [B,OC,OW] of the same convolution. Returns SER_ENOMEM when the scratch
 * cannot grow. */
int ser_conv1d_c1s2_backward_weight(float *dweight, float *dbias, const float *dout, const float *in, int B, int W,
                                    int OC, int K, int pad);

#endif
