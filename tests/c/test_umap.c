/* UMAP: the a/b fit against scipy's curve_fit, exact kNN against brute force,
 * the fuzzy graph against its formulas, the spectral layout on rings (whose
 * Laplacian eigenvectors are known), embedding quality on the umap-learn
 * reference data (../shared/fixtures/umap, skipped when absent) and on
 * generated Gaussian clusters (always), determinism, tiny inputs, errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/knn.h"
#include "eval/metrics.h"
#include "eval/umap.h"
#include "eval/umap_graph.h"
#include "eval/umap_sgd.h"
#include "eval/umap_spectral.h"
#include "lib/fixture.h"

/* ---- helpers ---- */

/* n points in `clusters` anisotropic Gaussian clusters in d dimensions: each
 * is a centre plus a random 3-D linear image of N(0, I) plus a little
 * isotropic noise, so that neighbourhoods have low intrinsic dimension (as
 * embeddings of a trained network do) and a linear 2-D projection cannot
 * keep them. */
static float *make_clusters(int64_t n, int64_t d, int clusters, uint64_t seed, int32_t *label) {
  ser_rng r;
  ser_rng_seed(&r, seed);
  float *centre = malloc(sizeof(float) * clusters * d), *A = malloc(sizeof(float) * clusters * d * 3);
  for (int c = 0; c < clusters; c++)
    for (int64_t t = 0; t < d; t++) {
      centre[c * d + t] = 3.0f * ser_rng_normal(&r);
      for (int l = 0; l < 3; l++) A[(c * d + t) * 3 + l] = ser_rng_normal(&r);
    }
  float *X = malloc(sizeof(float) * n * d);
  for (int64_t i = 0; i < n; i++) {
    int c = (int)(i % clusters);
    if (label) label[i] = c;
    float z[3] = {ser_rng_normal(&r), ser_rng_normal(&r), ser_rng_normal(&r)};
    for (int64_t t = 0; t < d; t++) {
      const float *a = A + (c * d + t) * 3;
      X[i * d + t] = centre[c * d + t] + a[0] * z[0] + a[1] * z[1] + a[2] * z[2] + 0.1f * ser_rng_normal(&r);
    }
  }
  free(centre);
  free(A);
  return X;
}

/* Projection on the two leading principal axes (the PCA-2D baseline). */
static float *pca2(const float *X, int64_t n, int64_t d) {
  double *mean = calloc(d, sizeof(double)), *C = calloc(d * d, sizeof(double));
  double w[2], *v = malloc(sizeof(double) * d * 2);
  for (int64_t i = 0; i < n; i++)
    for (int64_t t = 0; t < d; t++) mean[t] += X[i * d + t] / (double)n;
  for (int64_t i = 0; i < n; i++)
    for (int64_t a = 0; a < d; a++)
      for (int64_t b = 0; b < d; b++) C[a * d + b] -= (X[i * d + a] - mean[a]) * (X[i * d + b] - mean[b]);
  assert_int_equal(ser_umap_dense_smallest(w, v, C, (int)d, 2), 0);
  float *Y = malloc(sizeof(float) * n * 2);
  for (int64_t i = 0; i < n; i++)
    for (int c = 0; c < 2; c++) {
      double s = 0;
      for (int64_t t = 0; t < d; t++) s += (X[i * d + t] - mean[t]) * v[c * d + t];
      Y[i * 2 + c] = (float)s;
    }
  free(mean);
  free(C);
  free(v);
  return Y;
}

typedef struct {
  double t5, t15, r15;
} quality;

static quality measure(const float *X, const float *Y, int64_t n, int64_t d) {
  quality q;
  assert_int_equal(ser_metrics_trustworthiness(&q.t5, X, Y, n, d, 2, 5), 0);
  assert_int_equal(ser_metrics_trustworthiness(&q.t15, X, Y, n, d, 2, 15), 0);
  assert_int_equal(ser_metrics_knn_recall(&q.r15, X, Y, n, d, 2, 15), 0);
  return q;
}

/* Fraction of points whose 5 nearest embedded neighbours mostly share their label. */
static double knn5_label_agreement(const float *Y, const int32_t *label, int64_t n) {
  int32_t *idx = malloc(sizeof(int32_t) * n * 5);
  assert_int_equal(ser_knn_exact(idx, NULL, Y, n, 2, 5, 0), 0);
  int64_t good = 0;
  for (int64_t i = 0; i < n; i++) {
    int same = 0;
    for (int a = 0; a < 5; a++) same += label[idx[i * 5 + a]] == label[i];
    good += same >= 3;
  }
  free(idx);
  return (double)good / (double)n;
}

