/* Dropout (PyTorch semantics): in training each element is zeroed with
 * probability p and the survivors are scaled by 1/(1-p) ("inverted" dropout,
 * so evaluation is the identity). The mask comes from a ser_rng (NULL = the
 * global generator behind ser.manual_seed), drawn in element order, so a seed
 * gives the same mask whatever the thread count. */
#ifndef SER_OPS_DROPOUT_H
#define SER_OPS_DROPOUT_H

#include "../autograd/autograd.h"
#include "../core/rng.h"
#include "../core/tensor.h"

/* mask [n] <- 0 or 1/(1-p) per element; out [n] = in * mask. 0 <= p < 1. */
void ser_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p, ser_rng *rng);
/* ACCUMULATES din [n] += dout * mask. */
void ser_dropout_backward(float *din, const float *dout, const float *mask, int64_t n);

/* Not training or p == 0: *out is x itself (a new reference), as PyTorch.
 * p == 1: zeros. p outside [0, 1] is an error. */
int ser_dropout(ser_tensor **out, ser_tensor *x, double p, int training, ser_rng *rng);
int ser_dropout_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
