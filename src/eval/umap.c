#include "umap.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "eval/knn.h"
#include "eval/umap_graph.h"
#include "eval/umap_sgd.h"
#include "eval/umap_spectral.h"

void ser_umap_opts_init(ser_umap_opts *o) {
  memset(o, 0, sizeof *o);
  o->n_neighbors = 15;
  o->n_components = 2;
  o->min_dist = 0.1;
  o->spread = 1.0;
  o->n_epochs = 0;
  o->init = SER_UMAP_INIT_SPECTRAL;
  o->seed = 42;
  o->learning_rate = 1.0;
  o->negative_sample_rate = 5;
  o->repulsion_strength = 1.0;
  o->local_connectivity = 1.0;
  o->set_op_mix_ratio = 1.0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int check_opts(const ser_umap_opts *o) {
  if (o->n_neighbors < 2)
    return ser_error(SER_EINVAL, "umap: n_neighbors must be >= 2, got %d", o->n_neighbors);
  if (o->n_components < 1 || o->n_components > 1000)
    return ser_error(SER_EINVAL, "umap: n_components must be in 1..1000, got %d", o->n_components);
  if (o->n_epochs < 0 || o->n_epochs > 100000)
    return ser_error(SER_EINVAL, "umap: n_epochs must be in 0..100000 (0 = automatic), got %d", o->n_epochs);
  if (o->init != SER_UMAP_INIT_SPECTRAL && o->init != SER_UMAP_INIT_RANDOM)
    return ser_error(SER_EINVAL, "umap: unknown init %d; expected spectral or random", o->init);
  if (!(o->learning_rate > 0) || !isfinite(o->learning_rate))
    return ser_error(SER_EINVAL, "umap: learning_rate must be > 0, got %g", o->learning_rate);
  if (o->negative_sample_rate < 0 || o->negative_sample_rate > 1000)
    return ser_error(SER_EINVAL, "umap: negative_sample_rate must be in 0..1000, got %d", o->negative_sample_rate);
  if (!(o->repulsion_strength >= 0) || !isfinite(o->repulsion_strength))
    return ser_error(SER_EINVAL, "umap: repulsion_strength must be >= 0, got %g", o->repulsion_strength);
  if (!(o->local_connectivity >= 0) || !isfinite(o->local_connectivity))
    return ser_error(SER_EINVAL, "umap: local_connectivity must be >= 0, got %g", o->local_connectivity);
  if (!(o->set_op_mix_ratio >= 0 && o->set_op_mix_ratio <= 1))
    return ser_error(SER_EINVAL, "umap: set_op_mix_ratio must be in [0, 1], got %g", o->set_op_mix_ratio);
  if ((o->a != 0 || o->b != 0) && !(o->a > 0 && o->b > 0 && isfinite(o->a) && isfinite(o->b)))
    return ser_error(SER_EINVAL, "umap: a and b must both be > 0 (or both 0 to fit them), got a %g, b %g",
                     o->a, o->b);
  return 0;
}

/* Scales the initial layout as umap-learn's simplicial_set_embedding does:
 * spectral -> max |x| = 10 plus N(0, 1e-4) noise; then every column to [0, 10]. */
static void normalise_layout(float *emb, int64_t n, int dim, int spectral, ser_rng *rng) {
  if (spectral) {
    float mx = 0;
    for (int64_t i = 0; i < n * dim; i++)
      if (fabsf(emb[i]) > mx) mx = fabsf(emb[i]);
    float expansion = mx > 0 ? 10.0f / mx : 1.0f;
    for (int64_t i = 0; i < n * dim; i++) emb[i] = emb[i] * expansion + 1e-4f * ser_rng_normal(rng);
  }
  for (int t = 0; t < dim; t++) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
      lo = fminf(lo, emb[i * dim + t]);
      hi = fmaxf(hi, emb[i * dim + t]);
    }
    float s = hi > lo ? 10.0f / (hi - lo) : 0.0f;
    for (int64_t i = 0; i < n; i++) emb[i * dim + t] = (emb[i * dim + t] - lo) * s;
  }
}

