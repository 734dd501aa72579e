/* The table of differentiable ops: one X(ENUM, "name", backward_fn) line each.
 *
 * Adding an op (the checklist, ggml's recipe):
 *   1. a line here; the backward function declared in the op's header under src/ops/;
 *   2. the op function in src/ops/<op>.c: check shapes (message with both shapes),
 *      compute forward, then ser_autograd_record(...) and save what backward needs;
 *   3. the backward: reads node->saved / args, ACCUMULATES (+=) into gin[i] for
 *      every i with gin[i] != NULL (see ser_backward_fn in autograd.h); an op that
 *      can write a whole gradient instead may be listed in overwrites_fresh
 *      (autograd.c) and then overwrites gin[i] when node->gin_fresh has bit i;
 *   4. a finite-difference case in tests/c/gradcheck/ (test_gradcheck fails for
 *      any op in this list without one) and a PyTorch parity test if a fixture exists;
 *   5. the Lua binding and a spec for its error messages. */
#ifndef SER_AUTOGRAD_OPLIST_H
#define SER_AUTOGRAD_OPLIST_H

#define SER_OPS(X)                                   \
  X(ADD, "add", ser_add_backward)                    \
  X(SUB, "sub", ser_sub_backward)                    \
  X(MUL, "mul", ser_mul_backward)                    \
  X(DIV, "div", ser_div_backward)                    \
  X(NEG, "neg", ser_neg_backward)                    \
  X(EXP, "exp", ser_exp_backward)                    \
  X(LOG, "log", ser_log_backward)                    \
  X(SQRT, "sqrt", ser_sqrt_backward)                 \
  X(POW, "pow", ser_pow_backward)                    \
  X(ABS, "abs", ser_abs_backward)                    \
  X(CLAMP, "clamp", ser_clamp_backward)              \
  X(RELU, "relu", ser_relu_backward)                 \
  X(SIGMOID, "sigmoid", ser_sigmoid_backward)        \
  X(TANH, "tanh", ser_tanh_backward)                 \
  X(SUM, "sum", ser_sum_backward)                    \
  X(MEAN, "mean", ser_mean_backward)                 \
  X(VAR, "var", ser_var_backward)                    \
  X(MATMUL, "matmul", ser_matmul_backward)           \
  X(SOFTMAX, "softmax", ser_softmax_backward)        \
  X(LOG_SOFTMAX, "log_softmax", ser_log_softmax_backward) \
  X(VIEW, "view", ser_view_backward)                 \
  X(PERMUTE, "permute", ser_permute_backward)        \
  X(NARROW, "narrow", ser_narrow_backward)           \
  X(SELECT, "select", ser_select_backward)           \
  X(CONTIGUOUS, "contiguous", ser_contiguous_backward) \
  X(CAT, "cat", ser_cat_backward)                    \
  SER_OPS_NN(X)

/* Ops of the nn layers (src/ops/: conv, batchnorm, pooling, linear, lstm, losses, ...)
 * are listed in oplist_nn.h so that their owners can edit it independently. */
#include "oplist_nn.h"

#endif
