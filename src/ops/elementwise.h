/* Elementwise ops with PyTorch broadcasting, differentiable. Outputs are
 * contiguous; inputs may be any view. */
#ifndef SER_OPS_ELEMENTWISE_H
#define SER_OPS_ELEMENTWISE_H

#include "../autograd/autograd.h"

int ser_add(ser_tensor **out, ser_tensor *a, ser_tensor *b);
int ser_sub(ser_tensor **out, ser_tensor *a, ser_tensor *b);
int ser_mul(ser_tensor **out, ser_tensor *a, ser_tensor *b);
int ser_div(ser_tensor **out, ser_tensor *a, ser_tensor *b);
/* Scalar convenience forms (the scalar is a constant). */
int ser_add_scalar(ser_tensor **out, ser_tensor *a, float s);
int ser_mul_scalar(ser_tensor **out, ser_tensor *a, float s);

int ser_neg(ser_tensor **out, ser_tensor *x);
int ser_exp(ser_tensor **out, ser_tensor *x);
int ser_log(ser_tensor **out, ser_tensor *x);
int ser_sqrt(ser_tensor **out, ser_tensor *x);
int ser_pow(ser_tensor **out, ser_tensor *x, float p);
int ser_abs(ser_tensor **out, ser_tensor *x);
/* lo/hi may be -INFINITY/INFINITY for one-sided clamps. Gradient passes where lo <= x <= hi. */
int ser_clamp(ser_tensor **out, ser_tensor *x, float lo, float hi);
int ser_relu(ser_tensor **out, ser_tensor *x);
int ser_sigmoid(ser_tensor **out, ser_tensor *x);
int ser_tanh(ser_tensor **out, ser_tensor *x);

/* Comparisons (not differentiable): 1.0 where true, 0.0 elsewhere. */
typedef enum { SER_CMP_EQ, SER_CMP_NE, SER_CMP_LT, SER_CMP_LE, SER_CMP_GT, SER_CMP_GE } ser_cmp;
int ser_compare(ser_tensor **out, ser_tensor *a, ser_tensor *b, ser_cmp cmp);

/* In place, no autograd: dst += alpha * src (src broadcast to dst's shape).
 * dst may be any view. Used by the engine, optimisers and views' backward. */
int ser_tensor_add_(ser_tensor *dst, const ser_tensor *src, float alpha);
/* Broadcast shape of a and b, or an error naming both shapes. */
int ser_broadcast_shape(const char *op, const ser_tensor *a, const ser_tensor *b, int *ndim, int64_t *shape);
/* Sums g (shape `from`) down to the shape of dst and accumulates: dst += reduce(g).
 * dst's shape must broadcast to g's. */
int ser_accumulate_reduced(ser_tensor *dst, const ser_tensor *g, float alpha);

int ser_add_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_sub_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_mul_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_div_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_neg_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_exp_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_log_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_sqrt_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_pow_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_abs_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_clamp_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_relu_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_sigmoid_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);
int ser_tanh_backward(ser_node *n, const ser_tensor *g, ser_tensor **gin);

#endif
