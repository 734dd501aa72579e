/* Reductions. `dims` is a bit mask of the dims to reduce (bit d = dim d, 0-based);
 * SER_ALL_DIMS reduces everything. keepdim keeps reduced dims as size 1. */
#ifndef SER_OPS_REDUCE_H
#define SER_OPS_REDUCE_H

#include "../autograd/autograd.h"

#define SER_ALL_DIMS 0x3f

int ser_sum(ser_tensor **out, ser_tensor *x, unsigned dims, int keepdim);
int ser_mean(ser_tensor **out, ser_tensor *x, unsigned dims, int keepdim);
/* Variance with `correction` (1 = unbiased, PyTorch's default; 0 = biased). */
int ser_var(ser_tensor **out, ser_tensor *x, unsigned dims, int correction, int keepdim);
int ser_std(ser_tensor **out, ser_tensor *x, unsigned dims, int correction, int keepdim); /* sqrt(var) */
/* Max / min over one dim (not differentiable): values and 0-based indices (as float). */
int ser_max_dim(ser_tensor **values, ser_tensor **indices, ser_tensor *x, int dim, int keepdim);
int ser_min_dim(ser_tensor **values, ser_tensor **indices, ser_tensor *x, int dim, int keepdim);
/* Whole-tensor max/min (NaN if any element is NaN); errors on an empty tensor. */
int ser_max_all(float *value, const ser_tensor *x);
int ser_min_all(float *value, const ser_tensor *x);

int ser_sum_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_mean_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_var_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);

#endif
