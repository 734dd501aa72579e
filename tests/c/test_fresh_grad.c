/* Autograd hands uninitialised ("fresh") gradient buffers to the backwards
 * that overwrite them (relu, conv, batch_norm, max_pool, adaptive_avg_pool; autograd.c) and
 * zeroes them for everything else. Each chain here is differentiated twice:
 * once through the whole graph (fresh buffers on every intermediate), and once
 * stage by stage through leaf copies (every gradient accumulates into zeros).
 * The two must agree exactly: x = 0 + x. Garbage in the fresh buffers (the
 * allocator's block cache hands back old data) would show up as a mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fixture.h"
#include "ops/winograd1d.h"

static ser_tensor *randt(int ndim, const int64_t *shape, unsigned seed) {
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  float *d = ser_tensor_data(t);
  srand(seed);
  for (int64_t i = 0; i < ser_tensor_numel(t); i++) d[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
  return t;
}

/* A leaf copy of t that wants a gradient. */
static ser_tensor *leaf_of(ser_tensor *t) {
  ser_tensor *l = ser_tensor_clone_raw(t);
  l->requires_grad = 1;
  return l;
}

/* Backpropagates g (may be NULL for a scalar) from y and returns the leaf's gradient (a new reference). */
static ser_tensor *grad_of(ser_tensor *y, ser_tensor *g, ser_tensor *leaf) {
  assert_int_equal(ser_backward(y, g, 0), 0);
  return ser_tensor_retain(leaf->grad);
}

static void same(const char *what, const ser_tensor *a, const ser_tensor *b) {
  assert_true(ser_tensor_same_shape(a, b));
  assert_close_abs(what, ser_tensor_data(a), ser_tensor_data(b), (size_t)ser_tensor_numel(a), 0.0);
}

/* Frees a few NaN-filled blocks of the gradients' size, so that the fresh
 * buffers the backward allocates next are likely to be those (malloc's and
 * the block cache's last-freed-first reuse): a fresh buffer read before it is
 * written then gives NaN, not a lucky zero. */
static void poison(const ser_tensor *like) {
  ser_tensor *t[6];
  for (int i = 0; i < 6; i++) t[i] = ser_tensor_full(like->ndim, like->shape, NAN);
  for (int i = 0; i < 6; i++) ser_tensor_release(t[i]);
}

/* x0 -> *2 -> conv2d 3x3 (Winograd) -> batch_norm -> relu = h;
 * out = sum(max_pool2d(h)) + sum(relu(h)): h's gradient is written by one
 * consumer and added to by the other. Odd sizes leave rows/columns outside
 * every pooling window. */
