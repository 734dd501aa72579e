/* Pooling: PyTorch parity (max_pool2d with indices, adaptive average 1d/2d),
 * hand-checked cases (padding, strides, 1-d, NaN, adaptive windows of
 * uneven size, average pooling) and errors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/fixture.h"

static void release_all(ser_tensor **t, size_t n) {
  for (size_t i = 0; i < n; i++) ser_tensor_release(t[i]);
}

static void test_maxpool2d_parity(void **state) {
  (void)state;
  const int64_t *xs = SER_DIMS(2, 3, 5, 7), *ys = SER_DIMS(2, 3, 2, 3);
  ser_tensor *x = fixture_tensor("maxpool2d_x", 4, xs), *y_ref = fixture_tensor("maxpool2d_y", 4, ys);
  ser_tensor *R = fixture_tensor("maxpool2d_R", 4, ys), *dx_ref = fixture_tensor("maxpool2d_dx", 4, xs);
  ser_tensor *idx_ref = fixture_tensor("maxpool2d_idx", 4, ys), *y = NULL, *idx = NULL;
  x->requires_grad = 1;
  ser_pool_opts o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool2d(&y, &idx, x, &o), 0);
  assert_true(ser_tensor_same_shape(y, y_ref));
  assert_close_abs("y", ser_tensor_data(y), ser_tensor_data(y_ref), 36, 0);
  assert_close_abs("indices", ser_tensor_data(idx), ser_tensor_data(idx_ref), 36, 0);
  assert_int_equal(ser_backward(y, R, 0), 0);
  assert_close_abs("dx", ser_tensor_data(x->grad), ser_tensor_data(dx_ref), 210, 1e-6);
  ser_tensor *all[] = {x, y_ref, R, dx_ref, idx_ref, y, idx};
  release_all(all, sizeof all / sizeof *all);
}

static void adaptive_parity(const char *p, int nd, const int64_t *xs, const int64_t *ys, size_t nx, size_t ny) {
  char name[64];
  snprintf(name, sizeof name, "%s_x", p);
  ser_tensor *x = fixture_tensor(name, nd, xs);
  snprintf(name, sizeof name, "%s_y", p);
  ser_tensor *y_ref = fixture_tensor(name, nd, ys);
  snprintf(name, sizeof name, "%s_R", p);
  ser_tensor *R = fixture_tensor(name, nd, ys);
  snprintf(name, sizeof name, "%s_dx", p);
  ser_tensor *dx_ref = fixture_tensor(name, nd, xs), *y = NULL;
  x->requires_grad = 1;
  assert_int_equal(nd == 4 ? ser_adaptive_avg_pool2d(&y, x, 1, 1) : ser_adaptive_avg_pool1d(&y, x, 1), 0);
  assert_true(ser_tensor_same_shape(y, y_ref));
  assert_close_abs("y", ser_tensor_data(y), ser_tensor_data(y_ref), ny, 1e-6);
  assert_int_equal(ser_backward(y, R, 0), 0);
  assert_close_abs("dx", ser_tensor_data(x->grad), ser_tensor_data(dx_ref), nx, 1e-6);
  ser_tensor *all[] = {x, y_ref, R, dx_ref, y};
  release_all(all, sizeof all / sizeof *all);
}

static void test_adaptive2d_parity(void **state) {
  (void)state;
  adaptive_parity("adaptavg2d", 4, SER_DIMS(2, 3, 5, 7), SER_DIMS(2, 3, 1, 1), 210, 6);
}

static void test_adaptive1d_parity(void **state) {
  (void)state;
  adaptive_parity("adaptavg1d", 3, SER_DIMS(2, 3, 11), SER_DIMS(2, 3, 1), 66, 6);
}

/* x = 0..n-1 in one plane makes every window's max / mean easy to state. */
static ser_tensor *ramp(int nd, const int64_t *shape) {
  ser_tensor *t = ser_tensor_empty(nd, shape);
  for (int64_t i = 0; i < ser_tensor_numel(t); i++) ser_tensor_data(t)[i] = (float)i;
  return t;
}