/* ---- a/b curve ---- */

static void test_find_ab_matches_scipy(void **state) {
  (void)state;
  /* scipy 1.10 curve_fit on umap-learn's find_ab_params target (bench/bench_umap.sh prints these) */
  const double cases[][4] = {{1.0, 0.1, 1.5769434601962196, 0.8950608779914887},
                             {1.0, 0.5, 0.583030020479462, 1.3341669929263487},
                             {2.0, 0.0, 0.646046672809973, 0.7904944901548902},
                             {1.0, 0.0, 1.9328083975546724, 0.7904949734010681},
                             {0.5, 0.25, 3.7062902044323978, 1.334167247308424}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    double a, b;
    assert_int_equal(ser_umap_find_ab(&a, &b, cases[i][0], cases[i][1]), 0);
    printf("spread %g min_dist %g: a %.9f (scipy %.9f), b %.9f (scipy %.9f)\n", cases[i][0], cases[i][1], a,
           cases[i][2], b, cases[i][3]);
    assert_true(fabs(a - cases[i][2]) <= 1e-5 * cases[i][2]);
    assert_true(fabs(b - cases[i][3]) <= 1e-5 * cases[i][3]);
  }
}

static void test_find_ab_errors(void **state) {
  (void)state;
  double a, b;
  assert_int_equal(ser_umap_find_ab(&a, &b, 0.0, 0.1), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "spread must be > 0, got 0"));
  assert_int_equal(ser_umap_find_ab(&a, &b, 1.0, 1.5), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "min_dist must be in [0, spread = 1], got 1.5"));
  assert_int_equal(ser_umap_find_ab(&a, &b, 1.0, -0.1), SER_EINVAL);
  assert_int_equal(ser_umap_find_ab(&a, &b, NAN, 0.1), SER_EINVAL);
}

static void test_fast_pow_accuracy(void **state) {
  (void)state;
  const float bs[4] = {0.7904945f, 0.8950609f, 1.334167f, 1.9f};
  double worst = 0;
  for (int k = 0; k < 4; k++)
    for (double x = 1e-6; x < 1e6; x *= 1.0007) {
      double want = pow((double)(float)x, (double)bs[k]), got = ser_umap_fast_pow((float)x, bs[k]);
      worst = fmax(worst, fabs(got - want) / want);
    }
  printf("fast_pow: worst relative error %.3g\n", worst);
  assert_true(worst < 3e-6);
  assert_true(ser_umap_fast_pow(0.0f, 0.9f) >= 0 && ser_umap_fast_pow(0.0f, 0.9f) < 1e-30);
}

/* ---- kNN ---- */

static void test_knn_matches_brute_force(void **state) {
  (void)state;
  const int64_t n = 300, d = 7, k = 10;
  ser_rng r;
  ser_rng_seed(&r, 3);
  float *X = malloc(sizeof(float) * n * d);
  /* far from the origin: the GEMM expansion would lose digits without centring */
  for (int64_t i = 0; i < n * d; i++) X[i] = 1000.0f + ser_rng_normal(&r);
  int32_t *idx = malloc(sizeof(int32_t) * n * k);
  float *dist = malloc(sizeof(float) * n * k);
  double *row = malloc(sizeof(double) * n);
  for (int self = 0; self <= 1; self++) {
    assert_int_equal(ser_knn_exact(idx, dist, X, n, d, k, self), 0);
    for (int64_t i = 0; i < n; i++) {
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t t = 0; t < d; t++) s += ((double)X[i * d + t] - X[j * d + t]) * ((double)X[i * d + t] - X[j * d + t]);
        row[j] = sqrt(s);
      }
      if (self) assert_int_equal(idx[i * k], i);
      for (int64_t a = 0; a < k; a++) {
        int64_t j = idx[i * k + a];
        if (!self) assert_true(j != i);
        assert_true(fabs(dist[i * k + a] - row[j]) <= 1e-5 * (row[j] + 1e-3));
        /* rank check: exactly a (+ self) points are strictly closer */
        int64_t closer = 0;
        for (int64_t l = 0; l < n; l++) closer += l != i && row[l] < row[j];
        assert_int_equal(closer + (self && j != i ? 1 : 0), a);
      }
    }
  }
  free(X);
  free(idx);
  free(dist);
  free(row);
}

