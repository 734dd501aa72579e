/* Finite-difference checks of the convolutional ops: conv1d/2d (stride,
 * padding, dilation, no bias), batch_norm (train and eval), pooling, linear,
 * dropout, leaky_relu. Inputs of the piecewise-linear ops (max pool, leaky
 * relu) are kept away from their kinks so that a central difference of step
 * EPS never straddles one. */
#include <math.h>

#include "gradcheck.h"

#define EPS 1e-2
#define TOL 2e-2

/* Distinct values 0.1 apart in a scrambled order: no two pool candidates tie
 * within a difference step. */
static ser_tensor *spaced(int ndim, const int64_t *shape) {
  ser_tensor *t = gc_uniform(ndim, shape, 0, 1, 1);
  int64_t n = ser_tensor_numel(t);
  float *d = ser_tensor_data(t);
  for (int64_t i = 0; i < n; i++) d[i] = 0.1f * (float)((i * 7919) % n) - 0.05f * (float)n;
  return t;
}

static int f_conv2d(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  return ser_conv2d(out, in[0], in[1], in[2], ctx);
}
static int f_conv2d_nobias(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  return ser_conv2d(out, in[0], in[1], NULL, ctx);
}
static int f_conv1d(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  return ser_conv1d(out, in[0], in[1], in[2], ctx);
}

GRADCHECK_CASE(CONV2D, conv2d_padded_strided_dilated) {
  ser_conv_opts o = {{2, 1}, {1, 2}, {1, 2}};
  ser_tensor *in[3] = {gc_randn(4, SER_DIMS(2, 3, 6, 7), 1), gc_randn(4, SER_DIMS(4, 3, 3, 2), 1),
                       gc_randn(1, SER_DIMS(4), 1)};
  gc_assert(f_conv2d, &o, 3, in, EPS, TOL);
  gc_release(3, in);
}

GRADCHECK_CASE(CONV2D, conv2d_same_padding_no_bias) {
  ser_conv_opts o = {{1, 1}, {1, 1}, {1, 1}};
  ser_tensor *in[2] = {gc_randn(4, SER_DIMS(3, 2, 5, 4), 1), gc_randn(4, SER_DIMS(3, 2, 3, 3), 1)};
  gc_assert(f_conv2d_nobias, &o, 2, in, EPS, TOL);
  gc_release(2, in);
}

/* 3x3, stride 1, >= 8 channels each side: the Winograd path (forward and input
 * gradient); odd width and padding 2 x 0 to reach the edge tiles */
GRADCHECK_CASE(CONV2D, conv2d_winograd_3x3) {
  ser_conv_opts o = {{1, 1}, {2, 0}, {1, 1}};
  ser_tensor *in[3] = {gc_randn(4, SER_DIMS(2, 8, 3, 5), 1), gc_randn(4, SER_DIMS(9, 8, 3, 3), 1),
                       gc_randn(1, SER_DIMS(9), 1)};
  gc_assert(f_conv2d, &o, 3, in, EPS, TOL);
  gc_release(3, in);
}

GRADCHECK_CASE(CONV1D, conv1d_stride2_pad4) {
  ser_conv_opts o = {{2, 1}, {4, 0}, {1, 1}};
  ser_tensor *in[3] = {gc_randn(3, SER_DIMS(2, 2, 13), 1), gc_randn(3, SER_DIMS(3, 2, 9), 1),
                       gc_randn(1, SER_DIMS(3), 1)};
  gc_assert(f_conv1d, &o, 3, in, EPS, TOL);
  gc_release(3, in);
}

/* kernel 9, stride 2, padding 4 with >= 8 channels each side: the polyphase
 * Winograd path (forward, input and weight gradients); length 37 gives 19
 * outputs, so the last 4-output tile is partial and both edges are padded */
GRADCHECK_CASE(CONV1D, conv1d_winograd_k9s2) {
  ser_conv_opts o = {{2, 1}, {4, 0}, {1, 1}};
  ser_tensor *in[3] = {gc_randn(3, SER_DIMS(2, 8, 37), 1), gc_randn(3, SER_DIMS(9, 8, 9), 1),
                       gc_randn(1, SER_DIMS(9), 1)};
  gc_assert(f_conv1d, &o, 3, in, EPS, TOL);
  gc_release(3, in);
}

