/* Classification and embedding metrics (the heavy parts; the tables and the
 * report text are built in lua/ser/metrics.lua).
 *
 * Class ids here are 0-based; the Lua binding converts from 1-based. */
#ifndef SER_EVAL_METRICS_H
#define SER_EVAL_METRICS_H

#include <stdint.h>

/* conf [n_classes, n_classes] (row = true class, column = predicted), counts.
 * Errors: n_classes < 1, a label outside 0..n_classes-1 (message names the
 * position and value). */
int ser_metrics_confusion(int64_t *conf, const int32_t *pred, const int32_t *target, int64_t n,
                          int n_classes);

/* Trustworthiness of the embedding Y [n, dy] of X [n, dx] at k neighbours,
 * scikit-learn's definition (sklearn.manifold.trustworthiness, euclidean):
 *   T(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in NN_Y(i, k)} max(0, r(i, j) - k)
 * where r(i, j) is the rank of j among i's neighbours in X (1 = nearest).
 * Ranks are exact (double-precision distances, ties to the smaller index).
 * Needs 1 <= k < n / 2, as scikit-learn. */
int ser_metrics_trustworthiness(double *out, const float *X, const float *Y, int64_t n, int64_t dx,
                                int64_t dy, int64_t k);

/* Mean over points of |NN_X(i, k) intersect NN_Y(i, k)| / k (self excluded):
 * how many of each point's input neighbours stay neighbours. Needs 1 <= k < n. */
int ser_metrics_knn_recall(double *out, const float *X, const float *Y, int64_t n, int64_t dx,
                           int64_t dy, int64_t k);

#endif
