/* The inner loops of the feature pipeline, vectorised: built for the portable
 * baseline and for AVX2 + FMA, the variant picked per call from the CPU.
 * Exact IEEE semantics are kept except in ser_k_db, which uses its own log (error < 1e-6 dB, far below the 1e-3 dB
 * parity tolerance) because glibc's log10f is a scalar call per element. */
#ifndef SER_AUDIO_KERNELS_H
#define SER_AUDIO_KERNELS_H

#include <stdint.h>

/* dst[i] = src[i] * win[i] */
void ser_k_window(float *dst, const float *src, const float *win, int n);
/* p[k] = re^2 + im^2 of interleaved spectrum s (magnitude: sqrt of it) */
void ser_k_power(float *p, const float *s, int nf, int magnitude);
/* Frames are processed in blocks of SER_K_BLOCK, bin-major with the frame
 * index innermost, so that filterbank and DCT products vectorise across frames. */
#define SER_K_BLOCK 8
/* pb[k][j] = |s_j[k]|^2 (or |.|) for lane j of a block; s_j interleaved re,im. */
void ser_k_power_lane(float *pb, const float *s, int nf, int j, int magnitude);
/* out[m * ostride + j] = sum_k fb[m][k] * pb[k][j], j < jn, over each filter's band. */
void ser_k_mel_block(float *out, int64_t ostride, const float *pb, int n_mels, float *const *w, const int *lo,
                     const int *len, int jn);
/* out[c][f] = sum_r a[c][r] * in[r][f] for a [nc][nr] and in/out row-major with `cols` columns. */
void ser_k_matmul_cols(float *out, const float *a, const float *in, int nc, int nr, int64_t cols);
/* sum_k w[k] * p[k] */
float ser_k_dot(const float *w, const float *p, int n);
/* x[i] = 10 log10(max(x[i], 1e-10)); returns the maximum of the result. */
float ser_k_db(float *x, int64_t n);
/* x[i] = max(x[i], lo) */
void ser_k_clamp_min(float *x, int64_t n, float lo);
/* sum and sum of squared deviations from mean, in double */
double ser_k_sum(const float *x, int64_t n);
double ser_k_sqdev(const float *x, int64_t n, double mean);
/* x[i] = (x[i] - m) * s */
void ser_k_affine(float *x, int64_t n, float m, float s);

#endif
