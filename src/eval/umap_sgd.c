#include "umap_sgd.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cpu.h"
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
 * (libm's powf is one call per element; it was a third of the whole run time).
 * log via the atanh series on a mantissa in [sqrt(1/2), sqrt(2)) (truncation
 * 3e-8), exp2 via Taylor on [-1/2, 1/2] (1.2e-7); the float rounding of
 * b log2(x) dominates: maximum relative error 2.6e-6 for b <= 1.9 over
 * [1e-6, 1e6] (tests/c/test_umap.c). Its latency is longer than powf's, so it serves only the batched
 * repulsions below, where many independent values are needed at once. */
static inline float fast_pow(float x, float b) {
  /* Selects are written as arithmetic on 0/1 so that GCC's if-conversion is not needed. */
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

float ser_umap_fast_pow(float x, float b) { return fast_pow(x, b); }

/* Repulsion coefficients 2 gamma b / ((0.001 + d^2)(1 + a d^(2b))) of n lanes
 * (d^2 = 0 lanes get a finite dummy; the caller ignores them). Compiled for
 * AVX2+FMA and for the x86-64-v2 baseline, chosen at run time. */
#define REPEL_COEF_BODY                                                              \
  _Pragma("omp simd") for (int q = 0; q < n; q++) {                                 \
    float s = d2[q] + (float)(d2[q] <= 0.0f);                                       \
    gc[q] = repel / ((0.001f + s) * (a * fast_pow(s, b) + 1.0f));                   \
  }
__attribute__((target("avx2,fma"))) static void repel_coef_avx2(float *gc, const float *d2, int n, float a,
                                                                float b, float repel) {
  REPEL_COEF_BODY
}
static void repel_coef_base(float *gc, const float *d2, int n, float a, float b, float repel) {
  REPEL_COEF_BODY
}

/* The 2-D case in one pass: from the differences dx, dy (head - other) to the
 * clipped gradient gx, gy; a lane with d^2 = 0 pushes by 4 in both coordinates
 * (umap-learn's rule) when other[q] is not the head itself (notself[q] = 1). */
#define REPEL_2D_BODY                                                                \
  _Pragma("omp simd") for (int q = 0; q < n; q++) {                                 \
    float d2 = dx[q] * dx[q] + dy[q] * dy[q];                                       \
    float pos = (float)(d2 > 0.0f), s = d2 + (1.0f - pos);                          \
    float gc = repel / ((0.001f + s) * (a * fast_pow(s, b) + 1.0f));                \
    float push = (1.0f - pos) * notself[q] * 4.0f;                                  \
    gx[q] = pos * clip4(gc * dx[q]) + push;                                         \
    gy[q] = pos * clip4(gc * dy[q]) + push;                                         \
  }
__attribute__((target("avx2,fma"))) static void repel_2d_avx2(float *gx, float *gy, const float *dx,
                                                              const float *dy, const float *notself, int n,
                                                              float a, float b, float repel) {
  REPEL_2D_BODY
}
static void repel_2d_base(float *gx, float *gy, const float *dx, const float *dy, const float *notself, int n,
                          float a, float b, float repel) {
  REPEL_2D_BODY
}

/* Negative samples are buffered over up to GROUP_EDGES consecutive sampled
 * edges (after each edge's attraction step), then their repulsions are all
 * computed from the current positions and applied together, lane by lane.
 * umap-learn applies each one immediately, so every sample waits for the
 * previous one's pow() and division; batched they are independent and
 * vectorise (SGD 0.87 s -> about 0.3 s on 1440 x 256, measured). Each step is
 * at most 4 * alpha per coordinate, so the change is second order in the
 * learning rate and does not show in the quality metrics (tests/c/test_umap.c). */
#define GROUP_EDGES 16
#define GROUP_LANES 128

typedef struct {
  int n;                            /* lanes in use */
  int32_t head[GROUP_LANES];
  uint32_t other[GROUP_LANES];
  float d2[GROUP_LANES], gc[GROUP_LANES];
  float dx[GROUP_LANES], dy[GROUP_LANES], notself[GROUP_LANES], gx[GROUP_LANES], gy[GROUP_LANES];
  float *grad;                      /* [GROUP_LANES, dim] */
} neg_batch;

/* A uniform vertex in [0, n): multiply-shift (Lemire) instead of a modulo;
 * its bias, at most n / 2^32, is far below umap-learn's own (a modulo of a
 * 32-bit draw) and irrelevant for sampling. */
static inline uint32_t draw_vertex(ser_rng *rng, uint32_t n) {
  return (uint32_t)(((uint64_t)ser_rng_u32(rng) * n) >> 32);
}

typedef struct {
  float a, b, repel, alpha;
  int dim, avx2;
} sgd_consts;

static void flush_2d(neg_batch *nb, float *emb, const sgd_consts *c) {
  const int n = nb->n;
  for (int q = 0; q < n; q++) {
    int64_t h = nb->head[q], o = nb->other[q];
    nb->dx[q] = emb[2 * h] - emb[2 * o];
    nb->dy[q] = emb[2 * h + 1] - emb[2 * o + 1];
    nb->notself[q] = (float)(h != o);
  }
  if (c->avx2)
    repel_2d_avx2(nb->gx, nb->gy, nb->dx, nb->dy, nb->notself, n, c->a, c->b, c->repel);
  else
    repel_2d_base(nb->gx, nb->gy, nb->dx, nb->dy, nb->notself, n, c->a, c->b, c->repel);
  for (int q = 0; q < n; q++) {
    int64_t h = nb->head[q];
    emb[2 * h] += nb->gx[q] * c->alpha;
    emb[2 * h + 1] += nb->gy[q] * c->alpha;
  }
  nb->n = 0;
}

static void flush(neg_batch *nb, float *emb, const sgd_consts *c) {
  const int n = nb->n, dim = c->dim;
  if (n == 0) return;
  if (dim == 2) {
    flush_2d(nb, emb, c);
    return;
  }
  /* 1. distances, 2. coefficients, 3. gradients (positions are only read),
   * 4. updates in lane order: deterministic whatever repeats among heads. */
  for (int q = 0; q < n; q++) {
    const float *h = emb + (int64_t)nb->head[q] * dim, *o = emb + (int64_t)nb->other[q] * dim;
    float s = 0;
    for (int t = 0; t < dim; t++) s += (h[t] - o[t]) * (h[t] - o[t]);
    nb->d2[q] = s;
  }
  if (c->avx2)
    repel_coef_avx2(nb->gc, nb->d2, n, c->a, c->b, c->repel);
  else
    repel_coef_base(nb->gc, nb->d2, n, c->a, c->b, c->repel);
  for (int q = 0; q < n; q++) {
    const float *h = emb + (int64_t)nb->head[q] * dim, *o = emb + (int64_t)nb->other[q] * dim;
    float *g = nb->grad + (int64_t)q * dim;
    if (nb->d2[q] > 0) {
      for (int t = 0; t < dim; t++) g[t] = clip4(nb->gc[q] * (h[t] - o[t]));
    } else { /* a coincident other vertex: umap-learn pushes by 4; the head itself: nothing */
      float push = (int32_t)nb->other[q] != nb->head[q] ? 4.0f : 0.0f;
      for (int t = 0; t < dim; t++) g[t] = push;
    }
  }
  for (int q = 0; q < n; q++) {
    float *h = emb + (int64_t)nb->head[q] * dim;
    const float *g = nb->grad + (int64_t)q * dim;
    for (int t = 0; t < dim; t++) h[t] += g[t] * c->alpha;
  }
  nb->n = 0;
}

int ser_umap_optimize(float *emb, const ser_umap_sgd *p, ser_rng *rng) {
  int64_t E = p->n_edges;
  const int dim = p->dim;
  size_t bytes = (size_t)(E ? E : 1) * sizeof(double), g_bytes = (size_t)GROUP_LANES * dim * sizeof(float);
  double *next = ser_alloc(bytes), *next_neg = ser_alloc(bytes), *per_neg = ser_alloc(bytes);
  neg_batch *nb = ser_alloc(sizeof *nb);
  float *grad = ser_alloc(g_bytes);
  int rc = 0;
  if (!next || !next_neg || !per_neg || !nb || !grad) {
    rc = ser_error_prefix(SER_ENOMEM, "umap: layout optimisation of %lld edges", (long long)E);
    goto done;
  }
  nb->n = 0;
  nb->grad = grad;
  for (int64_t e = 0; e < E; e++) {
    next[e] = p->epochs_per_sample[e];
    /* with no negative samples the next one is never due */
    per_neg[e] = p->negative_sample_rate > 0 ? p->epochs_per_sample[e] / p->negative_sample_rate : INFINITY;
    next_neg[e] = per_neg[e];
  }
  sgd_consts c = {(float)p->a, (float)p->b, (float)(2.0 * p->gamma * p->b), 0, dim,
                  ser_cpu_has(SER_CPU_AVX2 | SER_CPU_FMA)};
  const float attract = (float)(-2.0 * p->a * p->b);
  const uint32_t nv = (uint32_t)p->n_vertices;
  double alpha_d = p->initial_alpha;
  for (int ep = 0; ep < p->n_epochs; ep++) {
    c.alpha = (float)alpha_d;
    const double epoch = ep;
    int edges_in_batch = 0;
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
      for (int64_t q = 0; q < n_neg; q++) {
        if (nb->n == GROUP_LANES) flush(nb, emb, &c);
        nb->head[nb->n] = j;
        nb->other[nb->n] = draw_vertex(rng, nv);
        nb->n++;
      }
      if (++edges_in_batch == GROUP_EDGES) {
        flush(nb, emb, &c);
        edges_in_batch = 0;
      }
    }
    flush(nb, emb, &c); /* before the learning rate changes */
    alpha_d = p->initial_alpha * (1.0 - (double)ep / (double)p->n_epochs);
  }
done:
  ser_free(next, bytes);
  ser_free(next_neg, bytes);
  ser_free(per_neg, bytes);
  ser_free(nb, sizeof *nb);
  ser_free(grad, g_bytes);
  return rc;
}