static void test_knn_errors(void **state) {
  (void)state;
  float X[6] = {0, 1, 2, 3, 4, 5};
  int32_t idx[12];
  assert_int_equal(ser_knn_exact(idx, NULL, X, 3, 2, 3, 0), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "k = 3 neighbours (self excluded); expected 1..2 for 3 points"));
  assert_int_equal(ser_knn_exact(idx, NULL, X, 3, 2, 0, 1), SER_EINVAL);
  assert_int_equal(ser_knn_exact(idx, NULL, X, 0, 2, 1, 1), SER_EINVAL);
  assert_int_equal(ser_knn_exact(idx, NULL, X, 3, 2, 3, 1), 0);
}

/* ---- fuzzy graph ---- */

static void test_smooth_knn_dist_hits_log2k(void **state) {
  (void)state;
  const int64_t n = 200, d = 5, k = 15;
  float *X = make_clusters(n, d, 3, 11, NULL);
  int32_t *idx = malloc(sizeof(int32_t) * n * k);
  float *dist = malloc(sizeof(float) * n * k);
  double *sigma = malloc(sizeof(double) * n), *rho = malloc(sizeof(double) * n);
  assert_int_equal(ser_knn_exact(idx, dist, X, n, d, k, 1), 0);
  ser_umap_smooth_knn_dist(sigma, rho, dist, n, k, 1.0, 1.0);
  for (int64_t i = 0; i < n; i++) {
    assert_float_equal(rho[i], dist[i * k + 1], 0); /* nearest other point (all distinct) */
    double psum = 0;
    for (int64_t j = 1; j < k; j++) {
      double dd = dist[i * k + j] - rho[i];
      psum += dd > 0 ? exp(-dd / sigma[i]) : 1.0;
    }
    assert_true(fabs(psum - log2((double)k)) < 1e-4);
  }
  free(X);
  free(idx);
  free(dist);
  free(sigma);
  free(rho);
}

static void test_fuzzy_graph_is_the_fuzzy_union(void **state) {
  (void)state;
  const int64_t n = 40, d = 3, k = 6;
  float *X = make_clusters(n, d, 2, 5, NULL);
  int32_t *idx = malloc(sizeof(int32_t) * n * k);
  float *dist = malloc(sizeof(float) * n * k);
  double *sigma = malloc(sizeof(double) * n), *rho = malloc(sizeof(double) * n);
  double *A = calloc(n * n, sizeof(double));
  assert_int_equal(ser_knn_exact(idx, dist, X, n, d, k, 1), 0);
  ser_umap_smooth_knn_dist(sigma, rho, dist, n, k, 1.0, 1.0);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 1; j < k; j++) {
      double dd = dist[i * k + j] - rho[i];
      A[i * n + idx[i * k + j]] = dd <= 0 ? 1.0 : exp(-dd / sigma[i]);
    }
  ser_umap_graph g;
  assert_int_equal(ser_umap_fuzzy_graph(&g, idx, dist, n, k, 1.0, 1.0), 0);
  int64_t expected_nnz = 0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) expected_nnz += A[i * n + j] + A[j * n + i] > 0;
  assert_int_equal(g.nnz, expected_nnz);
  for (int64_t i = 0; i < n; i++)
    for (int64_t e = g.rowptr[i]; e < g.rowptr[i + 1]; e++) {
      int64_t j = g.col[e];
      if (e > g.rowptr[i]) assert_true(g.col[e - 1] < j); /* sorted, no duplicates */
      double a = A[i * n + j], at = A[j * n + i];
      assert_true(fabs(g.val[e] - (a + at - a * at)) < 1e-6);
      /* symmetric: find (j, i) */
      int found = 0;
      for (int64_t f = g.rowptr[j]; f < g.rowptr[j + 1]; f++)
        if (g.col[f] == i) found = g.val[f] == g.val[e];
      assert_true(found);
    }
  ser_umap_graph_free(&g);
  assert_int_equal(ser_umap_fuzzy_graph(&g, idx, dist, n, k, 1.0, 1.5), SER_EINVAL);
  free(X);
  free(idx);
  free(dist);
  free(sigma);
  free(rho);
  free(A);
}

