#include "umap_sgd.h"

#include <float.h>
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

/* Written as two selects so that it compiles to minss/maxss, not branches
 * (gradients hit the clip often, and mispredictions were measurable). */
static inline float clip4(float v) {
  v = v < 4.0f ? v : 4.0f;
  return v > -4.0f ? v : -4.0f;
}

/* x^b for x > 0 in float, branch-free so that a loop over it vectorises
 * (libm's powf is a call per element). log via the atanh series on a mantissa
 * in [sqrt(1/2), sqrt(2)) (truncation 3e-8), exp2 via Taylor on [-1/2, 1/2]
 * (1.2e-7); measured maximum relative error 1e-6. Its latency is longer than
 * powf's, so it is used only where many independent values are needed. */
static inline float fast_pow(float x, float b) {
  x += (float)(x < FLT_MIN) * FLT_MIN;
  union { float f; int32_t i; } u = {x};
  int32_t e = ((u.i >> 23) & 0xff) - 127;
  u.i = (u.i & 0x007fffff) | 0x3f800000;
  float m = u.f;
  int32_t big = m > 1.41421356f;
  m *= 1.0f - 0.5f * (float)big;
  e += big;
  float y = (m - 1.0f) / (m + 1.0f), y2 = y * y;
  float ln = 2.0f * y * (1.0f + y2 * (1.0f / 3 + y2 * (1.0f / 5 + y2 * (1.0f / 7))));
  float z = b * ((float)e + ln * 1.44269504f);
  z += (float)(z < -126.0f) * (-126.0f - z);
  z += (float)(z > 126.0f) * (126.0f - z);
  int32_t zi = (int32_t)(z + 127.5f) - 127; /* floor(z + 1/2): the sum is positive */
  float f = (z - (float)zi) * 0.693147181f;
  float pf = 1.0f + f * (1.0f + f * (0.5f + f * (1.0f / 6 + f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
  union { int32_t i; float f; } v = {.i = (zi + 127) << 23};
  return pf * v.f;
}

/* Negative samples are drawn in groups of up to NEG_BLOCK; their repulsions
 * are all computed at the head's position after the attraction step and then
 * applied together. umap-learn applies them one after another, which makes
 * every sample wait for the previous one's pow() and division (a latency
 * chain that dominated the run time); computed together they are independent
 * and the CPU overlaps them (measured: SGD 0.87 s -> 0.48 s on 1440 x 256).
 * Each step is at most 4 * alpha per coordinate, so the
 * difference is second order in the learning rate and does not show in the
 * quality metrics (tests/c/test_umap.c). */
#define NEG_BLOCK 16

typedef struct {
  float a, b, repel, alpha;
} sgd_consts;

/* A uniform vertex in [0, n): multiply-shift (Lemire) instead of a modulo;
 * its bias, at most n / 2^32, is far below umap-learn's own (a modulo of a
 * 32-bit draw) and irrelevant for sampling. */
static inline uint32_t draw_vertex(ser_rng *rng, uint32_t n) {
  return (uint32_t)(((uint64_t)ser_rng_u32(rng) * n) >> 32);
}

/* Repulsion of cur (vertex j) from the vertices nb[0..cnt), 2-D. Lanes with
 * d^2 = 0 push by 4 (umap-learn's rule) unless the vertex is j itself.
 * Three passes: gather, powf (independent calls that pipeline), then the
 * branch-free update (vectorised). */
static void repel_2d(float *cur, const float *emb, const uint32_t *nb, int cnt, int32_t j,
                     const sgd_consts *c) {
  float dx[NEG_BLOCK], dy[NEG_BLOCK], s[NEG_BLOCK], pw[NEG_BLOCK], push[NEG_BLOCK];
  float cx = cur[0], cy = cur[1], ax = 0, ay = 0;
  for (int q = 0; q < cnt; q++) {
    dx[q] = cx - emb[2 * (int64_t)nb[q]];
    dy[q] = cy - emb[2 * (int64_t)nb[q] + 1];
    float d2 = dx[q] * dx[q] + dy[q] * dy[q];
    push[q] = d2 > 0.0f ? 0.0f : ((int32_t)nb[q] != j ? 4.0f : 0.0f);
    s[q] = d2 > 0.0f ? d2 : 1.0f; /* such lanes get dx = dy = 0, so only push counts */
  }
  int padded = (cnt + 3) & ~3;
  for (int q = cnt; q < padded; q++) s[q] = 1.0f;
#pragma omp simd
  for (int q = 0; q < padded; q++) pw[q] = fast_pow(s[q], c->b);
  for (int q = 0; q < cnt; q++) {
    float gc = c->repel / ((0.001f + s[q]) * (c->a * pw[q] + 1.0f));
    ax += clip4(gc * dx[q]) + push[q];
    ay += clip4(gc * dy[q]) + push[q];
  }
  cur[0] = cx + ax * c->alpha;
  cur[1] = cy + ay * c->alpha;
}

/* The same for any dimension. */
static void repel_nd(float *cur, const float *emb, const uint32_t *nb, int cnt, int32_t j, int dim,
                     const sgd_consts *c) {
  float d2s[NEG_BLOCK], gcs[NEG_BLOCK];
  for (int q = 0; q < cnt; q++) {
    const float *o = emb + (int64_t)nb[q] * dim;
    float s = 0;
    for (int t = 0; t < dim; t++) s += (cur[t] - o[t]) * (cur[t] - o[t]);
    d2s[q] = s;
  }
  for (int q = cnt; q < ((cnt + 3) & ~3); q++) d2s[q] = 1.0f;
#pragma omp simd
  for (int q = 0; q < ((cnt + 3) & ~3); q++) {
    float s = d2s[q] + (float)(d2s[q] <= 0.0f);
    gcs[q] = c->repel / ((0.001f + s) * (c->a * fast_pow(s, c->b) + 1.0f));
  }
  for (int t = 0; t < dim; t++) {
    float acc = 0, x = cur[t];
    for (int q = 0; q < cnt; q++) {
      if (d2s[q] > 0)
        acc += clip4(gcs[q] * (x - emb[(int64_t)nb[q] * dim + t]));
      else if ((int32_t)nb[q] != j)
        acc += 4.0f;
    }
    cur[t] = x + acc * c->alpha;
  }
}

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
    /* with no negative samples the next one is never due */
    per_neg[e] = p->negative_sample_rate > 0 ? p->epochs_per_sample[e] / p->negative_sample_rate : INFINITY;
    next_neg[e] = per_neg[e];
  }
  const int dim = p->dim;
  sgd_consts c = {(float)p->a, (float)p->b, (float)(2.0 * p->gamma * p->b), 0};
  const float attract = (float)(-2.0 * p->a * p->b);
  const uint32_t nv = (uint32_t)p->n_vertices;
  double alpha_d = p->initial_alpha;
  uint32_t nb[NEG_BLOCK];
  for (int ep = 0; ep < p->n_epochs; ep++) {
    c.alpha = (float)alpha_d;
    const double epoch = ep;
    for (int64_t e = 0; e < E; e++) {
      if (next[e] > epoch) continue;
      int32_t j = p->head[e], k = p->tail[e];
      float *cur = emb + (int64_t)j * dim, *oth = emb + (int64_t)k * dim;
      float d2 = 0;
      for (int t = 0; t < dim; t++) d2 += (cur[t] - oth[t]) * (cur[t] - oth[t]);
      float gc = 0;
      if (d2 > 0) {
        float pb = powf(d2, c.b);
        gc = attract * pb / (d2 * (c.a * pb + 1.0f)); /* d^(2(b-1)) = d^(2b) / d^2 */
      }
      for (int t = 0; t < dim; t++) {
        float g = clip4(gc * (cur[t] - oth[t])) * c.alpha;
        cur[t] += g;
        oth[t] -= g;
      }
      next[e] += p->epochs_per_sample[e];
      int64_t n_neg = next_neg[e] <= epoch ? (int64_t)((epoch - next_neg[e]) / per_neg[e]) : 0;
      next_neg[e] += (double)n_neg * per_neg[e];
      for (int64_t q0 = 0; q0 < n_neg; q0 += NEG_BLOCK) {
        int cnt = n_neg - q0 < NEG_BLOCK ? (int)(n_neg - q0) : NEG_BLOCK;
        for (int q = 0; q < cnt; q++) nb[q] = draw_vertex(rng, nv);
        if (dim == 2)
          repel_2d(cur, emb, nb, cnt, j, &c);
        else
          repel_nd(cur, emb, nb, cnt, j, dim, &c);
      }
    }
    alpha_d = p->initial_alpha * (1.0 - (double)ep / (double)p->n_epochs);
  }
  ser_free(next, bytes);
  ser_free(next_neg, bytes);
  ser_free(per_neg, bytes);
  return 0;
}
