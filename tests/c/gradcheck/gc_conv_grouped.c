/* Finite-difference checks of the grouped 1-d convolution (the positional
 * embedding of wav2vec 2.0 / HuBERT / WavLM): groups of several channels each,
 * padding, stride and dilation, with and without bias. */
#include "gradcheck.h"

#define EPS 1e-2
#define TOL 2e-2

typedef struct {
  int groups;
  ser_conv_opts o;
} grouped_ctx;

static int f_grouped(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  const grouped_ctx *c = ctx;
  return ser_conv1d_grouped(out, in[0], in[1], in[2], c->groups, &c->o);
}
static int f_grouped_nobias(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  const grouped_ctx *c = ctx;
  return ser_conv1d_grouped(out, in[0], in[1], NULL, c->groups, &c->o);
}

/* 3 groups of 2 input channels -> 2 outputs each; even kernel with padding K/2, as the positional conv */
GRADCHECK_CASE(CONV1D_GROUPED, conv1d_grouped_even_kernel_padded) {
  grouped_ctx c = {3, {{1, 1}, {2, 0}, {1, 1}}};
  ser_tensor *in[3] = {gc_randn(3, SER_DIMS(2, 6, 9), 1), gc_randn(3, SER_DIMS(6, 2, 4), 1),
                       gc_randn(1, SER_DIMS(6), 1)};
  gc_assert(f_grouped, &c, 3, in, EPS, TOL);
  gc_release(3, in);
}

GRADCHECK_CASE(CONV1D_GROUPED, conv1d_grouped_strided_dilated_no_bias) {
  grouped_ctx c = {2, {{2, 1}, {1, 0}, {2, 1}}};
  ser_tensor *in[2] = {gc_randn(3, SER_DIMS(2, 4, 11), 1), gc_randn(3, SER_DIMS(6, 2, 3), 1)};
  gc_assert(f_grouped_nobias, &c, 2, in, EPS, TOL);
  gc_release(2, in);
}