/* ---- spectral layout ---- */

/* `rings` disjoint cycles of m vertices each, unit weights. */
static void make_rings(ser_umap_graph *g, int64_t m, int rings) {
  int64_t n = m * rings;
  g->n = n;
  g->nnz = 2 * n;
  g->rowptr = ser_alloc((size_t)(n + 1) * sizeof(int64_t));
  g->col = ser_alloc((size_t)g->nnz * sizeof(int32_t));
  g->val = ser_alloc((size_t)g->nnz * sizeof(float));
  for (int64_t i = 0; i < n; i++) {
    int64_t base = i / m * m, p = base + (i - base + m - 1) % m, q = base + (i - base + 1) % m;
    g->rowptr[i] = 2 * i;
    g->col[2 * i] = (int32_t)(p < q ? p : q);
    g->col[2 * i + 1] = (int32_t)(p < q ? q : p);
    g->val[2 * i] = g->val[2 * i + 1] = 1.0f;
  }
  g->rowptr[n] = 2 * n;
}

/* The two smallest non-trivial Laplacian eigenvectors of a cycle are cos and
 * sin of the position (any rotation of them): every vertex lands on a circle,
 * in ring order. */
static void check_ring_layout(int64_t m) {
  ser_umap_graph g;
  make_rings(&g, m, 1);
  float *out = malloc(sizeof(float) * m * 2), X[1] = {0};
  ser_rng r;
  ser_rng_seed(&r, 1);
  int64_t n_random = -1, nc = 0;
  assert_int_equal(ser_umap_spectral_layout(out, &g, X, 1, 2, &r, &n_random, &nc), 0);
  assert_int_equal(nc, 1);
  assert_int_equal(n_random, 0);
  double rmin = INFINITY, rmax = 0;
  for (int64_t i = 0; i < m; i++) {
    double rad = hypot(out[2 * i], out[2 * i + 1]);
    rmin = fmin(rmin, rad);
    rmax = fmax(rmax, rad);
  }
  printf("ring of %lld: radius %.6f .. %.6f\n", (long long)m, rmin, rmax);
  assert_true(rmax > 0.5 && (rmax - rmin) / rmax < 2e-3);
  /* neighbours on the ring are neighbours on the circle: angle step 2 pi / m */
  for (int64_t i = 0; i < m; i++) {
    int64_t j = (i + 1) % m;
    double da = fabs(remainder(atan2(out[2 * i + 1], out[2 * i]) - atan2(out[2 * j + 1], out[2 * j]), 2 * M_PI));
    assert_true(fabs(da - 2 * M_PI / (double)m) < 0.05 * 2 * M_PI / (double)m);
  }
  ser_umap_graph_free(&g);
  free(out);
}

static void test_spectral_ring_dense(void **state) {
  (void)state;
  check_ring_layout(120); /* <= 200: LAPACK dense solve */
}

static void test_spectral_ring_lanczos(void **state) {
  (void)state;
  check_ring_layout(700); /* restarted Lanczos */
}

static void test_spectral_components_are_separated(void **state) {
  (void)state;
  ser_umap_graph g;
  const int64_t m = 250;
  make_rings(&g, m, 2);
  float *out = malloc(sizeof(float) * 2 * m * 2), *X = malloc(sizeof(float) * 2 * m);
  for (int64_t i = 0; i < 2 * m; i++) X[i] = (float)(i / m);
  ser_rng r;
  ser_rng_seed(&r, 2);
  int64_t n_random = -1, nc = 0;
  assert_int_equal(ser_umap_spectral_layout(out, &g, X, 1, 2, &r, &n_random, &nc), 0);
  assert_int_equal(nc, 2);
  assert_int_equal(n_random, 0);
  /* umap-learn's meta-layout for two components: centres +e1 and -e1, each
   * ring scaled so that its largest |coordinate| is 1 (half the centre distance) */
  double mx[2] = {0, 0};
  for (int64_t i = 0; i < 2 * m; i++) {
    double cx = i < m ? 1.0 : -1.0;
    double ext = fmax(fabs(out[2 * i] - cx), fabs(out[2 * i + 1]));
    assert_true(ext <= 1.0 + 1e-4);
    mx[i / m] = fmax(mx[i / m], ext);
  }
  assert_true(fabs(mx[0] - 1) < 1e-4 && fabs(mx[1] - 1) < 1e-4);
  ser_umap_graph_free(&g);
  free(out);
  free(X);
}

