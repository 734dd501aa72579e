/* BatchNorm1d/2d: PyTorch parity in train mode (output, all gradients, running
 * statistics) and eval mode, eval-mode gradients, argument errors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/fixture.h"

static void release_all(ser_tensor **t, size_t n) {
  for (size_t i = 0; i < n; i++) ser_tensor_release(t[i]);
}

static void test_bn2d_parity(void **state) {
  (void)state;
  const int64_t *xs = SER_DIMS(3, 4, 5, 6), *cs = SER_DIMS(4);
  ser_tensor *x = fixture_tensor("bn2d_x", 4, xs), *w = fixture_tensor("bn2d_weight", 1, cs);
  ser_tensor *b = fixture_tensor("bn2d_bias", 1, cs), *rm = fixture_tensor("bn2d_running_mean_in", 1, cs);
  ser_tensor *rv = fixture_tensor("bn2d_running_var_in", 1, cs), *y_ref = fixture_tensor("bn2d_y", 4, xs);
  ser_tensor *R = fixture_tensor("bn2d_R", 4, xs), *dx_ref = fixture_tensor("bn2d_dx", 4, xs);
  ser_tensor *dw_ref = fixture_tensor("bn2d_dweight", 1, cs), *db_ref = fixture_tensor("bn2d_dbias", 1, cs);
  ser_tensor *rm_ref = fixture_tensor("bn2d_running_mean_out", 1, cs);
  ser_tensor *rv_ref = fixture_tensor("bn2d_running_var_out", 1, cs), *ye_ref = fixture_tensor("bn2d_eval_y", 4, xs);
  x->requires_grad = w->requires_grad = b->requires_grad = 1;
  ser_tensor *y = NULL, *ye = NULL;
  assert_int_equal(ser_batch_norm(&y, x, rm, rv, w, b, 1, 0.1, 1e-5), 0);
  assert_close_abs("y", ser_tensor_data(y), ser_tensor_data(y_ref), 360, 1e-4);
  assert_close_abs("running_mean", ser_tensor_data(rm), ser_tensor_data(rm_ref), 4, 1e-5);
  assert_close_abs("running_var", ser_tensor_data(rv), ser_tensor_data(rv_ref), 4, 1e-5);
  assert_int_equal(ser_backward(y, R, 0), 0);
  assert_close_abs("dx", ser_tensor_data(x->grad), ser_tensor_data(dx_ref), 360, 1e-4);
  assert_close_abs("dweight", ser_tensor_data(w->grad), ser_tensor_data(dw_ref), 4, 1e-4);
  assert_close_abs("dbias", ser_tensor_data(b->grad), ser_tensor_data(db_ref), 4, 1e-4);
  ser_tensor *rm_before = ser_tensor_clone_raw(rm);
  assert_int_equal(ser_batch_norm(&ye, x, rm, rv, w, b, 0, 0.1, 1e-5), 0);
  assert_close_abs("eval y", ser_tensor_data(ye), ser_tensor_data(ye_ref), 360, 1e-4);
  assert_close_abs("eval leaves running_mean", ser_tensor_data(rm), ser_tensor_data(rm_before), 4, 0);
  ser_tensor *all[] = {x, w, b, rm, rv, y_ref, R, dx_ref, dw_ref, db_ref, rm_ref, rv_ref, ye_ref, y, ye, rm_before};
  release_all(all, sizeof all / sizeof *all);
}

static void test_bn1d_parity(void **state) {
  (void)state;
  const int64_t *xs = SER_DIMS(2, 3, 10), *cs = SER_DIMS(3);
  ser_tensor *x = fixture_tensor("bn1d_x", 3, xs), *w = fixture_tensor("bn1d_weight", 1, cs);
  ser_tensor *b = fixture_tensor("bn1d_bias", 1, cs), *y_ref = fixture_tensor("bn1d_y", 3, xs);
  ser_tensor *R = fixture_tensor("bn1d_R", 3, xs), *dx_ref = fixture_tensor("bn1d_dx", 3, xs);
  ser_tensor *dw_ref = fixture_tensor("bn1d_dweight", 1, cs), *db_ref = fixture_tensor("bn1d_dbias", 1, cs);
  ser_tensor *rm_ref = fixture_tensor("bn1d_running_mean_out", 1, cs);
  ser_tensor *rv_ref = fixture_tensor("bn1d_running_var_out", 1, cs);
  ser_tensor *rm = ser_tensor_zeros(1, cs), *rv = ser_tensor_full(1, cs, 1.0f), *y = NULL;
  x->requires_grad = w->requires_grad = b->requires_grad = 1;
  assert_int_equal(ser_batch_norm(&y, x, rm, rv, w, b, 1, 0.1, 1e-5), 0);
  assert_close_abs("y", ser_tensor_data(y), ser_tensor_data(y_ref), 60, 1e-4);
  assert_close_abs("running_mean", ser_tensor_data(rm), ser_tensor_data(rm_ref), 3, 1e-5);
  assert_close_abs("running_var", ser_tensor_data(rv), ser_tensor_data(rv_ref), 3, 1e-5);
  assert_int_equal(ser_backward(y, R, 0), 0);
  assert_close_abs("dx", ser_tensor_data(x->grad), ser_tensor_data(dx_ref), 60, 1e-4);
  assert_close_abs("dweight", ser_tensor_data(w->grad), ser_tensor_data(dw_ref), 3, 1e-4);
  assert_close_abs("dbias", ser_tensor_data(b->grad), ser_tensor_data(db_ref), 3, 1e-4);
  ser_tensor *all[] = {x, w, b, y_ref, R, dx_ref, dw_ref, db_ref, rm_ref, rv_ref, rm, rv, y};
  release_all(all, sizeof all / sizeof *all);
}

/* Eval mode on [B,C] (BatchNorm1d after a Linear): y = (x - rm)/sqrt(rv + eps) w + b,
 * and its input gradient is the constant scale. Checked by hand, no fixture needed. */