int ser_umap_embed(float *out, const float *X, int64_t n, int64_t d, const ser_umap_opts *opts,
                   ser_umap_info *info) {
  ser_umap_opts def;
  if (!opts) {
    ser_umap_opts_init(&def);
    opts = &def;
  }
  ser_umap_info scratch_info;
  if (!info) info = &scratch_info;
  memset(info, 0, sizeof *info);
  int rc = check_opts(opts);
  if (rc) return rc;
  if (n < 1 || d < 1)
    return ser_error(SER_EINVAL, "umap: data must be [n, d] with n, d >= 1, got [%lld,%lld]",
                     (long long)n, (long long)d);
  if (n > INT32_MAX)
    return ser_error(SER_EINVAL, "umap: %lld points is more than the supported %d", (long long)n, INT32_MAX);
  for (int64_t i = 0; i < n * d; i++)
    if (!isfinite(X[i]))
      return ser_error(SER_EINVAL, "umap: the data has a non-finite value %g at [%lld,%lld]",
                       (double)X[i], (long long)(i / d), (long long)(i % d));
  const int dim = opts->n_components;
  double a = opts->a, b = opts->b;
  if (a == 0 && b == 0) {
    rc = ser_umap_find_ab(&a, &b, opts->spread, opts->min_dist);
    if (rc) return rc;
  }
  info->a = a;
  info->b = b;
  if (n == 1) { /* nothing to lay out (umap-learn returns zeros too) */
    memset(out, 0, (size_t)dim * sizeof(float));
    return 0;
  }
  int64_t k = opts->n_neighbors < n ? opts->n_neighbors : n - 1;
  int n_epochs = opts->n_epochs ? opts->n_epochs : (n <= 10000 ? 500 : 200);
  info->n_neighbors = (int)k;
  info->n_epochs = n_epochs;

  ser_rng rng;
  ser_rng_seed(&rng, opts->seed);
  size_t knn_i_bytes = (size_t)n * k * sizeof(int32_t), knn_d_bytes = (size_t)n * k * sizeof(float);
  int32_t *knn_idx = ser_alloc(knn_i_bytes);
  float *knn_dist = ser_alloc(knn_d_bytes);
  ser_umap_graph g = {0};
  int32_t *head = NULL, *tail = NULL;
  double *eps = NULL;
  size_t e_bytes = 0;
  if (!knn_idx || !knn_dist) {
    rc = ser_error_prefix(SER_ENOMEM, "umap of %lld points", (long long)n);
    goto done;
  }

  double t0 = now();
  rc = ser_knn_exact(knn_idx, knn_dist, X, n, d, k, 1);
  if (rc) goto done;
  double t1 = now();
  rc = ser_umap_fuzzy_graph(&g, knn_idx, knn_dist, n, k, opts->local_connectivity,
                            opts->set_op_mix_ratio);
  if (rc) goto done;

  /* Edges sampled less than once over the whole run are dropped (umap-learn). */
  float wmax = 0;
  for (int64_t e = 0; e < g.nnz; e++) wmax = fmaxf(wmax, g.val[e]);
  float thr = wmax / (float)n_epochs;
  int64_t E = 0;
  for (int64_t e = 0; e < g.nnz; e++) E += g.val[e] >= thr;
  e_bytes = (size_t)(E ? E : 1);
  head = ser_alloc(e_bytes * sizeof(int32_t));
  tail = ser_alloc(e_bytes * sizeof(int32_t));
  eps = ser_alloc(e_bytes * sizeof(double));
  if (!head || !tail || !eps) {
    rc = ser_error_prefix(SER_ENOMEM, "umap of %lld points", (long long)n);
    goto done;
  }
  {
    /* Edges go in "slot-major" order (every vertex's first edge, then every
     * vertex's second, ...) rather than row by row: consecutive updates then
     * move different vertices and the CPU overlaps them, where row order makes
     * each update wait for the previous one on the same vertex (about 1.5x
     * faster; umap-learn's order is arbitrary too, its parallel loop unordered). */
    int64_t maxdeg = 0, m = 0;
    for (int64_t i = 0; i < n; i++)
      if (g.rowptr[i + 1] - g.rowptr[i] > maxdeg) maxdeg = g.rowptr[i + 1] - g.rowptr[i];
    for (int64_t slot = 0; slot < maxdeg; slot++)
      for (int64_t i = 0; i < n; i++) {
        int64_t e = g.rowptr[i] + slot;
        if (e >= g.rowptr[i + 1] || g.val[e] < thr) continue;
        head[m] = (int32_t)i;
        tail[m] = g.col[e];
        /* make_epochs_per_sample: n_epochs / (n_epochs * w / wmax) */
        eps[m] = (double)n_epochs / ((double)n_epochs * ((double)g.val[e] / (double)wmax));
        m++;
      }
  }
  info->n_edges = E;
  double t2 = now();

  if (opts->init == SER_UMAP_INIT_SPECTRAL) {
    /* Only the kept edges shape the initialisation, as in umap-learn. */
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
      int64_t e0 = g.rowptr[i];
      g.rowptr[i] = kept;
      for (int64_t e = e0; e < g.rowptr[i + 1]; e++)
        if (g.val[e] >= thr) {
          g.col[kept] = g.col[e];
          g.val[kept] = g.val[e];
          kept++;
        }
    }
    g.rowptr[n] = kept;
    rc = ser_umap_spectral_layout(out, &g, X, d, dim, &rng, &info->n_random_init,
                                  &info->n_graph_components);
    if (rc) goto done;
  } else {
    for (int64_t i = 0; i < n * dim; i++) out[i] = -10.0f + 20.0f * ser_rng_uniform(&rng);
    info->n_random_init = n;
    info->n_graph_components = -1;
  }
  normalise_layout(out, n, dim, opts->init == SER_UMAP_INIT_SPECTRAL, &rng);
  double t3 = now();

  ser_umap_sgd p = {.n_vertices = n,
                    .n_edges = E,
                    .head = head,
                    .tail = tail,
                    .epochs_per_sample = eps,
                    .n_epochs = n_epochs,
                    .dim = dim,
                    .negative_sample_rate = opts->negative_sample_rate,
                    .a = a,
                    .b = b,
                    .gamma = opts->repulsion_strength,
                    .initial_alpha = opts->learning_rate};
  rc = ser_umap_optimize(out, &p, &rng);
  double t4 = now();
  info->seconds_knn = t1 - t0;
  info->seconds_graph = t2 - t1;
  info->seconds_init = t3 - t2;
  info->seconds_sgd = t4 - t3;