static void test_dense_smallest(void **state) {
  (void)state;
  double A[9] = {2, 1, 0, 1, 2, 0, 0, 0, 5}; /* eigenvalues 1, 3, 5 */
  double w[2], v[6];
  assert_int_equal(ser_umap_dense_smallest(w, v, A, 3, 2), 0);
  assert_float_equal(w[0], 1.0, 1e-12);
  assert_float_equal(w[1], 3.0, 1e-12);
  assert_float_equal(fabs(v[0]), sqrt(0.5), 1e-12);
  assert_float_equal(v[0], -v[1], 1e-12);
}

/* ---- embedding quality ---- */

static void run_reference(const char *name, int64_t n, int64_t d, const double ref[3], const double pca_ref[3]) {
  char path[128];
  snprintf(path, sizeof path, "umap/%s", name);
  float *X = fixture_require(path, (size_t)(n * d));
  float *Y = malloc(sizeof(float) * n * 2);
  ser_umap_opts o;
  ser_umap_opts_init(&o);
  ser_umap_info info;
  assert_int_equal(ser_umap_embed(Y, X, n, d, &o, &info), 0);
  quality q = measure(X, Y, n, d);
  float *P = pca2(X, n, d);
  quality qp = measure(X, P, n, d);
  printf("%s: trust@5 %.4f (umap-learn %.3f)  trust@15 %.4f (%.3f)  recall@15 %.4f (%.3f)\n", name, q.t5,
         ref[0], q.t15, ref[1], q.r15, ref[2]);
  printf("%s PCA-2D: trust@5 %.4f (README %.3f)  trust@15 %.4f (%.3f)  recall@15 %.4f (%.3f)\n", name, qp.t5,
         pca_ref[0], qp.t15, pca_ref[1], qp.r15, pca_ref[2]);
  printf("  %.3f s: knn %.3f graph %.3f init %.3f sgd %.3f; %lld edges, %lld graph components\n",
         info.seconds_knn + info.seconds_graph + info.seconds_init + info.seconds_sgd, info.seconds_knn,
         info.seconds_graph, info.seconds_init, info.seconds_sgd, (long long)info.n_edges,
         (long long)info.n_graph_components);
  /* the README's umap-learn figures are rounded to 3 decimals */
  assert_true(fabs(q.t5 - ref[0]) <= 0.005 + 5e-4);
  assert_true(fabs(q.t15 - ref[1]) <= 0.005 + 5e-4);
  assert_true(fabs(q.r15 - ref[2]) <= 0.02 + 5e-4);
  /* our PCA baseline reproduces the README's, and UMAP is far above it */
  assert_true(fabs(qp.t15 - pca_ref[1]) <= 0.01);
  assert_true(q.t15 >= qp.t15 + 0.05 && q.r15 >= 2 * qp.r15);
  free(X);
  free(Y);
  free(P);
}

static void test_umap_reference_synth(void **state) {
  (void)state;
  const double ref[3] = {0.982, 0.982, 0.432}, pca[3] = {0.898, 0.901, 0.098};
  run_reference("umap_synth_1440x256", 1440, 256, ref, pca);
}

static void test_umap_reference_digits(void **state) {
  (void)state;
  const double ref[3] = {0.990, 0.988, 0.530}, pca[3] = {0.830, 0.829, 0.151};
  run_reference("umap_digits_1797x64", 1797, 64, ref, pca);
}

