#include "metrics.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "eval/knn.h"

int ser_metrics_confusion(int64_t *conf, const int32_t *pred, const int32_t *target, int64_t n,
                          int n_classes) {
  if (n_classes < 1)
    return ser_error(SER_EINVAL, "confusion: n_classes must be >= 1, got %d", n_classes);
  if (n < 0) return ser_error(SER_EINVAL, "confusion: negative sample count %lld", (long long)n);
  for (int64_t i = 0; i < n; i++) {
    if (pred[i] < 0 || pred[i] >= n_classes)
      return ser_error(SER_EINVAL, "confusion: prediction %lld is class %d; expected 0..%d",
                       (long long)i, pred[i], n_classes - 1);
    if (target[i] < 0 || target[i] >= n_classes)
      return ser_error(SER_EINVAL, "confusion: target %lld is class %d; expected 0..%d",
                       (long long)i, target[i], n_classes - 1);
  }
  memset(conf, 0, (size_t)n_classes * n_classes * sizeof(int64_t));
  for (int64_t i = 0; i < n; i++) conf[(int64_t)target[i] * n_classes + pred[i]]++;
  return 0;
}

static int check_pair(const char *fname, const float *X, const float *Y, int64_t n, int64_t dx,
                      int64_t dy) {
  if (n < 2 || dx < 1 || dy < 1)
    return ser_error(SER_EINVAL, "%s: need X [n, dx] and Y [n, dy] with n >= 2, got n %lld, dx %lld, dy %lld",
                     fname, (long long)n, (long long)dx, (long long)dy);
  for (int64_t i = 0; i < n * dx; i++)
    if (!isfinite(X[i]))
      return ser_error(SER_EINVAL, "%s: X has a non-finite value %g at [%lld,%lld]", fname,
                       (double)X[i], (long long)(i / dx), (long long)(i % dx));
  for (int64_t i = 0; i < n * dy; i++)
    if (!isfinite(Y[i]))
      return ser_error(SER_EINVAL, "%s: Y has a non-finite value %g at [%lld,%lld]", fname,
                       (double)Y[i], (long long)(i / dy), (long long)(i % dy));
  return 0;
}

int ser_metrics_trustworthiness(double *out, const float *X, const float *Y, int64_t n, int64_t dx,
                                int64_t dy, int64_t k) {
  int rc = check_pair("trustworthiness", X, Y, n, dx, dy);
  if (rc) return rc;
  if (k < 1 || 2 * k >= n)
    return ser_error(SER_EINVAL, "trustworthiness: k = %lld must be in 1..%lld (less than n / 2 for n = %lld)",
                     (long long)k, (long long)((n - 1) / 2), (long long)n);
  /* rows per block: about 16 MB of distances, at most 256 rows */
  int64_t B = ((int64_t)1 << 21) / n;
  B = B > 256 ? 256 : (B < 8 ? 8 : B);
  size_t nn_bytes = (size_t)n * k * sizeof(int32_t), xd_bytes = (size_t)n * dx * sizeof(double);
  size_t sq_bytes = (size_t)n * sizeof(double), blk_bytes = (size_t)B * n * sizeof(double);
  size_t pen_bytes = (size_t)n * sizeof(double);
  int32_t *nnY = ser_alloc(nn_bytes);
  double *Xd = ser_alloc(xd_bytes), *sq = ser_alloc(sq_bytes), *blk = ser_alloc(blk_bytes);
  double *pen = ser_alloc(pen_bytes);
  if (!nnY || !Xd || !sq || !blk || !pen) {
    rc = ser_error_prefix(SER_ENOMEM, "trustworthiness of %lld points", (long long)n);
    goto done;
  }
  rc = ser_knn_exact(nnY, NULL, Y, n, dy, k, 0);
  if (rc) {
    ser_error_prefix(rc, "trustworthiness");
    goto done;
  }
  /* Centred double copy: exact enough that ranks do not depend on rounding. */
  for (int64_t t = 0; t < dx; t++) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m += X[i * dx + t];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++) Xd[i * dx + t] = X[i * dx + t] - m;
  }
  for (int64_t i = 0; i < n; i++) {
    double s = 0;
    for (int64_t t = 0; t < dx; t++) s += Xd[i * dx + t] * Xd[i * dx + t];
    sq[i] = s;
  }
  /* per pair: dx multiply-adds for the distance, about 2k comparisons for the ranks */
  int nt = ser_knn_threads(n, dx + 2 * k), blas_prev = ser_knn_blas_limit(nt);
  for (int64_t r0 = 0; r0 < n; r0 += B) {
    int64_t rows = n - r0 < B ? n - r0 : B;
    ser_knn_sqdist_block_f64(blk, Xd, sq, n, dx, r0, rows);
    /* dynamic: see knn.c; each row's penalty lands in its own slot, summed in order */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
    for (int64_t r = 0; r < rows; r++) {
      int64_t i = r0 + r;
      const double *di = blk + r * n;
      double p = 0;
      for (int64_t a = 0; a < k; a++) {
        int64_t j = nnY[i * k + a];
        double dj = di[j];
        /* rank = 1 + points other than i strictly closer + equally close ones
         * with a smaller index; two branch-free counts that vectorise */
        int64_t less = 0, tie = 0;
#pragma omp simd reduction(+ : less)
        for (int64_t l = 0; l < n; l++) less += di[l] < dj;
#pragma omp simd reduction(+ : tie)
        for (int64_t l = 0; l < j; l++) tie += di[l] == dj;
        less -= di[i] < dj; /* i itself (distance 0) */
        tie -= (i < j) & (di[i] == dj);
        int64_t rank = 1 + less + tie;
        if (rank > k) p += (double)(rank - k);
      }
      pen[i] = p;
    }
  }
  ser_knn_blas_restore(blas_prev);
  double t = 0;
  for (int64_t i = 0; i < n; i++) t += pen[i];
  *out = 1.0 - t * (2.0 / ((double)n * k * (2.0 * n - 3.0 * k - 1.0)));
done:
  ser_free(nnY, nn_bytes);
  ser_free(Xd, xd_bytes);
  ser_free(sq, sq_bytes);
  ser_free(blk, blk_bytes);
  ser_free(pen, pen_bytes);
  return rc;
}

int ser_metrics_knn_recall(double *out, const float *X, const float *Y, int64_t n, int64_t dx,
                           int64_t dy, int64_t k) {
  int rc = check_pair("knn_recall", X, Y, n, dx, dy);
  if (rc) return rc;
  if (k < 1 || k >= n)
    return ser_error(SER_EINVAL, "knn_recall: k = %lld must be in 1..%lld for n = %lld", (long long)k,
                     (long long)(n - 1), (long long)n);
  size_t nn_bytes = (size_t)n * k * sizeof(int32_t);
  int32_t *a = ser_alloc(nn_bytes), *b = ser_alloc(nn_bytes);
  if (!a || !b) {
    rc = ser_error_prefix(SER_ENOMEM, "knn_recall of %lld points", (long long)n);
    goto done;
  }
  if ((rc = ser_knn_exact(a, NULL, X, n, dx, k, 0)) || (rc = ser_knn_exact(b, NULL, Y, n, dy, k, 0))) {
    ser_error_prefix(rc, "knn_recall");
    goto done;
  }
  int64_t hits = 0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t p = 0; p < k; p++)
      for (int64_t q = 0; q < k; q++) hits += a[i * k + p] == b[i * k + q];
  *out = (double)hits / ((double)n * k);
done:
  ser_free(a, nn_bytes);
  ser_free(b, nn_bytes);
  return rc;
}