static void test_eval_2d_input(void **state) {
  (void)state;
  float xv[6] = {1, 2, 3, 4, 5, 6}, rmv[3] = {1, 0, -1}, rvv[3] = {4, 1, 0.25f}, wv[3] = {2, 1, 1}, bv[3] = {0, 1, 0};
  ser_tensor *x = ser_tensor_from_data(2, SER_DIMS(2, 3), xv), *rm = ser_tensor_from_data(1, SER_DIMS(3), rmv);
  ser_tensor *rv = ser_tensor_from_data(1, SER_DIMS(3), rvv), *w = ser_tensor_from_data(1, SER_DIMS(3), wv);
  ser_tensor *b = ser_tensor_from_data(1, SER_DIMS(3), bv), *y = NULL;
  x->requires_grad = 1;
  assert_int_equal(ser_batch_norm(&y, x, rm, rv, w, b, 0, 0.1, 1e-5), 0);
  float want[6], dwant[6];
  for (int i = 0; i < 6; i++) {
    int c = i % 3;
    float s = 1.0f / sqrtf(rvv[c] + 1e-5f);
    want[i] = (xv[i] - rmv[c]) * s * wv[c] + bv[c];
    dwant[i] = s * wv[c];
  }
  assert_close_abs("eval y", ser_tensor_data(y), want, 6, 1e-6);
  ser_tensor *ones = ser_tensor_full(2, SER_DIMS(2, 3), 1.0f);
  assert_int_equal(ser_backward(y, ones, 0), 0);
  assert_close_abs("eval dx", ser_tensor_data(x->grad), dwant, 6, 1e-6);
  ser_tensor *all[] = {x, rm, rv, w, b, y, ones};
  release_all(all, sizeof all / sizeof *all);
}

static void test_errors(void **state) {
  (void)state;
  ser_tensor *x = ser_tensor_zeros(4, SER_DIMS(2, 4, 3, 3)), *v3 = ser_tensor_zeros(1, SER_DIMS(3));
  ser_tensor *v4 = ser_tensor_zeros(1, SER_DIMS(4)), *one = ser_tensor_zeros(2, SER_DIMS(1, 4)), *y = NULL;
  assert_int_equal(ser_batch_norm(&y, x, v3, v4, NULL, NULL, 1, 0.1, 1e-5), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "running_mean must be [4] (one per channel), got [3]; input [2,4,3,3]"));
  assert_int_equal(ser_batch_norm(&y, x, NULL, NULL, NULL, NULL, 0, 0.1, 1e-5), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "evaluation mode needs running_mean"));
  assert_int_equal(ser_batch_norm(&y, one, v4, v4, NULL, NULL, 1, 0.1, 1e-5), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "expected more than 1 value per channel"));
  assert_int_equal(ser_batch_norm(&y, x, v4, v4, NULL, NULL, 1, 0.1, 0.0), SER_EINVAL);
  assert_null(y);
  ser_tensor *all[] = {x, v3, v4, one};
  release_all(all, sizeof all / sizeof *all);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_bn2d_parity), cmocka_unit_test(test_bn1d_parity),
                                     cmocka_unit_test(test_eval_2d_input), cmocka_unit_test(test_errors)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