/* Runs without ../shared: 8 generated clusters, the size of RAVDESS embeddings. */
static void test_umap_generated_clusters(void **state) {
  (void)state;
  const int64_t n = 1440, d = 64;
  int32_t *label = malloc(sizeof(int32_t) * n);
  float *X = make_clusters(n, d, 8, 2024, label), *Y = malloc(sizeof(float) * n * 2);
  for (int init = 0; init <= 1; init++) {
    ser_umap_opts o;
    ser_umap_opts_init(&o);
    o.init = init ? SER_UMAP_INIT_RANDOM : SER_UMAP_INIT_SPECTRAL;
    assert_int_equal(ser_umap_embed(Y, X, n, d, &o, NULL), 0);
    quality q = measure(X, Y, n, d);
    float *P = pca2(X, n, d);
    quality qp = measure(X, P, n, d);
    double agree = knn5_label_agreement(Y, label, n);
    printf("clusters (%s init): trust@15 %.4f recall@15 %.4f label agreement %.4f; PCA trust@15 %.4f recall %.4f\n",
           init ? "random" : "spectral", q.t15, q.r15, agree, qp.t15, qp.r15);
    assert_true(q.t15 > 0.98 && q.t15 > qp.t15 + 0.03);
    assert_true(q.r15 > 1.3 * qp.r15);
    assert_true(agree > 0.99);
    free(P);
  }
  /* three output dimensions go through the general-dimension update */
  float *Y3 = malloc(sizeof(float) * n * 3);
  ser_umap_opts o3;
  ser_umap_opts_init(&o3);
  o3.n_components = 3;
  assert_int_equal(ser_umap_embed(Y3, X, n, d, &o3, NULL), 0);
  double t3;
  assert_int_equal(ser_metrics_trustworthiness(&t3, X, Y3, n, d, 3, 15), 0);
  printf("clusters in 3-D: trust@15 %.4f\n", t3);
  assert_true(t3 > 0.98);
  free(Y3);
  free(label);
  free(X);
  free(Y);
}

/* ---- determinism, small inputs, errors ---- */

static void test_umap_deterministic(void **state) {
  (void)state;
  const int64_t n = 400, d = 16;
  float *X = make_clusters(n, d, 4, 7, NULL);
  float *Y1 = malloc(sizeof(float) * n * 2), *Y2 = malloc(sizeof(float) * n * 2);
  ser_umap_opts o;
  ser_umap_opts_init(&o);
  o.seed = 99;
  int threads = ser_num_threads();
  ser_set_num_threads(1);
  assert_int_equal(ser_umap_embed(Y1, X, n, d, &o, NULL), 0);
  ser_set_num_threads(2);
  assert_int_equal(ser_umap_embed(Y2, X, n, d, &o, NULL), 0);
  ser_set_num_threads(threads);
  assert_memory_equal(Y1, Y2, sizeof(float) * n * 2); /* same seed: same bits, any thread count */
  o.seed = 100;
  assert_int_equal(ser_umap_embed(Y2, X, n, d, &o, NULL), 0);
  assert_true(memcmp(Y1, Y2, sizeof(float) * n * 2) != 0);
  free(X);
  free(Y1);
  free(Y2);
}

static int all_finite(const float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(y[i])) return 0;
  return 1;
}

static void test_umap_small_and_degenerate(void **state) {
  (void)state;
  ser_umap_opts o;
  ser_umap_opts_init(&o);
  ser_umap_info info;
  float X[60 * 3], Y[60 * 3];
  for (int i = 0; i < 60 * 3; i++) X[i] = (float)((i * 37) % 11);
  /* one point: zeros, as umap-learn */
  Y[0] = Y[1] = 7;
  assert_int_equal(ser_umap_embed(Y, X, 1, 3, &o, &info), 0);
  assert_true(Y[0] == 0 && Y[1] == 0);
  /* fewer points than n_neighbors: reduced to n - 1 */
  assert_int_equal(ser_umap_embed(Y, X, 5, 3, &o, &info), 0);
  assert_int_equal(info.n_neighbors, 4);
  assert_true(all_finite(Y, 10));
  assert_int_equal(ser_umap_embed(Y, X, 2, 3, &o, &info), 0);
  assert_true(all_finite(Y, 4));
  /* every point identical: no distances at all */
  float same[50 * 3];
  for (int i = 0; i < 50 * 3; i++) same[i] = 1.5f;
  assert_int_equal(ser_umap_embed(Y, same, 50, 3, &o, &info), 0);
  assert_true(all_finite(Y, 100));
  /* three output dimensions, a one-dimensional input */
  o.n_components = 3;
  assert_int_equal(ser_umap_embed(Y, X, 60, 3, &o, &info), 0);
  assert_true(all_finite(Y, 180));
  assert_int_equal(ser_umap_embed(Y, X, 60, 1, &o, &info), 0);
  assert_true(all_finite(Y, 180));
  /* explicit a/b and no negative samples are accepted */
  ser_umap_opts_init(&o);
  o.a = 1.0;
  o.b = 1.0;
  o.negative_sample_rate = 0;
  o.n_epochs = 20;
  assert_int_equal(ser_umap_embed(Y, X, 60, 3, &o, &info), 0);
  assert_true(info.a == 1.0 && info.b == 1.0 && info.n_epochs == 20);
  assert_true(all_finite(Y, 120));
}

