/* Vectorised row kernels shared by the transformer ops (layernorm.c,
 * activation.c, attention.c): one copy each for the -march baseline, AVX2+FMA
 * and AVX-512F, chosen per call from the CPU's features. Single-threaded: the
 * callers split rows across threads. Internal to src/ops (not in ser.h). */
#ifndef SER_OPS_ROWOPS_H
#define SER_OPS_ROWOPS_H

#include <stdint.h>

/* out[i] = gelu(in[i]) = in[i]/2 (1 + erf(in[i]/sqrt 2)); out may be in */
void ser_row_gelu(float *out, const float *in, int64_t n);
/* x[i] = gelu(x[i] + bias[i]), one row of n (bias added, then GELU, in one pass) */
void ser_row_bias_gelu(float *x, const float *bias, int n);
/* ACCUMULATES din[i] += dout[i] gelu'(in[i]) */
void ser_row_gelu_backward(float *din, const float *dout, const float *in, int64_t n);
/* y = softmax(x) over n >= 1 entries (y may be x); returns the sum of exp(x - max) */
float ser_row_softmax(float *y, const float *x, int n);
/* ds = scale * p * (dp - sum(p dp)), written (not accumulated); ds may be dp */
void ser_row_softmax_backward(float *ds, const float *p, const float *dp, int n, float scale);
/* One LayerNorm row of n: out = (x - mean) rstd w + b (w, b may be NULL); mean and
 * rstd written when non-NULL; out may be x */
void ser_row_layernorm(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b, int n,
                       float eps);
/* ACCUMULATES one row's din, dw, db (any may be NULL) */
void ser_row_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *x, const float *w,
                                float mean, float rstd, int n);

/* Instruction-set level of these kernels: 0 baseline, 1 AVX2+FMA, 2 AVX-512F.
 * ser_row_set_level (tests) picks one, clamped to what the CPU has, and returns
 * the previous level; a negative level restores the automatic choice. */
int ser_row_level(void);
int ser_row_max_level(void);
int ser_row_set_level(int level);

#endif