/* one input channel, stride 2 (CNN1D's first layer): the direct kernel of
 * conv1d_c1.c (forward, weight and bias gradients; the input gradient, asked
 * for here, runs on im2col); 23 samples give 12 outputs with both edges padded */
GRADCHECK_CASE(CONV1D, conv1d_direct_c1_k9s2) {
  ser_conv_opts o = {{2, 1}, {4, 0}, {1, 1}};
  ser_tensor *in[3] = {gc_randn(3, SER_DIMS(2, 1, 23), 1), gc_randn(3, SER_DIMS(5, 1, 9), 1),
                       gc_randn(1, SER_DIMS(5), 1)};
  gc_assert(f_conv1d, &o, 3, in, EPS, TOL);
  gc_release(3, in);
}

typedef struct bn_case {
  ser_tensor *rm, *rv;
  int training;
} bn_case;

static int f_bn(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  bn_case *c = ctx;
  return ser_batch_norm(out, in[0], c->rm, c->rv, in[1], in[2], c->training, 0.1, 1e-5);
}

static void check_bn(int training, int ndim, const int64_t *shape) {
  int64_t C = shape[1];
  bn_case c = {gc_uniform(1, SER_DIMS(C), -0.5f, 0.5f, 0), gc_uniform(1, SER_DIMS(C), 0.5f, 2.0f, 0), training};
  ser_tensor *in[3] = {gc_randn(ndim, shape, 1), gc_uniform(1, SER_DIMS(C), 0.5f, 1.5f, 1), gc_randn(1, SER_DIMS(C), 1)};
  gc_assert(f_bn, &c, 3, in, EPS, TOL);
  gc_release(3, in);
  gc_release(2, (ser_tensor *[]){c.rm, c.rv});
}

static int f_bn_relu(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  bn_case *c = ctx;
  return ser_batch_norm_relu(out, in[0], c->rm, c->rv, in[1], in[2], c->training, 0.1, 1e-5);
}

/* relu(batch_norm): inputs chosen so that no output lies within 0.1 of the
 * kink (evenly spaced values per channel, shuffled over batch and length). */
static void check_bn_relu(int training) {
  static const float base[6] = {0.5f, -2.5f, 1.5f, -0.5f, 2.5f, -1.5f};
  float xv[12], wv[2] = {1.0f, 0.8f}, bv[2] = {0.1f, -0.12f};
  for (int b = 0; b < 2; b++)
    for (int c = 0; c < 2; c++)
      for (int l = 0; l < 3; l++) xv[(b * 2 + c) * 3 + l] = 0.7f * base[(b * 3 + l + 2 * c) % 6] + 0.3f * c;
  bn_case c = {ser_tensor_zeros(1, SER_DIMS(2)), ser_tensor_full(1, SER_DIMS(2), 1.0f), training};
  ser_tensor *in[3] = {ser_tensor_from_data(3, SER_DIMS(2, 2, 3), xv), ser_tensor_from_data(1, SER_DIMS(2), wv),
                       ser_tensor_from_data(1, SER_DIMS(2), bv)};
  for (int i = 0; i < 3; i++) in[i]->requires_grad = 1;
  gc_assert(f_bn_relu, &c, 3, in, EPS, TOL);
  gc_release(3, in);
  gc_release(2, (ser_tensor *[]){c.rm, c.rv});
}

GRADCHECK_CASE(BATCH_NORM_RELU, batch_norm_relu_train) { check_bn_relu(1); }
GRADCHECK_CASE(BATCH_NORM_RELU, batch_norm_relu_eval) { check_bn_relu(0); }

GRADCHECK_CASE(BATCH_NORM, batch_norm2d_train) { check_bn(1, 4, SER_DIMS(3, 2, 3, 4)); }
GRADCHECK_CASE(BATCH_NORM, batch_norm1d_train_2d_input) { check_bn(1, 2, SER_DIMS(6, 3)); }
GRADCHECK_CASE(BATCH_NORM, batch_norm1d_eval) { check_bn(0, 3, SER_DIMS(2, 3, 5)); }

