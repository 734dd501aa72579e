#include "umap_graph.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

/* umap-learn's constants (umap_.py) */
#define SMOOTH_K_TOLERANCE 1e-5
#define MIN_K_DIST_SCALE 1e-3
#define SMOOTH_N_ITER 64

void ser_umap_smooth_knn_dist(double *sigma, double *rho, const float *dist, int64_t n, int64_t k,
                              double local_connectivity, double bandwidth) {
  double target = log2((double)k) * bandwidth;
  double mean_all = 0;
  for (int64_t i = 0; i < n * k; i++) mean_all += dist[i];
  mean_all /= (double)(n * k);

  for (int64_t i = 0; i < n; i++) {
    const float *di = dist + i * k;
    /* rho: distance to the local_connectivity-th non-zero neighbour, interpolated */
    int64_t nz = 0;
    double nzmax = 0;
    for (int64_t j = 0; j < k; j++)
      if (di[j] > 0) {
        nz++;
        if (di[j] > nzmax) nzmax = di[j];
      }
    rho[i] = 0;
    if ((double)nz >= local_connectivity) {
      int64_t index = (int64_t)floor(local_connectivity);
      double interp = local_connectivity - (double)index;
      /* the non-zero distances in order are di[k - nz .. k-1] (rows are ascending) */
      const float *nzd = di + (k - nz);
      if (index > 0) {
        rho[i] = nzd[index - 1];
        if (interp > SMOOTH_K_TOLERANCE && index < nz)
          rho[i] += interp * ((double)nzd[index] - nzd[index - 1]);
      } else {
        rho[i] = interp * nzd[0];
      }
    } else if (nz > 0) {
      rho[i] = nzmax;
    }

    double lo = 0, hi = INFINITY, mid = 1.0;
    for (int it = 0; it < SMOOTH_N_ITER; it++) {
      double psum = 0;
      for (int64_t j = 1; j < k; j++) {
        double dd = di[j] - rho[i];
        psum += dd > 0 ? exp(-(dd / mid)) : 1.0;
      }
      if (fabs(psum - target) < SMOOTH_K_TOLERANCE) break;
      if (psum > target) {
        hi = mid;
        mid = (lo + hi) / 2.0;
      } else {
        lo = mid;
        mid = isinf(hi) ? mid * 2 : (lo + hi) / 2.0;
      }
    }
    sigma[i] = mid;
    double floor_scale = mean_all;
    if (rho[i] > 0) {
      double m = 0;
      for (int64_t j = 0; j < k; j++) m += di[j];
      floor_scale = m / (double)k;
    }
    if (sigma[i] < MIN_K_DIST_SCALE * floor_scale) sigma[i] = MIN_K_DIST_SCALE * floor_scale;
  }
}

void ser_umap_graph_free(ser_umap_graph *g) {
  if (!g) return;
  ser_free(g->rowptr, (size_t)(g->n + 1) * sizeof(int64_t));
  ser_free(g->col, (size_t)(g->nnz ? g->nnz : 1) * sizeof(int32_t));
  ser_free(g->val, (size_t)(g->nnz ? g->nnz : 1) * sizeof(float));
  memset(g, 0, sizeof *g);
}

/* One directed entry with its origin: from A (i -> j) or from A^T. */
typedef struct {
  int32_t col;
  float a, at;
} entry;