static void test_umap_errors(void **state) {
  (void)state;
  float X[30 * 2], Y[30 * 2];
  for (int i = 0; i < 60; i++) X[i] = (float)i;
  ser_umap_opts o;
  ser_umap_opts_init(&o);
  X[17] = NAN;
  assert_int_equal(ser_umap_embed(Y, X, 30, 2, &o, NULL), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "non-finite value nan at [8,1]"));
  X[17] = 17;
  o.n_neighbors = 1;
  assert_int_equal(ser_umap_embed(Y, X, 30, 2, &o, NULL), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "n_neighbors must be >= 2, got 1"));
  ser_umap_opts_init(&o);
  o.min_dist = 2;
  assert_int_equal(ser_umap_embed(Y, X, 30, 2, &o, NULL), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "min_dist"));
  ser_umap_opts_init(&o);
  o.init = 7;
  assert_int_equal(ser_umap_embed(Y, X, 30, 2, &o, NULL), SER_EINVAL);
  ser_umap_opts_init(&o);
  o.n_components = 0;
  assert_int_equal(ser_umap_embed(Y, X, 30, 2, &o, NULL), SER_EINVAL);
  ser_umap_opts_init(&o);
  o.learning_rate = 0;
  assert_int_equal(ser_umap_embed(Y, X, 30, 2, &o, NULL), SER_EINVAL);
  ser_umap_opts_init(&o);
  o.a = 1;
  assert_int_equal(ser_umap_embed(Y, X, 30, 2, &o, NULL), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "a and b must both be > 0"));
  assert_int_equal(ser_umap_embed(Y, X, 0, 2, NULL, NULL), SER_EINVAL);
}

static void test_umap_tensor_front_end(void **state) {
  (void)state;
  ser_tensor *x = ser_tensor_empty(2, SER_DIMS(3, 40)); /* viewed transposed: [40, 3], strided */
  for (int64_t i = 0; i < 120; i++) ser_tensor_data(x)[i] = (float)((i * 7919) % 101) / 10.0f;
  ser_tensor *xt = NULL, *y = NULL;
  assert_int_equal(ser_tensor_permute_raw(&xt, x, (const int[]){1, 0}), 0);
  assert_int_equal(ser_umap(&y, xt, NULL, NULL), 0);
  assert_int_equal(y->ndim, 2);
  assert_int_equal(y->shape[0], 40);
  assert_int_equal(y->shape[1], 2);
  assert_true(all_finite(ser_tensor_data(y), 80));
  ser_tensor_release(y);
  ser_tensor *v = ser_tensor_zeros(1, SER_DIMS(5));
  y = (ser_tensor *)1;
  assert_int_equal(ser_umap(&y, v, NULL, NULL), SER_EINVAL);
  assert_null(y);
  assert_non_null(strstr(ser_errmsg(), "expected a 2-D tensor [n, d], got [5]"));
  ser_tensor_release(v);
  ser_tensor_release(xt);
  ser_tensor_release(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_find_ab_matches_scipy),
      cmocka_unit_test(test_find_ab_errors),
      cmocka_unit_test(test_fast_pow_accuracy),
      cmocka_unit_test(test_knn_matches_brute_force),
      cmocka_unit_test(test_knn_errors),
      cmocka_unit_test(test_smooth_knn_dist_hits_log2k),
      cmocka_unit_test(test_fuzzy_graph_is_the_fuzzy_union),
      cmocka_unit_test(test_spectral_ring_dense),
      cmocka_unit_test(test_spectral_ring_lanczos),
      cmocka_unit_test(test_spectral_components_are_separated),
      cmocka_unit_test(test_dense_smallest),
      cmocka_unit_test(test_umap_reference_synth),
      cmocka_unit_test(test_umap_reference_digits),
      cmocka_unit_test(test_umap_generated_clusters),
      cmocka_unit_test(test_umap_deterministic),
      cmocka_unit_test(test_umap_small_and_degenerate),
      cmocka_unit_test(test_umap_errors),
      cmocka_unit_test(test_umap_tensor_front_end),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