static int f_maxpool2d(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  return ser_max_pool2d(out, NULL, in[0], ctx);
}
static int f_maxpool1d(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  return ser_max_pool1d(out, NULL, in[0], ctx);
}
static int f_avgpool2d(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_avg_pool2d(out, in[0], ctx); }
static int f_avgpool1d(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_avg_pool1d(out, in[0], ctx); }

GRADCHECK_CASE(MAX_POOL, max_pool2d_overlapping_padded) {
  ser_pool_opts o = {{3, 2}, {2, 1}, {1, 0}};
  ser_tensor *x = spaced(4, SER_DIMS(2, 2, 5, 4));
  gc_assert(f_maxpool2d, &o, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

GRADCHECK_CASE(MAX_POOL, max_pool1d_floor) {
  ser_pool_opts o = {{2, 0}, {0, 0}, {0, 0}};
  ser_tensor *x = spaced(3, SER_DIMS(2, 3, 7));
  gc_assert(f_maxpool1d, &o, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

GRADCHECK_CASE(AVG_POOL, avg_pool2d_padded) {
  ser_pool_opts o = {{2, 3}, {2, 2}, {1, 1}};
  ser_tensor *x = gc_randn(4, SER_DIMS(2, 2, 5, 6), 1);
  gc_assert(f_avgpool2d, &o, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

GRADCHECK_CASE(AVG_POOL, avg_pool1d) {
  ser_pool_opts o = {{3, 0}, {2, 0}, {1, 0}};
  ser_tensor *x = gc_randn(3, SER_DIMS(2, 2, 8), 1);
  gc_assert(f_avgpool1d, &o, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

static int f_adaptive2d(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  const int *s = ctx;
  return ser_adaptive_avg_pool2d(out, in[0], s[0], s[1]);
}
static int f_adaptive1d(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  const int *s = ctx;
  return ser_adaptive_avg_pool1d(out, in[0], s[0]);
}

GRADCHECK_CASE(ADAPTIVE_AVG_POOL, adaptive_avg_pool2d_uneven_windows) {
  int size[2] = {3, 2};
  ser_tensor *x = gc_randn(4, SER_DIMS(2, 2, 5, 7), 1);
  gc_assert(f_adaptive2d, size, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

GRADCHECK_CASE(ADAPTIVE_AVG_POOL, adaptive_avg_pool1d_to_one) {
  int size[1] = {1};
  ser_tensor *x = gc_randn(3, SER_DIMS(2, 3, 11), 1);
  gc_assert(f_adaptive1d, size, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

static int f_linear(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  (void)ctx;
  return ser_linear(out, in[0], in[1], in[2]);
}

GRADCHECK_CASE(LINEAR, linear_leading_dims) {
  ser_tensor *in[3] = {gc_randn(3, SER_DIMS(2, 3, 4), 1), gc_randn(2, SER_DIMS(5, 4), 1), gc_randn(1, SER_DIMS(5), 1)};
  gc_assert(f_linear, NULL, 3, in, EPS, TOL);
  gc_release(3, in);
}

/* The same seed each call, so every evaluation of f sees the same mask. */
static int f_dropout(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  (void)ctx;
  ser_rng rng;
  ser_rng_seed(&rng, 1234);
  return ser_dropout(out, in[0], 0.4, 1, &rng);
}

GRADCHECK_CASE(DROPOUT, dropout_fixed_mask) {
  ser_tensor *x = gc_randn(2, SER_DIMS(4, 6), 1);
  gc_assert(f_dropout, NULL, 1, &x, EPS, TOL);
  gc_release(1, &x);
}

static int f_leaky(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  (void)ctx;
  return ser_leaky_relu(out, in[0], 0.2);
}

GRADCHECK_CASE(LEAKY_RELU, leaky_relu_away_from_zero) {
  ser_tensor *x = gc_randn(2, SER_DIMS(3, 5), 1);
  float *d = ser_tensor_data(x);
  for (int i = 0; i < 15; i++) d[i] += d[i] >= 0 ? 0.1f : -0.1f;
  gc_assert(f_leaky, NULL, 1, &x, EPS, TOL);
  gc_release(1, &x);
}
