/* softmax / log_softmax along one dim (0-based), differentiable, numerically
 * stable (max subtracted). */
#ifndef SER_OPS_SOFTMAX_H
#define SER_OPS_SOFTMAX_H

#include "../autograd/autograd.h"

int ser_softmax(ser_tensor **out, ser_tensor *x, int dim);
int ser_log_softmax(ser_tensor **out, ser_tensor *x, int dim);
int ser_softmax_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_log_softmax_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);

#endif
