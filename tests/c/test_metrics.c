/* Metrics in C: the confusion matrix by hand, trustworthiness against
 * scikit-learn 1.2 values and against a naive implementation of its
 * definition (full sort of every distance row), kNN recall, and errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/metrics.h"
#include "lib/fixture.h"

static void test_confusion_by_hand(void **state) {
  (void)state;
  const int32_t pred[7] = {0, 1, 2, 2, 1, 0, 0}, target[7] = {0, 1, 2, 1, 1, 0, 2};
  int64_t conf[16];
  assert_int_equal(ser_metrics_confusion(conf, pred, target, 7, 3), 0);
  const int64_t want[9] = {2, 0, 0,  /* true 0: both predicted 0 */
                           0, 2, 1,  /* true 1: 1, 1, 2 */
                           1, 0, 1}; /* true 2: 2, 0 */
  assert_memory_equal(conf, want, sizeof want);
  memset(conf, 0xff, sizeof conf);
  assert_int_equal(ser_metrics_confusion(conf, pred, target, 0, 4), 0); /* no samples: all zero */
  for (int i = 0; i < 16; i++) assert_int_equal(conf[i], 0);
}

static void test_confusion_errors(void **state) {
  (void)state;
  const int32_t pred[3] = {0, 3, 1}, target[3] = {0, 1, -1};
  int64_t conf[9];
  assert_int_equal(ser_metrics_confusion(conf, pred, target, 3, 3), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "prediction 1 is class 3; expected 0..2"));
  assert_int_equal(ser_metrics_confusion(conf, target, target, 3, 3), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "class -1"));
  assert_int_equal(ser_metrics_confusion(conf, pred, target, 3, 0), SER_EINVAL);
}

/* X: 10 points in 2-D, Y: the same points on a line in a shuffled order; all
 * pairwise distances distinct, so no tie rule is involved. Expected values
 * from sklearn.manifold.trustworthiness 1.2.1 (euclidean). */
static void test_trustworthiness_matches_sklearn(void **state) {
  (void)state;
  const float X[20] = {0.1f, 0.3f, 1.2f, 0.05f, 2.3f, 1.1f, 4.05f, 0.2f, 0.15f, 3.3f,
                       5.2f, 4.9f, 3.1f, 2.75f, 1.05f, 4.4f, 2.6f, 3.9f, 4.43f, 2.21f};
  const float Y[10] = {0, 3.17f, 1.31f, 7.73f, 2.29f, 6.41f, 5.13f, 4.07f, 8.59f, 9.83f};
  const double want[4] = {0.475, 0.5384615384615384, 0.6599999999999999, 0.6928571428571428};
  for (int k = 1; k <= 4; k++) {
    double t;
    assert_int_equal(ser_metrics_trustworthiness(&t, X, Y, 10, 2, 1, k), 0);
    printf("k %d: %.15f (sklearn %.15f)\n", k, t, want[k - 1]);
    assert_float_equal(t, want[k - 1], 1e-12);
  }
}

/* The definition, written out: ranks from a full sort of each distance row. */
static double naive_trustworthiness(const float *X, const float *Y, int n, int dx, int dy, int k) {
  double *dX = malloc(sizeof(double) * n), *dY = malloc(sizeof(double) * n);
  int *order = malloc(sizeof(int) * n), *rank = malloc(sizeof(int) * n);
  double t = 0;
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) {
      double a = 0, b = 0;
      for (int c = 0; c < dx; c++) a += ((double)X[i * dx + c] - X[j * dx + c]) * ((double)X[i * dx + c] - X[j * dx + c]);
      for (int c = 0; c < dy; c++) b += ((double)Y[i * dy + c] - Y[j * dy + c]) * ((double)Y[i * dy + c] - Y[j * dy + c]);
      dX[j] = j == i ? INFINITY : a;
      dY[j] = j == i ? INFINITY : b;
      order[j] = j;
    }
    /* insertion sort by dX (stable: ties keep index order) */
    for (int a = 1; a < n; a++) {
      int v = order[a], p = a;
      while (p > 0 && dX[order[p - 1]] > dX[v]) {
        order[p] = order[p - 1];
        p--;
      }
      order[p] = v;
    }
    for (int a = 0; a < n; a++) rank[order[a]] = a + 1;
    /* the k nearest in Y, same tie rule */
    for (int a = 0; a < n; a++) order[a] = a;
    for (int a = 1; a < n; a++) {
      int v = order[a], p = a;
      while (p > 0 && dY[order[p - 1]] > dY[v]) {
        order[p] = order[p - 1];
        p--;
      }
      order[p] = v;
    }
    for (int a = 0; a < k; a++)
      if (rank[order[a]] > k) t += rank[order[a]] - k;
  }
  free(dX);
  free(dY);
  free(order);
  free(rank);
  return 1.0 - t * 2.0 / ((double)n * k * (2.0 * n - 3.0 * k - 1.0));
}