static void test_cnn2d_chain(void **state) {
  (void)state;
  ser_tensor *x0 = randt(4, SER_DIMS(2, 8, 7, 9), 1), *w = randt(4, SER_DIMS(8, 8, 3, 3), 2);
  x0->requires_grad = 1;
  w->requires_grad = 1;
  ser_conv_opts co = {{1, 1}, {1, 1}, {1, 1}};
  ser_pool_opts po = {{2, 2}, {2, 2}, {0, 0}};

  /* A: one graph */
  ser_tensor *x, *c, *n, *h, *p, *r, *sp, *sr, *out;
  assert_int_equal(ser_mul_scalar(&x, x0, 2.0f), 0);
  assert_int_equal(ser_conv2d(&c, x, w, NULL, &co), 0);
  assert_int_equal(ser_batch_norm(&n, c, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), 0);
  assert_int_equal(ser_relu(&h, n), 0);
  assert_int_equal(ser_max_pool2d(&p, NULL, h, &po), 0);
  assert_int_equal(ser_relu(&r, h), 0);
  assert_int_equal(ser_sum(&sp, p, SER_ALL_DIMS, 0), 0);
  assert_int_equal(ser_sum(&sr, r, SER_ALL_DIMS, 0), 0);
  assert_int_equal(ser_add(&out, sp, sr), 0);
  poison(x0);
  assert_int_equal(ser_backward(out, NULL, 0), 0);

  /* B: stage by stage through leaves */
  ser_tensor *hp = leaf_of(h), *hr = leaf_of(h), *t1, *t2;
  assert_int_equal(ser_max_pool2d(&t1, NULL, hp, &po), 0);
  ser_tensor *ones = ser_tensor_full(t1->ndim, t1->shape, 1.0f);
  ser_tensor *dhp = grad_of(t1, ones, hp);
  ser_tensor_release(ones);
  assert_int_equal(ser_relu(&t2, hr), 0);
  ones = ser_tensor_full(t2->ndim, t2->shape, 1.0f);
  ser_tensor *dh = grad_of(t2, ones, hr);
  ser_tensor_release(ones);
  assert_int_equal(ser_tensor_add_(dh, dhp, 1.0f), 0);
  ser_tensor *nl = leaf_of(n), *t3, *cl = leaf_of(c), *t4, *xl = leaf_of(x), *wl = leaf_of(w), *t5, *x0l = leaf_of(x0), *t6;
  assert_int_equal(ser_relu(&t3, nl), 0);
  ser_tensor *dn = grad_of(t3, dh, nl);
  assert_int_equal(ser_batch_norm(&t4, cl, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), 0);
  ser_tensor *dc = grad_of(t4, dn, cl);
  assert_int_equal(ser_conv2d(&t5, xl, wl, NULL, &co), 0);
  ser_tensor *dx = grad_of(t5, dc, xl);
  assert_int_equal(ser_mul_scalar(&t6, x0l, 2.0f), 0);
  ser_tensor *dx0 = grad_of(t6, dx, x0l);

  same("dx0 (graph vs stages)", x0->grad, dx0);
  same("dw (graph vs stages)", w->grad, wl->grad);
  ser_tensor *all[] = {x0, w, x, c, n, h, p, r, sp, sr, out, hp, hr, t1, t2, dhp, dh, nl, t3, cl, t4, xl, wl, t5,
                       x0l, t6, dn, dc, dx, dx0};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

/* conv1d stride 2 (the im2col path, whose fresh input gradient is cleared
 * image by image) after a relu, as in CNN1D. */
static void test_cnn1d_chain(void **state) {
  (void)state;
  ser_tensor *x0 = randt(3, SER_DIMS(2, 5, 41), 3), *w = randt(3, SER_DIMS(6, 5, 9), 4);
  x0->requires_grad = 1;
  w->requires_grad = 1;
  ser_conv_opts co = {{2, 1}, {4, 0}, {1, 1}};
  ser_tensor *x, *c, *s;
  assert_int_equal(ser_relu(&x, x0), 0);
  assert_int_equal(ser_conv1d(&c, x, w, NULL, &co), 0);
  assert_int_equal(ser_sum(&s, c, SER_ALL_DIMS, 0), 0);
  poison(x0);
  assert_int_equal(ser_backward(s, NULL, 0), 0);

  ser_tensor *xl = leaf_of(x), *wl = leaf_of(w), *x0l = leaf_of(x0), *t1, *t2;
  assert_int_equal(ser_conv1d(&t1, xl, wl, NULL, &co), 0);
  ser_tensor *ones = ser_tensor_full(t1->ndim, t1->shape, 1.0f);
  ser_tensor *dx = grad_of(t1, ones, xl);
  assert_int_equal(ser_relu(&t2, x0l), 0);
  ser_tensor *dx0 = grad_of(t2, dx, x0l);
  same("dx0 (graph vs stages)", x0->grad, dx0);
  same("dw (graph vs stages)", w->grad, wl->grad);
  ser_tensor *all[] = {x0, w, x, c, s, xl, wl, x0l, t1, t2, ones, dx, dx0};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

/* CNN1D's own ops: the direct one-channel conv (weight gradient only: its
 * input wants none) -> relu -> the polyphase Winograd conv, whose fresh input
 * gradient it zeroes stretch by stretch inside its blocks (16-tile blocks
 * here, so 301 samples cross several block edges) -> batch_norm_relu ->
 * adaptive average pool to 1, whose fresh input gradient it zeroes plane by
 * plane -> sum. */
static void test_cnn1d_model_chain(void **state) {
  (void)state;
  long prev = ser_winograd1d_set_block_floats(1);
  ser_tensor *xin = randt(3, SER_DIMS(2, 1, 601), 5), *w1 = randt(3, SER_DIMS(8, 1, 9), 6);
  ser_tensor *w2 = randt(3, SER_DIMS(9, 8, 9), 7);
  w1->requires_grad = 1;
  w2->requires_grad = 1;
  ser_conv_opts co = {{2, 1}, {4, 0}, {1, 1}};
  ser_tensor *a, *r, *c, *n, *p, *s;
  assert_int_equal(ser_conv1d(&a, xin, w1, NULL, &co), 0);
  assert_int_equal(ser_relu(&r, a), 0);
  assert_int_equal(ser_conv1d(&c, r, w2, NULL, &co), 0);
  assert_int_equal(ser_batch_norm_relu(&n, c, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), 0);
  assert_int_equal(ser_adaptive_avg_pool1d(&p, n, 1), 0);
  assert_int_equal(ser_sum(&s, p, SER_ALL_DIMS, 0), 0);
  poison(c);
  poison(n);
  assert_int_equal(ser_backward(s, NULL, 0), 0);

  ser_tensor *nl = leaf_of(n), *cl = leaf_of(c), *rl = leaf_of(r), *w2l = leaf_of(w2), *al = leaf_of(a);
  ser_tensor *w1l = leaf_of(w1), *t1, *t2, *t3, *t4, *t5, *t6;
  assert_int_equal(ser_adaptive_avg_pool1d(&t1, nl, 1), 0);
  assert_int_equal(ser_sum(&t2, t1, SER_ALL_DIMS, 0), 0);
  ser_tensor *dn = grad_of(t2, NULL, nl);
  assert_int_equal(ser_batch_norm_relu(&t3, cl, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5), 0);
  ser_tensor *dc = grad_of(t3, dn, cl);
  assert_int_equal(ser_conv1d(&t4, rl, w2l, NULL, &co), 0);
  ser_tensor *dr = grad_of(t4, dc, rl);
  assert_int_equal(ser_relu(&t5, al), 0);
  ser_tensor *da = grad_of(t5, dr, al);
  assert_int_equal(ser_conv1d(&t6, xin, w1l, NULL, &co), 0);
  ser_tensor *dw1 = grad_of(t6, da, w1l);
  same("dw2 (graph vs stages)", w2->grad, w2l->grad);
  same("dw1 (graph vs stages)", w1->grad, dw1);
  ser_winograd1d_set_block_floats(prev);
  ser_tensor *all[] = {xin, w1, w2, a, r, c, n, p, s, nl, cl, rl, w2l, al, w1l,
                       t1, t2, t3, t4, t5, t6, dn, dc, dr, da, dw1};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_cnn2d_chain), cmocka_unit_test(test_cnn1d_chain),
                                     cmocka_unit_test(test_cnn1d_model_chain)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
