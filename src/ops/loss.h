/* Classification and regression losses, PyTorch 1.13 'mean' reduction.
 *
 * Class targets are 0-based here (the Lua binding converts from 1-based) and
 * arrive as a float tensor holding whole numbers; a fractional, negative or
 * too large value is an error naming the value, its position and the valid range.
 *
 * cross_entropy with class weights w and label smoothing ε over C classes,
 * W = Σ_n w[y_n] (w = 1 when absent, so W = N):
 *   L = (1-ε) Σ_n w[y_n]·(-logp[n,y_n]) / W + (ε/C) Σ_n Σ_c w[c]·(-logp[n,c]) / W
 * computed fused with log_softmax (one pass forward, one pass backward). */
#ifndef SER_OPS_LOSS_H
#define SER_OPS_LOSS_H

#include <stdint.h>

#include "../core/tensor.h"

struct ser_node;

/* Kernels (raw arrays; accumulate in double).
 * logits, logp [N,C]; targets [N] (validated, 0 <= y < C); weight [C] or NULL. */
/* Writes logp = log_softmax(logits) and returns the loss. */
double ser_cross_entropy_forward(float *logp, const float *logits, const int32_t *targets, const float *weight,
                                 int64_t N, int64_t C, double label_smoothing);
/* dlogits[n,j] += dloss · (p[n,j]·S_n - coef[n,j]), where coef[n,c] is the weight of
 * -logp[n,c] in L and S_n = Σ_c coef[n,c]. */
void ser_cross_entropy_backward(float *dlogits, float dloss, const float *logp, const int32_t *targets,
                                const float *weight, int64_t N, int64_t C, double label_smoothing);
/* L = Σ_n w[y_n]·(-logp[n,y_n]) / Σ_n w[y_n] */
double ser_nll_loss_forward(const float *logp, const int32_t *targets, const float *weight, int64_t N, int64_t C);
void ser_nll_loss_backward(float *dlogp, float dloss, const int32_t *targets, const float *weight, int64_t N,
                           int64_t C);
/* L = mean((a-b)²); da += dloss·2(a-b)/n, db -= the same (either may be NULL). */
double ser_mse_loss_forward(const float *a, const float *b, int64_t n);
void ser_mse_loss_backward(float *da, float *db, float dloss, const float *a, const float *b, int64_t n);

/* Checks targets (float tensor [N] of whole numbers in [0, C)) and converts them.
 * *idx gets a new ser_alloc'd array of N int32 (free with ser_free(p, N*4)). */
int ser_loss_targets(int32_t **idx, const ser_tensor *targets, int64_t N, int64_t C, const char *fname);

/* Autograd ops; out is a 0-d scalar. weight may be NULL; it gets no gradient. */
int ser_cross_entropy(ser_tensor **out, ser_tensor *logits, ser_tensor *targets, ser_tensor *weight,
                      double label_smoothing);
int ser_nll_loss(ser_tensor **out, ser_tensor *logp, ser_tensor *targets, ser_tensor *weight);
int ser_mse_loss(ser_tensor **out, ser_tensor *input, ser_tensor *target);

int ser_cross_entropy_backward_op(struct ser_node *node, const ser_tensor *gout, ser_tensor **gin);
int ser_nll_loss_backward_op(struct ser_node *node, const ser_tensor *gout, ser_tensor **gin);
int ser_mse_loss_backward_op(struct ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