static void test_maxpool_padding_stride_1d(void **state) {
  (void)state;
  /* [1,1,4,5] ramp, kernel 3, stride 2, padding 1 -> 2x3; the window of (0,0)
   * covers rows -1..1, cols -1..1, so its max is x[1][1] = 6. */
  ser_tensor *x = ramp(4, SER_DIMS(1, 1, 4, 5)), *y = NULL, *idx = NULL;
  ser_pool_opts o = {{3, 3}, {2, 2}, {1, 1}};
  assert_int_equal(ser_max_pool2d(&y, &idx, x, &o), 0);
  float want[6] = {6, 8, 9, 16, 18, 19};
  assert_int_equal(ser_tensor_numel(y), 6);
  assert_close_abs("padded max", ser_tensor_data(y), want, 6, 0);
  assert_close_abs("padded idx", ser_tensor_data(idx), want, 6, 0); /* ramp: value == index */
  ser_tensor *l = ramp(3, SER_DIMS(1, 2, 7)), *yl = NULL;
  ser_pool_opts o1 = {{2, 0}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool1d(&yl, NULL, l, &o1), 0);
  float want1[6] = {1, 3, 5, 8, 10, 12}; /* floor: the 7th element of each row is dropped */
  assert_int_equal(yl->shape[2], 3);
  assert_close_abs("max_pool1d", ser_tensor_data(yl), want1, 6, 0);
  ser_tensor *all[] = {x, y, idx, l, yl};
  release_all(all, sizeof all / sizeof *all);
}

static void test_maxpool_nan_propagates(void **state) {
  (void)state;
  float v[4] = {1, NAN, 3, 2};
  ser_tensor *x = ser_tensor_from_data(4, SER_DIMS(1, 1, 2, 2), v), *y = NULL;
  ser_pool_opts o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool2d(&y, NULL, x, &o), 0);
  assert_true(isnan(ser_tensor_data(y)[0]));
  ser_tensor_release(x);
  ser_tensor_release(y);
}

/* The vectorised 2x2 path (16 windows per step plus a scalar tail) against a
 * plain loop, with ties and NaNs planted: the same values and argmax indices. */
static void test_maxpool_2x2_fast_path(void **state) {
  (void)state;
  const int B = 2, C = 3, H = 10, W = 71; /* OW = 35: two vector blocks and a tail of 3 */
  ser_tensor *x = ser_tensor_empty(4, SER_DIMS(B, C, H, W)), *y = NULL, *idx = NULL;
  ser_tensor_fill_normal(x, 0, 1, NULL);
  float *d = ser_tensor_data(x);
  for (int i = 0; i < B * C * H * W; i += 37) d[i] = NAN;
  for (int i = 5; i < B * C * H * W; i += 23) d[i] = d[i - 1]; /* ties: the first one wins */
  ser_pool_opts o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool2d(&y, &idx, x, &o), 0);
  const int OH = H / 2, OW = W / 2;
  int bad = 0;
  for (int p = 0; p < B * C; p++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        float best = -INFINITY;
        int at = 0;
        for (int h = 2 * oh; h < 2 * oh + 2; h++)
          for (int w = 2 * ow; w < 2 * ow + 2; w++) {
            float v = d[(p * H + h) * W + w];
            if (isnan(best)) continue;
            if (v > best || isnan(v) || (h == 2 * oh && w == 2 * ow)) best = v, at = h * W + w;
          }
        int oi = (p * OH + oh) * OW + ow;
        float got = ser_tensor_data(y)[oi];
        int same = isnan(best) ? isnan(got) : got == best;
        if (!same || ser_tensor_data(idx)[oi] != (float)at) {
          if (bad++ < 5) printf("  window %d: got %g at %g, want %g at %d\n", oi, got, ser_tensor_data(idx)[oi], best, at);
        }
      }
  assert_int_equal(bad, 0);
  ser_tensor *all[] = {x, y, idx};
  release_all(all, sizeof all / sizeof *all);
}