int ser_umap_fuzzy_graph(ser_umap_graph *g, const int32_t *idx, const float *dist, int64_t n,
                         int64_t k, double local_connectivity, double set_op_mix_ratio) {
  memset(g, 0, sizeof *g);
  if (n < 1 || k < 1)
    return ser_error(SER_EINVAL, "umap graph: need n >= 1 points and k >= 1 neighbours, got %lld, %lld",
                     (long long)n, (long long)k);
  if (!(set_op_mix_ratio >= 0 && set_op_mix_ratio <= 1))
    return ser_error(SER_EINVAL, "umap graph: set_op_mix_ratio %g is outside [0, 1]", set_op_mix_ratio);

  size_t sr_bytes = (size_t)n * sizeof(double), w_bytes = (size_t)n * k * sizeof(float);
  size_t cnt_bytes = (size_t)(n + 1) * sizeof(int64_t), e_bytes = (size_t)2 * n * k * sizeof(entry);
  double *sigma = ser_alloc(sr_bytes), *rho = ser_alloc(sr_bytes);
  float *w = ser_alloc(w_bytes);
  int64_t *start = ser_calloc(cnt_bytes);
  entry *e = ser_alloc(e_bytes);
  size_t cur_bytes = (size_t)n * sizeof(int64_t);
  int64_t *cur = ser_alloc(cur_bytes); /* fill cursor per row, then kept-entry count per row */
  int rc = 0;
  if (!sigma || !rho || !w || !start || !e || !cur) {
    rc = ser_error_prefix(SER_ENOMEM, "umap graph of %lld points", (long long)n);
    goto done;
  }

  ser_umap_smooth_knn_dist(sigma, rho, dist, n, k, local_connectivity, 1.0);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < k; j++) {
      int64_t c = idx[i * k + j];
      float v;
      if (c == i) {
        v = 0;
      } else if ((double)dist[i * k + j] - rho[i] <= 0 || sigma[i] == 0) {
        v = 1;
      } else {
        v = (float)exp(-(((double)dist[i * k + j] - rho[i]) / sigma[i]));
      }
      w[i * k + j] = v;
    }

  /* Bucket the entries of A and A^T by row (counting sort), then sort each row
   * by column and merge the (at most two) entries of each (row, col). */
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < k; j++) {
      if (w[i * k + j] == 0) continue;
      start[i + 1]++;
      start[idx[i * k + j] + 1]++;
    }
  for (int64_t i = 0; i < n; i++) start[i + 1] += start[i];
  memcpy(cur, start, cur_bytes);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < k; j++) {
      float v = w[i * k + j];
      if (v == 0) continue;
      int32_t c = idx[i * k + j];
      e[cur[i]++] = (entry){c, v, 0};
      e[cur[c]++] = (entry){(int32_t)i, 0, v};
    }

  int64_t nnz = 0;
  for (int64_t i = 0; i < n; i++) {
    entry *r = e + start[i];
    int64_t len = start[i + 1] - start[i];
    for (int64_t a = 1; a < len; a++) { /* rows hold ~2k entries: insertion sort */
      entry x = r[a];
      int64_t p = a;
      while (p > 0 && r[p - 1].col > x.col) {
        r[p] = r[p - 1];
        p--;
      }
      r[p] = x;
    }
    int64_t out = 0;
    for (int64_t a = 0; a < len;) {
      entry m = r[a++];
      while (a < len && r[a].col == m.col) {
        m.a += r[a].a;
        m.at += r[a].at;
        a++;
      }
      double pa = m.a, pt = m.at, prod = pa * pt;
      double v = set_op_mix_ratio * (pa + pt - prod) + (1.0 - set_op_mix_ratio) * prod;
      if (v > 0) r[out++] = (entry){m.col, (float)v, 0};
    }
    cur[i] = out; /* row i now occupies r[0 .. out) */
    nnz += out;
  }

  g->n = n;
  g->nnz = nnz;
  g->rowptr = ser_alloc((size_t)(n + 1) * sizeof(int64_t));
  g->col = ser_alloc((size_t)(nnz ? nnz : 1) * sizeof(int32_t));
  g->val = ser_alloc((size_t)(nnz ? nnz : 1) * sizeof(float));
  if (!g->rowptr || !g->col || !g->val) {
    rc = ser_error_prefix(SER_ENOMEM, "umap graph of %lld points", (long long)n);
    ser_umap_graph_free(g);
    goto done;
  }
  g->rowptr[0] = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t out = cur[i];
    const entry *r = e + start[i];
    for (int64_t a = 0; a < out; a++) {
      g->col[g->rowptr[i] + a] = r[a].col;
      g->val[g->rowptr[i] + a] = r[a].a;
    }
    g->rowptr[i + 1] = g->rowptr[i] + out;
  }

done:
  ser_free(sigma, sr_bytes);
  ser_free(rho, sr_bytes);
  ser_free(w, w_bytes);
  ser_free(start, cnt_bytes);
  ser_free(e, e_bytes);
  ser_free(cur, cur_bytes);
  return rc;
}