done:
  ser_free(knn_idx, knn_i_bytes);
  ser_free(knn_dist, knn_d_bytes);
  ser_umap_graph_free(&g);
  ser_free(head, e_bytes * sizeof(int32_t));
  ser_free(tail, e_bytes * sizeof(int32_t));
  ser_free(eps, e_bytes * sizeof(double));
  return rc;
}

int ser_umap(ser_tensor **out, ser_tensor *X, const ser_umap_opts *opts, ser_umap_info *info) {
  *out = NULL;
  if (!X || X->ndim != 2)
    return ser_error(SER_EINVAL, "umap: expected a 2-D tensor [n, d], got %s",
                     X ? SER_SHAPE(X) : "nothing");
  int64_t n = X->shape[0], d = X->shape[1];
  int dim = opts ? opts->n_components : 2;
  if (dim < 1) return ser_error(SER_EINVAL, "umap: n_components must be >= 1, got %d", dim);
  ser_tensor *xc = ser_tensor_contiguous_raw(X);
  if (!xc) return ser_error_prefix(SER_ENOMEM, "umap");
  ser_tensor *y = ser_tensor_empty(2, SER_DIMS(n, dim));
  if (!y) {
    ser_tensor_release(xc);
    return ser_error_prefix(SER_ENOMEM, "umap");
  }
  int rc = ser_umap_embed(ser_tensor_data(y), ser_tensor_data(xc), n, d, opts, info);
  ser_tensor_release(xc);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}