static void test_trustworthiness_matches_definition(void **state) {
  (void)state;
  const int n = 120, dx = 9, dy = 2;
  ser_rng r;
  ser_rng_seed(&r, 8);
  float *X = malloc(sizeof(float) * n * dx), *Y = malloc(sizeof(float) * n * dy);
  for (int i = 0; i < n * dx; i++) X[i] = ser_rng_normal(&r);
  /* Y: a noisy projection, so the value is neither 1 nor random */
  for (int i = 0; i < n; i++) {
    Y[i * 2] = X[i * dx] + 0.3f * ser_rng_normal(&r);
    Y[i * 2 + 1] = X[i * dx + 1] + 0.3f * ser_rng_normal(&r);
  }
  const int ks[3] = {1, 5, 15};
  for (int a = 0; a < 3; a++) {
    double t;
    assert_int_equal(ser_metrics_trustworthiness(&t, X, Y, n, dx, dy, ks[a]), 0);
    double want = naive_trustworthiness(X, Y, n, dx, dy, ks[a]);
    printf("k %d: %.12f (naive %.12f)\n", ks[a], t, want);
    assert_float_equal(t, want, 1e-12);
    assert_true(t > 0.55 && t < 0.99);
  }
  free(X);
  free(Y);
}

static void test_trustworthiness_limits(void **state) {
  (void)state;
  const int n = 50, d = 4;
  ser_rng r;
  ser_rng_seed(&r, 4);
  float *X = malloc(sizeof(float) * n * d), *Z = malloc(sizeof(float) * n * d);
  for (int i = 0; i < n * d; i++) X[i] = ser_rng_normal(&r);
  for (int i = 0; i < n * d; i++) Z[i] = 3.0f * X[i] + 1.0f; /* similar: same neighbourhoods */
  double t, rec;
  assert_int_equal(ser_metrics_trustworthiness(&t, X, Z, n, d, d, 5), 0);
  assert_float_equal(t, 1.0, 1e-12);
  assert_int_equal(ser_metrics_knn_recall(&rec, X, Z, n, d, d, 5), 0);
  assert_float_equal(rec, 1.0, 1e-12);
  /* a layout unrelated to X scores near the random level (about 0.5) */
  for (int i = 0; i < n * 2; i++) Z[i] = ser_rng_normal(&r);
  assert_int_equal(ser_metrics_trustworthiness(&t, X, Z, n, d, 2, 5), 0);
  assert_true(t > 0.3 && t < 0.7);
  free(X);
  free(Z);
}

static void test_knn_recall_by_hand(void **state) {
  (void)state;
  /* X on a line 0,1,2,3,4,5: nearest neighbours (k = 1): 1,0|2 -> by index: 0->1, 1->0, 2->1, 3->2, 4->3, 5->4.
   * Y swaps the positions of points 4 and 5: 0->1, 1->0, 2->1, 3->2, 4->5, 5->3 (Y: 0,1,2,3,5,4). */
  const float X[6] = {0, 1, 2, 3, 4, 5}, Y[6] = {0, 1, 2, 3, 5, 4};
  double rec;
  assert_int_equal(ser_metrics_knn_recall(&rec, X, Y, 6, 1, 1, 1), 0);
  assert_float_equal(rec, 4.0 / 6.0, 1e-12);
}

static void test_metric_errors(void **state) {
  (void)state;
  float X[20], Y[10];
  for (int i = 0; i < 20; i++) X[i] = (float)i;
  for (int i = 0; i < 10; i++) Y[i] = (float)(i % 3);
  double t;
  assert_int_equal(ser_metrics_trustworthiness(&t, X, Y, 10, 2, 1, 5), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "k = 5 must be in 1..4 (less than n / 2 for n = 10)"));
  assert_int_equal(ser_metrics_trustworthiness(&t, X, Y, 10, 2, 1, 0), SER_EINVAL);
  assert_int_equal(ser_metrics_knn_recall(&t, X, Y, 10, 2, 1, 10), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "k = 10 must be in 1..9"));
  Y[3] = INFINITY;
  assert_int_equal(ser_metrics_trustworthiness(&t, X, Y, 10, 2, 1, 2), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "Y has a non-finite value inf at [3,0]"));
  assert_int_equal(ser_metrics_knn_recall(&t, X, Y, 1, 2, 1, 1), SER_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_confusion_by_hand),
      cmocka_unit_test(test_confusion_errors),
      cmocka_unit_test(test_trustworthiness_matches_sklearn),
      cmocka_unit_test(test_trustworthiness_matches_definition),
      cmocka_unit_test(test_trustworthiness_limits),
      cmocka_unit_test(test_knn_recall_by_hand),
      cmocka_unit_test(test_metric_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
