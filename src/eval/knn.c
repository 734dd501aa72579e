#include "knn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"

extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

int ser_knn_threads(int64_t n, int64_t d) {
  return (double)n * (double)n * (double)d < 1e9 ? 1 : ser_num_threads();
}

int ser_knn_blas_limit(int nt) {
  int previous = openblas_get_num_threads();
  if (nt < previous) openblas_set_num_threads(nt);
  return previous;
}

void ser_knn_blas_restore(int previous) {
  if (openblas_get_num_threads() != previous) openblas_set_num_threads(previous);
}

/* Rows per GEMM block: the block's distance rows are B x n floats; keep that
 * near 16 MB so large n does not need a huge scratch buffer. */
static int64_t block_rows(int64_t n) {
  int64_t b = ((int64_t)1 << 22) / (n > 0 ? n : 1);
  if (b > 256) b = 256;
  if (b < 8) b = 8;
  return b;
}

/* Keeps the k smallest (d2, j) pairs of one row in ascending order; ties go to
 * the smaller index so the result is independent of scan order. */
static inline void topk_insert(float *kd, int32_t *ki, int64_t k, int64_t *len, float d2, int32_t j) {
  int64_t m = *len;
  if (m == k && (d2 > kd[m - 1] || (d2 == kd[m - 1] && j > ki[m - 1]))) return;
  int64_t p = m < k ? m : k - 1;
  while (p > 0 && (kd[p - 1] > d2 || (kd[p - 1] == d2 && ki[p - 1] > j))) {
    kd[p] = kd[p - 1];
    ki[p] = ki[p - 1];
    p--;
  }
  kd[p] = d2;
  ki[p] = j;
  if (m < k) *len = m + 1;
}

static double exact_dist(const float *a, const float *b, int64_t d) {
  double s = 0;
  for (int64_t t = 0; t < d; t++) {
    double u = (double)a[t] - (double)b[t];
    s += u * u;
  }
  return sqrt(s);
}

int ser_knn_exact(int32_t *idx, float *dist, const float *X, int64_t n, int64_t d, int64_t k,
                  int include_self) {
  if (n < 1 || d < 1)
    return ser_error(SER_EINVAL, "knn: data must be [n, d] with n, d >= 1, got [%lld,%lld]",
                     (long long)n, (long long)d);
  if (n > INT32_MAX)
    return ser_error(SER_EINVAL, "knn: %lld points is more than the supported %d", (long long)n,
                     INT32_MAX);
  int64_t kmax = include_self ? n : n - 1;
  if (k < 1 || k > kmax)
    return ser_error(SER_EINVAL, "knn: k = %lld neighbours %s; expected 1..%lld for %lld points",
                     (long long)k, include_self ? "(self included)" : "(self excluded)",
                     (long long)kmax, (long long)n);

  int64_t B = block_rows(n);
  size_t xc_bytes = (size_t)n * d * sizeof(float), sq_bytes = (size_t)n * sizeof(float);
  size_t g_bytes = (size_t)B * n * sizeof(float);
  size_t tk_bytes = (size_t)B * k * (sizeof(float) + sizeof(int32_t)); /* per-row top-k: distances, indices */
  float *Xc = ser_alloc(xc_bytes), *sq = ser_alloc(sq_bytes), *G = ser_alloc(g_bytes);
  void *tk = ser_alloc(tk_bytes);
  size_t mean_bytes = (size_t)d * sizeof(double);
  double *mean = ser_alloc(mean_bytes);
  int rc = 0;
  if (!Xc || !sq || !G || !tk || !mean) {
    rc = ser_error_prefix(SER_ENOMEM, "knn of %lld points", (long long)n);
    goto done;
  }

  /* Centering does not change distances but keeps the norms small, which
   * limits the cancellation of the ||x||^2 + ||y||^2 - 2 x.y expansion. */
  memset(mean, 0, mean_bytes);
  for (int64_t i = 0; i < n; i++)
    for (int64_t t = 0; t < d; t++) mean[t] += X[i * d + t];
  for (int64_t t = 0; t < d; t++) mean[t] /= (double)n;
  for (int64_t i = 0; i < n; i++) {
    double s = 0;
    for (int64_t t = 0; t < d; t++) {
      float v = (float)(X[i * d + t] - mean[t]);
      Xc[i * d + t] = v;
      s += (double)v * v;
    }
    sq[i] = (float)s;
  }

  int nt = ser_knn_threads(n, d), blas_prev = ser_knn_blas_limit(nt);
  float *kd_all = (float *)tk;
  int32_t *ki_all = (int32_t *)((char *)tk + (size_t)B * k * sizeof(float));
  for (int64_t r0 = 0; r0 < n; r0 += B) {
    int64_t rows = n - r0 < B ? n - r0 : B;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)d, -2.0f,
                Xc + r0 * d, (int)d, Xc, (int)d, 0.0f, G, (int)n);
    /* dynamic: on a shared machine a descheduled thread's rows are taken over
     * instead of being waited for; each row's result does not depend on who computes it */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
    for (int64_t r = 0; r < rows; r++) {
      int64_t i = r0 + r;
      const float *g = G + r * n;
      float *kd = kd_all + r * k;
      int32_t *ki = ki_all + r * k;
      int64_t len = 0;
      float si = sq[i];
      if (include_self) topk_insert(kd, ki, k, &len, -1.0f, (int32_t)i);
      for (int64_t j = 0; j < n; j++) {
        if (j == i) continue;
        float d2 = g[j] + si + sq[j];
        if (d2 < 0) d2 = 0;
        topk_insert(kd, ki, k, &len, d2, (int32_t)j);
      }
      /* Exact distances of the chosen ones, then re-sort among them. */
      for (int64_t a = 0; a < k; a++)
        kd[a] = ki[a] == i ? -1.0f : (float)exact_dist(X + i * d, X + (int64_t)ki[a] * d, d);
      for (int64_t a = 1; a < k; a++) {
        float v = kd[a];
        int32_t w = ki[a];
        int64_t p = a;
        while (p > 0 && (kd[p - 1] > v || (kd[p - 1] == v && ki[p - 1] > w))) {
          kd[p] = kd[p - 1];
          ki[p] = ki[p - 1];
          p--;
        }
        kd[p] = v;
        ki[p] = w;
      }
      for (int64_t a = 0; a < k; a++) {
        idx[i * k + a] = ki[a];
        if (dist) dist[i * k + a] = kd[a] < 0 ? 0.0f : kd[a];
      }
    }
  }

  ser_knn_blas_restore(blas_prev);

done:
  ser_free(Xc, xc_bytes);
  ser_free(sq, sq_bytes);
  ser_free(G, g_bytes);
  ser_free(tk, tk_bytes);
  ser_free(mean, mean_bytes);
  return rc;
}

void ser_knn_sqdist_block_f64(double *out, const double *Xd, const double *sq, int64_t n, int64_t d,
                              int64_t r0, int64_t rows) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)d, -2.0,
              Xd + r0 * d, (int)d, Xd, (int)d, 0.0, out, (int)n);
  for (int64_t r = 0; r < rows; r++) {
    double *o = out + r * n;
    double si = sq[r0 + r];
    for (int64_t j = 0; j < n; j++) {
      double v = o[j] + si + sq[j];
      o[j] = v < 0 ? 0 : v;
    }
    o[r0 + r] = 0;
  }
}
