#include "umap_sgd.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

#define AB_POINTS 300

/* Residuals r_i = 1 / (1 + a x_i^(2b)) - y_i and their Jacobian rows. */
static double ab_eval(double a, double b, const double *x, const double *y, double *r, double *ja,
                      double *jb) {
  double ss = 0;
  for (int i = 0; i < AB_POINTS; i++) {
    double p = x[i] > 0 ? pow(x[i], 2 * b) : 0; /* x^(2b) at x = 0 is 0 for b > 0 */
    double den = 1 + a * p, f = 1 / den;
    r[i] = f - y[i];
    ss += r[i] * r[i];
    if (ja) {
      ja[i] = -p / (den * den);
      jb[i] = x[i] > 0 ? -a * p * 2 * log(x[i]) / (den * den) : 0;
    }
  }
  return ss;
}

int ser_umap_find_ab(double *a_out, double *b_out, double spread, double min_dist) {
  if (!(spread > 0) || !isfinite(spread))
    return ser_error(SER_EINVAL, "umap: spread must be > 0, got %g", spread);
  if (!(min_dist >= 0) || min_dist > spread)
    return ser_error(SER_EINVAL, "umap: min_dist must be in [0, spread = %g], got %g", spread, min_dist);
  double x[AB_POINTS], y[AB_POINTS], r[AB_POINTS], ja[AB_POINTS], jb[AB_POINTS];
  for (int i = 0; i < AB_POINTS; i++) {
    x[i] = spread * 3 * (double)i / (AB_POINTS - 1);
    y[i] = x[i] < min_dist ? 1.0 : exp(-(x[i] - min_dist) / spread);
  }
  /* Levenberg-Marquardt with Marquardt's diagonal scaling. */
  double a = 1, b = 1, lambda = 1e-3;
  double ss = ab_eval(a, b, x, y, r, ja, jb);
  for (int it = 0; it < 500; it++) {
    double aa = 0, ab = 0, bb = 0, ga = 0, gb = 0;
    for (int i = 0; i < AB_POINTS; i++) {
      aa += ja[i] * ja[i];
      ab += ja[i] * jb[i];
      bb += jb[i] * jb[i];
      ga += ja[i] * r[i];
      gb += jb[i] * r[i];
    }
    int improved = 0;
    double da = 0, db = 0;
    for (int tries = 0; tries < 50 && !improved; tries++) {
      double m11 = aa * (1 + lambda), m22 = bb * (1 + lambda), det = m11 * m22 - ab * ab;
      if (!(det > 0)) {
        lambda *= 10;
        continue;
      }
      da = -(m22 * ga - ab * gb) / det;
      db = -(m11 * gb - ab * ga) / det;
      double na = a + da, nb = b + db;
      if (nb <= 0 || na <= 0) {
        lambda *= 10;
        continue;
      }
      double nss = ab_eval(na, nb, x, y, r, NULL, NULL);
      if (nss <= ss) {
        a = na;
        b = nb;
        improved = 1;
        lambda = lambda / 10 > 1e-12 ? lambda / 10 : 1e-12;
        double old = ss;
        ss = ab_eval(a, b, x, y, r, ja, jb);
        if (old - ss <= 1e-15 * (old > 1e-30 ? old : 1e-30) + 1e-300 &&
            fabs(da) <= 1e-12 * (fabs(a) + 1e-12) && fabs(db) <= 1e-12 * (fabs(b) + 1e-12))
          goto converged;
      } else {
        lambda *= 10;
      }
    }
    if (!improved || (fabs(da) <= 1e-10 * fabs(a) && fabs(db) <= 1e-10 * fabs(b))) goto converged;
  }
converged:
  if (!isfinite(a) || !isfinite(b) || a <= 0 || b <= 0)
    return ser_error(SER_EINVAL, "umap: could not fit the a/b curve for min_dist %g, spread %g (got a %g, b %g)",
                     min_dist, spread, a, b);
  *a_out = a;
  *b_out = b;
  return 0;
}

static inline float clip4(float v) { return v > 4.0f ? 4.0f : (v < -4.0f ? -4.0f : v); }

int ser_umap_optimize(float *emb, const ser_umap_sgd *p, ser_rng *rng) {
  int64_t E = p->n_edges;
  size_t bytes = (size_t)(E ? E : 1) * sizeof(double);
  double *next = ser_alloc(bytes), *next_neg = ser_alloc(bytes), *per_neg = ser_alloc(bytes);
  if (!next || !next_neg || !per_neg) {
    ser_free(next, bytes);
    ser_free(next_neg, bytes);
    ser_free(per_neg, bytes);
    return ser_error_prefix(SER_ENOMEM, "umap: layout optimisation of %lld edges", (long long)E);
  }
  for (int64_t e = 0; e < E; e++) {
    next[e] = p->epochs_per_sample[e];
    per_neg[e] = p->epochs_per_sample[e] / p->negative_sample_rate;
    next_neg[e] = per_neg[e];
  }
  const int dim = p->dim;
  const float a = (float)p->a, b = (float)p->b, bm1 = (float)(p->b - 1.0);
  const float attract = (float)(-2.0 * p->a * p->b), repel = (float)(2.0 * p->gamma * p->b);
  const uint32_t nv = (uint32_t)p->n_vertices;
  double alpha_d = p->initial_alpha;
  for (int ep = 0; ep < p->n_epochs; ep++) {
    const float alpha = (float)alpha_d;
    const double epoch = ep;
    for (int64_t e = 0; e < E; e++) {
      if (next[e] > epoch) continue;
      int32_t j = p->head[e], k = p->tail[e];
      float *cur = emb + (int64_t)j * dim, *oth = emb + (int64_t)k * dim;
      float d2 = 0;
      for (int t = 0; t < dim; t++) {
        float u = cur[t] - oth[t];
        d2 += u * u;
      }
      float gc = 0;
      if (d2 > 0) {
        float pb = powf(d2, b);
        gc = attract * (pb / d2) / (a * pb + 1.0f);
        (void)bm1;
      }
      for (int t = 0; t < dim; t++) {
        float g = clip4(gc * (cur[t] - oth[t])) * alpha;
        cur[t] += g;
        oth[t] -= g;
      }
      next[e] += p->epochs_per_sample[e];
      int64_t n_neg = (int64_t)((epoch - next_neg[e]) / per_neg[e]);
      for (int64_t q = 0; q < n_neg; q++) {
        uint32_t r = ser_rng_below(rng, nv);
        const float *o = emb + (int64_t)r * dim;
        d2 = 0;
        for (int t = 0; t < dim; t++) {
          float u = cur[t] - o[t];
          d2 += u * u;
        }
        if (d2 > 0) {
          gc = repel / ((0.001f + d2) * (a * powf(d2, b) + 1.0f));
          for (int t = 0; t < dim; t++) cur[t] += clip4(gc * (cur[t] - o[t])) * alpha;
        } else if ((int32_t)r != j) {
          for (int t = 0; t < dim; t++) cur[t] += 4.0f * alpha;
        }
      }
      next_neg[e] += (double)n_neg * per_neg[e];
    }
    alpha_d = p->initial_alpha * (1.0 - (double)ep / (double)p->n_epochs);
  }
  ser_free(next, bytes);
  ser_free(next_neg, bytes);
  ser_free(per_neg, bytes);
  return 0;
}
