/* Linear (PyTorch parity, leading dims), Dropout (seeded mask, inverted
 * scaling, eval identity) and LeakyReLU. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/fixture.h"

static void release_all(ser_tensor **t, size_t n) {
  for (size_t i = 0; i < n; i++) ser_tensor_release(t[i]);
}

static void test_linear_parity(void **state) {
  (void)state;
  ser_tensor *x = fixture_tensor("linear_x", 2, SER_DIMS(3, 6)), *w = fixture_tensor("linear_weight", 2, SER_DIMS(5, 6));
  ser_tensor *b = fixture_tensor("linear_bias", 1, SER_DIMS(5)), *y_ref = fixture_tensor("linear_y", 2, SER_DIMS(3, 5));
  ser_tensor *R = fixture_tensor("linear_R", 2, SER_DIMS(3, 5)), *dx_ref = fixture_tensor("linear_dx", 2, SER_DIMS(3, 6));
  ser_tensor *dw_ref = fixture_tensor("linear_dweight", 2, SER_DIMS(5, 6));
  ser_tensor *db_ref = fixture_tensor("linear_dbias", 1, SER_DIMS(5)), *y = NULL;
  x->requires_grad = w->requires_grad = b->requires_grad = 1;
  assert_int_equal(ser_linear(&y, x, w, b), 0);
  assert_true(ser_tensor_same_shape(y, y_ref));
  assert_close_abs("y", ser_tensor_data(y), ser_tensor_data(y_ref), 15, 1e-5);
  assert_int_equal(ser_backward(y, R, 0), 0);
  assert_close_abs("dx", ser_tensor_data(x->grad), ser_tensor_data(dx_ref), 18, 1e-5);
  assert_close_abs("dweight", ser_tensor_data(w->grad), ser_tensor_data(dw_ref), 30, 1e-5);
  assert_close_abs("dbias", ser_tensor_data(b->grad), ser_tensor_data(db_ref), 5, 1e-5);
  ser_tensor *all[] = {x, w, b, y_ref, R, dx_ref, dw_ref, db_ref, y};
  release_all(all, sizeof all / sizeof *all);
}

/* [2,3,4] input: the same as [6,4] row by row; no bias. */
static void test_linear_leading_dims(void **state) {
  (void)state;
  ser_tensor *x = ser_tensor_empty(3, SER_DIMS(2, 3, 4)), *w = ser_tensor_empty(2, SER_DIMS(5, 4)), *y = NULL;
  ser_tensor_fill_uniform(x, -1, 1, NULL);
  ser_tensor_fill_uniform(w, -1, 1, NULL);
  assert_int_equal(ser_linear(&y, x, w, NULL), 0);
  assert_int_equal(y->ndim, 3);
  assert_int_equal(y->shape[2], 5);
  const float *xd = ser_tensor_data(x), *wd = ser_tensor_data(w);
  float want[30];
  for (int r = 0; r < 6; r++)
    for (int o = 0; o < 5; o++) {
      double s = 0;
      for (int i = 0; i < 4; i++) s += xd[r * 4 + i] * wd[o * 4 + i];
      want[r * 5 + o] = (float)s;
    }
  assert_close_abs("leading dims", ser_tensor_data(y), want, 30, 1e-6);
  ser_tensor *w3 = ser_tensor_zeros(2, SER_DIMS(5, 3)), *b4 = ser_tensor_zeros(1, SER_DIMS(4)), *z = NULL;
  assert_int_equal(ser_linear(&z, x, w3, NULL), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "linear: input has 4 features, weight expects 3; input [2,3,4], weight [5,3]"));
  assert_int_equal(ser_linear(&z, x, w, b4), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "bias must be [5]"));
  ser_tensor *all[] = {x, w, y, w3, b4};
  release_all(all, sizeof all / sizeof *all);
}

static void test_dropout(void **state) {
  (void)state;
  int64_t n = 20000;
  ser_tensor *x = ser_tensor_full(1, SER_DIMS(n), 2.0f), *y = NULL, *y2 = NULL, *ye = NULL;
  x->requires_grad = 1;
  ser_rng r1, r2;
  ser_rng_seed(&r1, 7);
  ser_rng_seed(&r2, 7);
  assert_int_equal(ser_dropout(&y, x, 0.3, 1, &r1), 0);
  assert_int_equal(ser_dropout(&y2, x, 0.3, 1, &r2), 0);
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; i++) {
    float v = ser_tensor_data(y)[i];
    if (v == 0.0f) zeros++;
    else assert_float_equal(v, 2.0f / 0.7f, 1e-6); /* inverted scaling */
  }
  double frac = (double)zeros / n;
  printf("  dropped fraction %.4f (p = 0.3)\n", frac);
  assert_true(fabs(frac - 0.3) < 0.015); /* 4.6 sigma of a binomial(20000, 0.3) */
  assert_close_abs("same seed, same mask", ser_tensor_data(y), ser_tensor_data(y2), n, 0);
  ser_tensor *g = ser_tensor_full(1, SER_DIMS(n), 1.0f);
  assert_int_equal(ser_backward(y, g, 0), 0);
  for (int64_t i = 0; i < n; i++)
    assert_float_equal(ser_tensor_data(x->grad)[i], ser_tensor_data(y)[i] / 2.0f, 1e-6);
  assert_int_equal(ser_dropout(&ye, x, 0.3, 0, NULL), 0);
  assert_ptr_equal(ye, x); /* eval: identity, as PyTorch */
  ser_tensor *z = NULL;
  assert_int_equal(ser_dropout(&z, x, 1.5, 1, NULL), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "probability must be in [0, 1], got 1.5"));
  assert_int_equal(ser_dropout(&z, x, 1.0, 1, NULL), 0);
  for (int64_t i = 0; i < n; i++) assert_true(ser_tensor_data(z)[i] == 0.0f);
  ser_tensor *all[] = {x, y, y2, ye, g, z};
  release_all(all, sizeof all / sizeof *all);
}

static void test_leaky_relu(void **state) {
  (void)state;
  float v[5] = {-2, -0.5f, 0, 0.5f, 3};
  ser_tensor *x = ser_tensor_from_data(1, SER_DIMS(5), v), *y = NULL;
  x->requires_grad = 1;
  assert_int_equal(ser_leaky_relu(&y, x, 0.1), 0);
  float want[5] = {-0.2f, -0.05f, 0, 0.5f, 3}, dwant[5] = {0.1f, 0.1f, 0.1f, 1, 1}; /* slope at 0, as PyTorch */
  assert_close_abs("leaky_relu", ser_tensor_data(y), want, 5, 1e-7);
  ser_tensor *g = ser_tensor_full(1, SER_DIMS(5), 1.0f);
  assert_int_equal(ser_backward(y, g, 0), 0);
  assert_close_abs("leaky_relu grad", ser_tensor_data(x->grad), dwant, 5, 1e-7);
  ser_tensor *all[] = {x, y, g};
  release_all(all, sizeof all / sizeof *all);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_linear_parity), cmocka_unit_test(test_linear_leading_dims),
                                     cmocka_unit_test(test_dropout), cmocka_unit_test(test_leaky_relu)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