static void test_avgpool(void **state) {
  (void)state;
  /* [1,1,4,4] ramp, kernel 2, stride 2 -> means of 2x2 blocks; padded case
   * counts the zero padding (count_include_pad=True). */
  ser_tensor *x = ramp(4, SER_DIMS(1, 1, 4, 4)), *y = NULL, *yp = NULL;
  x->requires_grad = 1;
  ser_pool_opts o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_avg_pool2d(&y, x, &o), 0);
  float want[4] = {2.5f, 4.5f, 10.5f, 12.5f};
  assert_close_abs("avg", ser_tensor_data(y), want, 4, 1e-6);
  ser_tensor *g = ser_tensor_full(4, SER_DIMS(1, 1, 2, 2), 1.0f);
  assert_int_equal(ser_backward(y, g, 0), 0);
  for (int i = 0; i < 16; i++) assert_float_equal(ser_tensor_data(x->grad)[i], 0.25f, 1e-7);
  ser_pool_opts op = {{2, 2}, {2, 2}, {1, 1}};
  assert_int_equal(ser_avg_pool2d(&yp, x, &op), 0); /* 3x3: corner window holds only x[0][0] = 0 */
  float wantp[9] = {0, (1 + 2) / 4.0f, 3 / 4.0f, (4 + 8) / 4.0f, (5 + 6 + 9 + 10) / 4.0f, (7 + 11) / 4.0f,
                    12 / 4.0f, (13 + 14) / 4.0f, 15 / 4.0f};
  assert_close_abs("avg padded", ser_tensor_data(yp), wantp, 9, 1e-6);
  ser_tensor *l = ramp(3, SER_DIMS(1, 1, 6)), *yl = NULL;
  ser_pool_opts o1 = {{3, 0}, {0, 0}, {0, 0}};
  assert_int_equal(ser_avg_pool1d(&yl, l, &o1), 0);
  float want1[2] = {1, 4};
  assert_close_abs("avg_pool1d", ser_tensor_data(yl), want1, 2, 1e-6);
  ser_tensor *all[] = {x, y, yp, g, l, yl};
  release_all(all, sizeof all / sizeof *all);
}

/* Output sizes that do not divide the input: PyTorch's overlapping windows
 * [floor(i*n/o), ceil((i+1)*n/o)). For n = 5, o = 3: [0,2), [1,4), [3,5). */
static void test_adaptive_general_size(void **state) {
  (void)state;
  ser_tensor *x = ramp(4, SER_DIMS(1, 1, 5, 5)), *y = NULL;
  x->requires_grad = 1;
  assert_int_equal(ser_adaptive_avg_pool2d(&y, x, 3, 2), 0); /* cols: [0,3), [2,5) */
  int hs[3][2] = {{0, 2}, {1, 4}, {3, 5}}, ws[2][2] = {{0, 3}, {2, 5}};
  float want[6];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) {
      double s = 0;
      for (int h = hs[i][0]; h < hs[i][1]; h++)
        for (int w = ws[j][0]; w < ws[j][1]; w++) s += h * 5 + w;
      want[i * 2 + j] = (float)(s / ((hs[i][1] - hs[i][0]) * (ws[j][1] - ws[j][0])));
    }
  assert_close_abs("adaptive 3x2", ser_tensor_data(y), want, 6, 1e-5);
  ser_tensor *g = ser_tensor_full(4, SER_DIMS(1, 1, 3, 2), 1.0f);
  assert_int_equal(ser_backward(y, g, 0), 0);
  /* x[1][2] is in row windows 0 and 1 (sizes 2, 3) and both col windows (3, 3) */
  float d = 1.0f / 6 + 1.0f / 6 + 1.0f / 9 + 1.0f / 9;
  assert_float_equal(ser_tensor_data(x->grad)[1 * 5 + 2], d, 1e-6);
  ser_tensor *all[] = {x, y, g};
  release_all(all, sizeof all / sizeof *all);
}

static void test_errors(void **state) {
  (void)state;
  ser_tensor *x = ser_tensor_zeros(4, SER_DIMS(2, 3, 5, 7)), *l = ser_tensor_zeros(3, SER_DIMS(2, 3, 5)), *y = NULL;
  ser_pool_opts big = {{9, 9}, {0, 0}, {0, 0}}, pad = {{2, 2}, {0, 0}, {2, 2}}, o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool2d(&y, NULL, x, &big), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "window 9x9 does not fit the input 5x7"));
  assert_int_equal(ser_avg_pool2d(&y, x, &pad), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "padding must be in [0, kernel/2]"));
  assert_int_equal(ser_max_pool2d(&y, NULL, l, &o), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "max_pool2d: input must be 4D [B,C,H,W], got [2,3,5]"));
  assert_int_equal(ser_adaptive_avg_pool2d(&y, x, 0, 1), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "output size must be >= 1"));
  assert_null(y);
  ser_tensor_release(x);
  ser_tensor_release(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_maxpool2d_parity),      cmocka_unit_test(test_adaptive2d_parity),
      cmocka_unit_test(test_adaptive1d_parity),     cmocka_unit_test(test_maxpool_padding_stride_1d),
      cmocka_unit_test(test_maxpool_nan_propagates), cmocka_unit_test(test_maxpool_2x2_fast_path),
      cmocka_unit_test(test_avgpool),
      cmocka_unit_test(test_adaptive_general_size), cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
