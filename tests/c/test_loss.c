/* Losses: PyTorch parity (ce_ls_*: weight + label_smoothing 0.1; ce_plain_*),
 * nll/mse against hand-computed values, and the target checks' messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fixture.h"

static void ce_case(const char *prefix, int weighted, double ls) {
  ser_tensor *z = fixture_tensor("ce_logits", 2, SER_DIMS(6, 8));
  ser_tensor *y = fixture_tensor("ce_targets", 1, SER_DIMS(6));
  ser_tensor *w = weighted ? fixture_tensor("ce_weight", 1, SER_DIMS(8)) : NULL;
  char name[64];
  z->requires_grad = 1;
  ser_tensor *loss;
  assert_int_equal(ser_cross_entropy(&loss, z, y, w, ls), 0);
  assert_int_equal(loss->ndim, 0);
  snprintf(name, sizeof name, "%s_loss", prefix);
  float *want = fixture_require(name, 1);
  assert_close_abs(name, ser_tensor_data(loss), want, 1, 1e-5);
  free(want);
  assert_int_equal(ser_backward(loss, NULL, 0), 0);
  snprintf(name, sizeof name, "%s_dlogits", prefix);
  want = fixture_require(name, 48);
  assert_close_abs(name, ser_tensor_data(z->grad), want, 48, 1e-6);
  free(want);
  ser_tensor_release(loss);
  ser_tensor_release(z);
  ser_tensor_release(y);
  ser_tensor_release(w);
}

static void cross_entropy_weight_label_smoothing(void **state) { ce_case("ce_ls", 1, 0.1); }
static void cross_entropy_plain(void **state) { ce_case("ce_plain", 0, 0.0); }

/* nll(log_softmax(z)) == cross_entropy(z) without smoothing, weighted too. */
static void nll_of_log_softmax_is_cross_entropy(void **state) {
  const float zv[6] = {0.5f, -1.0f, 2.0f, 0.1f, 0.2f, -0.3f}, yv[2] = {2, 0}, wv[3] = {0.5f, 2.0f, 1.5f};
  ser_tensor *z = ser_tensor_from_data(2, SER_DIMS(2, 3), zv), *y = ser_tensor_from_data(1, SER_DIMS(2), yv);
  ser_tensor *w = ser_tensor_from_data(1, SER_DIMS(3), wv);
  ser_tensor *lp, *a, *b;
  assert_int_equal(ser_log_softmax(&lp, z, 1), 0);
  assert_int_equal(ser_nll_loss(&a, lp, y, w), 0);
  assert_int_equal(ser_cross_entropy(&b, z, y, w, 0), 0);
  assert_float_equal(ser_tensor_data(a)[0], ser_tensor_data(b)[0], 1e-6);
  /* by hand: (1.5·-lp[0,2] + 0.5·-lp[1,0]) / 2 */
  double l0 = log(exp(0.5) + exp(-1.0) + exp(2.0)) - 2.0, l1 = log(exp(0.1) + exp(0.2) + exp(-0.3)) - 0.1;
  assert_float_equal(ser_tensor_data(a)[0], (float)((1.5 * l0 + 0.5 * l1) / 2.0), 1e-6);
  ser_tensor *ts[] = {z, y, w, lp, a, b};
  for (int i = 0; i < 6; i++) ser_tensor_release(ts[i]);
}

static void mse_by_hand(void **state) {
  const float av[4] = {1, 2, 3, 4}, bv[4] = {1.5f, 2, 1, 4};
  ser_tensor *a = ser_tensor_from_data(2, SER_DIMS(2, 2), av), *b = ser_tensor_from_data(2, SER_DIMS(2, 2), bv);
  a->requires_grad = 1;
  ser_tensor *l;
  assert_int_equal(ser_mse_loss(&l, a, b), 0);
  assert_float_equal(ser_tensor_data(l)[0], (0.25f + 4.0f) / 4.0f, 1e-7);
  assert_int_equal(ser_backward(l, NULL, 0), 0);
  const float want[4] = {-0.25f, 0, 1.0f, 0};
  for (int i = 0; i < 4; i++) assert_float_equal(ser_tensor_data(a->grad)[i], want[i], 1e-7);
  ser_tensor_release(l);
  ser_tensor *c = ser_tensor_zeros(1, SER_DIMS(4));
  assert_int_equal(ser_mse_loss(&l, a, c), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "[2,2]"));
  ser_tensor_release(a);
  ser_tensor_release(b);
  ser_tensor_release(c);
}

static void bad_targets_are_reported(void **state) {
  ser_tensor *z = ser_tensor_zeros(2, SER_DIMS(3, 4)), *loss = NULL;
  const float out_of_range[3] = {0, 4, 1}, fractional[3] = {0, 1.5f, 1}, negative[3] = {-1, 0, 0};
  ser_tensor *y = ser_tensor_from_data(1, SER_DIMS(3), out_of_range);
  assert_int_equal(ser_cross_entropy(&loss, z, y, NULL, 0), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "target 4 at position 1"));
  assert_non_null(strstr(ser_errmsg(), "[0, 3]"));
  ser_tensor_release(y);
  y = ser_tensor_from_data(1, SER_DIMS(3), fractional);
  assert_int_equal(ser_nll_loss(&loss, z, y, NULL), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "target 1.5"));
  ser_tensor_release(y);
  y = ser_tensor_from_data(1, SER_DIMS(3), negative);
  assert_int_equal(ser_cross_entropy(&loss, z, y, NULL, 0), SER_EINVAL);
  ser_tensor_release(y);
  y = ser_tensor_zeros(1, SER_DIMS(2));
  assert_int_equal(ser_cross_entropy(&loss, z, y, NULL, 0), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "targets have shape [2], expected [3]"));
  ser_tensor_release(y);
  y = ser_tensor_zeros(1, SER_DIMS(3));
  ser_tensor *w = ser_tensor_zeros(1, SER_DIMS(5));
  assert_int_equal(ser_cross_entropy(&loss, z, y, w, 0), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_int_equal(ser_cross_entropy(&loss, z, y, NULL, 1.5), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  ser_tensor *z3 = ser_tensor_zeros(3, SER_DIMS(3, 4, 1));
  assert_int_equal(ser_cross_entropy(&loss, z3, y, NULL, 0), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_null(loss);
  ser_tensor *ts[] = {z, y, w, z3};
  for (int i = 0; i < 4; i++) ser_tensor_release(ts[i]);
}

/* Large logits must not overflow (the log-sum-exp is shifted by the row max). */
static void large_logits_are_stable(void **state) {
  const float zv[3] = {1000, 0, -1000}, yv[1] = {1};
  ser_tensor *z = ser_tensor_from_data(2, SER_DIMS(1, 3), zv), *y = ser_tensor_from_data(1, SER_DIMS(1), yv), *l;
  assert_int_equal(ser_cross_entropy(&l, z, y, NULL, 0.1), 0);
  assert_true(isfinite(ser_tensor_data(l)[0]));
  /* 0.9·1000 + 0.1/3·(0 + 1000 + 2000) */
  assert_float_equal(ser_tensor_data(l)[0], 1000.0f, 1e-3);
  ser_tensor_release(l);
  ser_tensor_release(z);
  ser_tensor_release(y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cross_entropy_weight_label_smoothing),
      cmocka_unit_test(cross_entropy_plain),
      cmocka_unit_test(nll_of_log_softmax_is_cross_entropy),
      cmocka_unit_test(mse_by_hand),
      cmocka_unit_test(bad_targets_are_reported),
      cmocka_unit_test(large_logits_are_stable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
