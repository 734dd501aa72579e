#include "umap_spectral.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

/* LAPACK through OpenBLAS (Debian ships no LAPACKE header for it); gfortran
 * passes the lengths of character arguments as trailing size_t. */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info, size_t jobz_len,
                   size_t uplo_len);
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

/* dsyev on one thread. The matrices here are small (<= 200) and OpenBLAS
 * would still fork its inner BLAS calls over threads; on a busy 2-core
 * machine each of those waits for a descheduled thread, which made the
 * initialisation take seconds instead of milliseconds (measured). */
static void syev1(const char *jobz, int n, double *a, double *w, double *work, int lwork, int *info) {
  int threads = openblas_get_num_threads();
  if (threads > 1) openblas_set_num_threads(1);
  dsyev_(jobz, "U", &n, a, &n, w, work, &lwork, info, 1, 1);
  if (threads > 1) openblas_set_num_threads(threads);
}

#define DENSE_MAX 200        /* components up to this size use the dense solve */
/* Convergence: the residual ||S y - theta y|| of each wanted unit Ritz vector
 * must be below umap-learn's eigsh tolerance (1e-4) and below 1% of the gap
 * to the first unwanted Ritz value: the error of an eigenvector is about
 * residual / gap, and kNN graphs with nearly equal leading eigenvalues would
 * otherwise get vectors mixed with the next ones. */
#define LANCZOS_TOL 1e-4
#define LANCZOS_GAP_FRACTION 1e-2

int64_t ser_umap_components(int32_t *label, const ser_umap_graph *g) {
  int64_t n = g->n, count = 0;
  for (int64_t i = 0; i < n; i++) label[i] = -1;
  /* Iterative depth-first search (an explicit stack: recursion could overflow
   * on a long chain); label doubles as the visited mark. */
  int32_t *stack = ser_alloc((size_t)(n ? n : 1) * sizeof(int32_t));
  if (!stack) return SER_ENOMEM;
  for (int64_t s = 0; s < n; s++) {
    if (label[s] >= 0) continue;
    int64_t top = 0;
    stack[top++] = (int32_t)s;
    label[s] = (int32_t)count;
    while (top > 0) {
      int32_t v = stack[--top];
      for (int64_t e = g->rowptr[v]; e < g->rowptr[v + 1]; e++) {
        int32_t u = g->col[e];
        if (label[u] < 0) {
          label[u] = (int32_t)count;
          stack[top++] = u;
        }
      }
    }
    count++;
  }
  ser_free(stack, (size_t)(n ? n : 1) * sizeof(int32_t));
  return count;
}

int ser_umap_dense_smallest(double *w, double *v, double *A, int n, int nev) {
  int lwork = -1, info = 0;
  double q;
  size_t ev_bytes = (size_t)n * sizeof(double);
  double *ev = ser_alloc(ev_bytes);
  if (!ev) return SER_ENOMEM;
  syev1("V", n, A, ev, &q, lwork, &info);
  lwork = (int)q;
  size_t work_bytes = (size_t)(lwork > 1 ? lwork : 1) * sizeof(double);
  double *work = ser_alloc(work_bytes);
  if (!work) {
    ser_free(ev, ev_bytes);
    return SER_ENOMEM;
  }
  syev1("V", n, A, ev, work, lwork, &info);
  ser_free(work, work_bytes);
  if (info != 0) {
    ser_free(ev, ev_bytes);
    return ser_error(SER_EUNSUPPORTED, "LAPACK dsyev failed on a %dx%d matrix (info %d)", n, n, info);
  }
  for (int t = 0; t < nev; t++) {
    w[t] = ev[t];
    memcpy(v + (size_t)t * n, A + (size_t)t * n, (size_t)n * sizeof(double));
  }
  ser_free(ev, ev_bytes);
  return 0;
}

/* Small dense kernels on column-major double matrices. The Lanczos vectors
 * are short (one component) and the calls many, so plain loops beat BLAS
 * here: OpenBLAS would spread each call over threads, and on a shared machine
 * waiting for a descheduled thread made the initialisation 10-100x slower. */
static double vdot(int64_t n, const double *x, const double *y) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += x[i] * y[i];
  return s;
}
static void vaxpy(int64_t n, double a, const double *x, double *y) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}
static void vscal(int64_t n, double a, double *x) {
  for (int64_t i = 0; i < n; i++) x[i] *= a;
}
static double vnrm2(int64_t n, const double *x) { return sqrt(vdot(n, x, x)); }
/* C [m, p] = A^T B for A [n, m], B [n, p] */
static void gemm_tn(double *C, const double *A, const double *B, int64_t n, int m, int p) {
  for (int j = 0; j < p; j++)
    for (int i = 0; i < m; i++) C[i + (int64_t)j * m] = vdot(n, A + (int64_t)i * n, B + (int64_t)j * n);
}
/* C [n, p] = A S for A [n, m], S [m, p] (leading dimension m) */
static void gemm_nn(double *C, const double *A, const double *S, int64_t n, int m, int p) {
  for (int j = 0; j < p; j++) {
    double *c = C + (int64_t)j * n;
    memset(c, 0, (size_t)n * sizeof(double));
    for (int i = 0; i < m; i++) vaxpy(n, S[i + (int64_t)j * m], A + (int64_t)i * n, c);
  }
}

/* One component as a local CSR matrix S = D^-1/2 W D^-1/2 and the trivial
 * eigenvector u0 = D^1/2 1 / ||D^1/2 1|| of S (eigenvalue 1). */
typedef struct {
  int64_t n;
  int64_t *rowptr;
  int32_t *col;
  double *val;
  double *u0;
} local_op;

static void op_apply(double *y, const local_op *op, const double *x) {
  for (int64_t i = 0; i < op->n; i++) {
    double s = 0;
    for (int64_t e = op->rowptr[i]; e < op->rowptr[i + 1]; e++) s += op->val[e] * x[op->col[e]];
    y[i] = s;
  }
}

/* w -= Q (Q^T w) for Q = [u0, V[:, 0..cols)], twice (classical Gram-Schmidt
 * with reorthogonalisation keeps the basis orthogonal to working precision). */
static void orthogonalise(double *w, const double *u0, const double *V, int64_t n, int cols,
                          double *h) {
  for (int pass = 0; pass < 2; pass++) {
    vaxpy(n, -vdot(n, u0, w), u0, w);
    for (int c = 0; c < cols; c++) h[c] = vdot(n, V + (int64_t)c * n, w);
    for (int c = 0; c < cols; c++) vaxpy(n, -h[c], V + (int64_t)c * n, w);
  }
}

/* A random unit vector orthogonal to u0 and V[:, 0..cols). */
static void random_orthonormal(double *w, const local_op *op, const double *V, int cols, double *h,
                               ser_rng *rng) {
  for (int attempt = 0; attempt < 8; attempt++) {
    for (int64_t i = 0; i < op->n; i++) w[i] = ser_rng_uniform(rng) - 0.5;
    orthogonalise(w, op->u0, V, op->n, cols, h);
    double nrm = vnrm2(op->n, w);
    if (nrm > 1e-8) {
      vscal(op->n, 1.0 / nrm, w);
      return;
    }
  }
}

/* Largest `nev` eigenpairs of S restricted to u0's complement (= the smallest
 * non-trivial ones of L = I - S): vectors into evec [n, nev] column-major,
 * in order of decreasing eigenvalue of S. Returns 0 when converged, 1 when not
 * (the caller falls back to a random layout), SER_ENOMEM.
 *
 * Block Krylov with block size nev: a single start vector spans only one
 * direction of each degenerate eigenspace (a ring's cos/sin pair, nearly
 * symmetric clusters), so a single-vector Lanczos returns the wrong pair. The
 * basis V has m columns plus nev continuation columns; each restart keeps the
 * best `keep` Ritz vectors and the continuation block (Krylov-Schur style). */
static int lanczos_top(double *evec, const local_op *op, int nev, ser_rng *rng) {
  int64_t n = op->n;
  const int bs = nev;
  int m = (int)sqrt((double)n);
  if (m < 40) m = 40;
  if (m > 120) m = 120;
  if (m > n - 1 - bs) m = (int)(n - 1 - bs);
  if (m < 4 * nev + 2) return 1;
  int keep = nev + (m - nev) / 2;
  int64_t max_matvec = 5 * n > 20000 ? 5 * n : 20000;

  size_t nm_bytes = (size_t)n * (m + bs) * sizeof(double), n_bytes = (size_t)n * sizeof(double);
  size_t mm_bytes = (size_t)m * m * sizeof(double), m_bytes = (size_t)(m + bs) * sizeof(double);
  double *V = ser_alloc(nm_bytes), *AV = ser_alloc(nm_bytes), *T = ser_alloc(nm_bytes);
  double *r = ser_alloc(n_bytes);
  double *H = ser_alloc(mm_bytes), *S = ser_alloc(mm_bytes), *theta = ser_alloc(m_bytes),
         *h = ser_alloc(m_bytes);
  int rc = 1;
  if (!V || !AV || !T || !r || !H || !S || !theta || !h) {
    rc = SER_ENOMEM;
    goto done;
  }

  for (int c = 0; c < bs; c++) random_orthonormal(V + (size_t)c * n, op, V, c, h, rng);
  int kept = 0;
  int64_t matvecs = 0;
  for (;;) {
    /* V[:, 0 .. j+bs) are set when column j is expanded into column j + bs. */
    for (int j = kept; j < m; j++) {
      double *aj = AV + (size_t)j * n;
      op_apply(aj, op, V + (size_t)j * n);
      matvecs++;
      double *next = V + (size_t)(j + bs) * n;
      memcpy(next, aj, n_bytes);
      orthogonalise(next, op->u0, V, n, j + bs, h);
      double nrm = vnrm2(n, next);
      if (nrm > 1e-10)
        vscal(n, 1.0 / nrm, next);
      else /* invariant subspace reached: continue from a fresh direction */
        random_orthonormal(next, op, V, j + bs, h, rng);
    }
    /* Rayleigh-Ritz on the first m columns: H = V^T S V computed explicitly,
     * so the restarts need no recurrence bookkeeping. */
    gemm_tn(H, V, AV, n, m, m);
    for (int a = 0; a < m; a++)
      for (int b = a + 1; b < m; b++) {
        double s = 0.5 * (H[a + b * m] + H[b + a * m]);
        H[a + b * m] = H[b + a * m] = s;
      }
    /* S (m*m doubles, >= dsyev's minimum 3m-1) is the LAPACK workspace here. */
    int info = 0, lw = m * m;
    syev1("V", m, H, theta, S, lw, &info);
    if (info != 0) goto done;
    /* Ritz vectors of the largest eigenvalues, descending: columns of H from the end. */
    for (int t = 0; t < keep; t++) memcpy(S + (size_t)t * m, H + (size_t)(m - 1 - t) * m, (size_t)m * sizeof(double));
    gemm_nn(T, V, S, n, m, keep);
    int converged = 1;
    double tol = LANCZOS_GAP_FRACTION * (theta[m - nev] - theta[m - 1 - nev]);
    if (tol > LANCZOS_TOL) tol = LANCZOS_TOL;
    if (tol < 1e-10) tol = 1e-10;
    for (int t = 0; t < nev && converged; t++) {
      gemm_nn(r, AV, S + (size_t)t * m, n, m, 1);
      vaxpy(n, -theta[m - 1 - t], T + (size_t)t * n, r);
      if (vnrm2(n, r) > tol) converged = 0;
    }
    if (converged) {
      memcpy(evec, T, (size_t)n * nev * sizeof(double));
      rc = 0;
      goto done;
    }
    if (matvecs > max_matvec) goto done;
    /* Restart: kept Ritz vectors, then the continuation block (orthogonal to
     * all of V[:, 0..m), hence to the Ritz vectors). */
    memcpy(V, T, (size_t)n * keep * sizeof(double));
    memmove(V + (size_t)keep * n, V + (size_t)m * n, (size_t)n * bs * sizeof(double));
    gemm_nn(T, AV, S, n, m, keep);
    memcpy(AV, T, (size_t)n * keep * sizeof(double));
    kept = keep;
  }

done:
  ser_free(V, nm_bytes);
  ser_free(AV, nm_bytes);
  ser_free(T, nm_bytes);
  ser_free(r, n_bytes);
  ser_free(H, mm_bytes);
  ser_free(S, mm_bytes);
  ser_free(theta, m_bytes);
  ser_free(h, m_bytes);
  return rc;
}

/* Positions of the components' centres (umap-learn's meta-embedding): up to
 * 2*dim components go to +-unit vectors; more are placed by the principal
 * axes of their centroids in the input space (umap-learn uses a spectral
 * embedding of exp(-d^2) centroid affinities, which degenerates to zero
 * affinities when centroid distances are large, as in real embeddings;
 * PCA keeps the coarse geometry). Scaled to a maximum |coordinate| of 1. */
static int meta_layout(double *meta, const int32_t *label, int64_t nc, const float *X, int64_t n,
                       int64_t d, int dim) {
  memset(meta, 0, (size_t)nc * dim * sizeof(double));
  if (nc == 1) return 0;
  if (nc <= 2 * dim) {
    int64_t k = (nc + 1) / 2;
    for (int64_t c = 0; c < nc; c++) meta[c * dim + (c < k ? c : c - k)] = c < k ? 1.0 : -1.0;
    return 0;
  }
  size_t c_bytes = (size_t)nc * d * sizeof(double), g_bytes = (size_t)nc * nc * sizeof(double);
  size_t cnt_bytes = (size_t)nc * sizeof(double), v_bytes = (size_t)nc * dim * sizeof(double);
  double *C = ser_calloc(c_bytes), *G = ser_alloc(g_bytes), *cnt = ser_calloc(cnt_bytes);
  double *w = ser_alloc((size_t)dim * sizeof(double)), *v = ser_alloc(v_bytes);
  int rc = 0;
  if (!C || !G || !cnt || !w || !v) {
    rc = SER_ENOMEM;
    goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    cnt[label[i]] += 1;
    for (int64_t t = 0; t < d; t++) C[label[i] * d + t] += X[i * d + t];
  }
  for (int64_t c = 0; c < nc; c++)
    for (int64_t t = 0; t < d; t++) C[c * d + t] /= cnt[c];
  for (int64_t t = 0; t < d; t++) {
    double m = 0;
    for (int64_t c = 0; c < nc; c++) m += C[c * d + t];
    m /= (double)nc;
    for (int64_t c = 0; c < nc; c++) C[c * d + t] -= m;
  }
  /* -C C^T so that the smallest eigenpairs are the principal ones */
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)nc, (int)nc, (int)d, -1.0, C, (int)d, C,
              (int)d, 0.0, G, (int)nc);
  rc = ser_umap_dense_smallest(w, v, G, (int)nc, dim);
  if (rc < 0) goto done;
  double mx = 0;
  for (int t = 0; t < dim; t++) {
    double s = w[t] < 0 ? sqrt(-w[t]) : 0;
    for (int64_t c = 0; c < nc; c++) {
      meta[c * dim + t] = v[(size_t)t * nc + c] * s;
      if (fabs(meta[c * dim + t]) > mx) mx = fabs(meta[c * dim + t]);
    }
  }
  /* Two centres on one spot would overlap their components: then use a circle. */
  double mind = INFINITY;
  for (int64_t a = 0; a < nc && mx > 0; a++)
    for (int64_t b = a + 1; b < nc; b++) {
      double s = 0;
      for (int t = 0; t < dim; t++) s += (meta[a * dim + t] - meta[b * dim + t]) * (meta[a * dim + t] - meta[b * dim + t]);
      if (s < mind) mind = s;
    }
  if (mx == 0 || sqrt(mind) < 1e-6 * mx) {
    memset(meta, 0, (size_t)nc * dim * sizeof(double));
    for (int64_t c = 0; c < nc; c++) {
      double ang = 2 * M_PI * (double)c / (double)nc;
      if (dim >= 2) {
        meta[c * dim] = cos(ang);
        meta[c * dim + 1] = sin(ang);
      } else {
        meta[c] = 2.0 * (double)c / (double)(nc - 1) - 1.0;
      }
    }
  } else {
    for (int64_t i = 0; i < nc * dim; i++) meta[i] /= mx;
  }
done:
  ser_free(C, c_bytes);
  ser_free(G, g_bytes);
  ser_free(cnt, cnt_bytes);
  ser_free(w, (size_t)dim * sizeof(double));
  ser_free(v, v_bytes);
  return rc;
}

/* Half the distance from centre c to the nearest other centre (1 when alone). */
static double box_radius(const double *meta, int64_t nc, int dim, int64_t c) {
  double best = INFINITY;
  for (int64_t o = 0; o < nc; o++) {
    double s = 0;
    for (int t = 0; t < dim; t++) s += (meta[c * dim + t] - meta[o * dim + t]) * (meta[c * dim + t] - meta[o * dim + t]);
    if (s > 0 && s < best) best = s;
  }
  return isinf(best) ? 1.0 : sqrt(best) / 2.0;
}

/* Lays out one component (members mem[0..s)) into out. Returns 1 when it was
 * laid out at random, 0 when spectrally, SER_ENOMEM. */
static int layout_component(float *out, const ser_umap_graph *g, const int32_t *mem, int64_t s,
                            int32_t *loc, const double *centre, double radius, int dim,
                            ser_rng *rng) {
  int rc = 1;
  local_op op = {0};
  double *emb = NULL, *A = NULL, *w = NULL;
  size_t emb_bytes = (size_t)s * dim * sizeof(double), a_bytes = 0, nnz_local = 0;
  if (s >= 2 * dim && s > dim + 1) {
    for (int64_t a = 0; a < s; a++) {
      loc[mem[a]] = (int32_t)a;
      nnz_local += (size_t)(g->rowptr[mem[a] + 1] - g->rowptr[mem[a]]);
    }
    op.n = s;
    op.rowptr = ser_alloc((size_t)(s + 1) * sizeof(int64_t));
    op.col = ser_alloc((nnz_local ? nnz_local : 1) * sizeof(int32_t));
    op.val = ser_alloc((nnz_local ? nnz_local : 1) * sizeof(double));
    op.u0 = ser_alloc((size_t)s * sizeof(double));
    emb = ser_alloc(emb_bytes);
    if (!op.rowptr || !op.col || !op.val || !op.u0 || !emb) {
      rc = SER_ENOMEM;
      goto done;
    }
    double *dinv = op.u0; /* holds 1/sqrt(deg) first, then becomes u0 */
    op.rowptr[0] = 0;
    for (int64_t a = 0; a < s; a++) {
      double deg = 0;
      int64_t e0 = g->rowptr[mem[a]], e1 = g->rowptr[mem[a] + 1];
      for (int64_t e = e0; e < e1; e++) {
        deg += g->val[e];
        op.col[op.rowptr[a] + (e - e0)] = loc[g->col[e]];
        op.val[op.rowptr[a] + (e - e0)] = g->val[e];
      }
      op.rowptr[a + 1] = op.rowptr[a] + (e1 - e0);
      dinv[a] = 1.0 / sqrt(deg);
    }
    for (int64_t a = 0; a < s; a++)
      for (int64_t e = op.rowptr[a]; e < op.rowptr[a + 1]; e++) op.val[e] *= dinv[a] * dinv[op.col[e]];
    if (s <= DENSE_MAX) {
      a_bytes = (size_t)s * s * sizeof(double);
      A = ser_calloc(a_bytes);
      w = ser_alloc((size_t)(dim + 1) * sizeof(double));
      double *v = ser_alloc((size_t)s * (dim + 1) * sizeof(double));
      if (!A || !w || !v) {
        ser_free(v, (size_t)s * (dim + 1) * sizeof(double));
        rc = SER_ENOMEM;
        goto done;
      }
      for (int64_t a = 0; a < s; a++) {
        A[a * s + a] = 1.0;
        for (int64_t e = op.rowptr[a]; e < op.rowptr[a + 1]; e++) A[op.col[e] * s + a] -= op.val[e];
      }
      int r = ser_umap_dense_smallest(w, v, A, (int)s, dim + 1);
      if (r == 0) {
        for (int t = 0; t < dim; t++)
          for (int64_t a = 0; a < s; a++) emb[a * dim + t] = v[(size_t)(t + 1) * s + a];
        rc = 0;
      } else if (r == SER_ENOMEM) {
        rc = r;
      }
      ser_free(v, (size_t)s * (dim + 1) * sizeof(double));
    } else {
      for (int64_t a = 0; a < s; a++) dinv[a] = 1.0 / dinv[a]; /* sqrt(deg) */
      vscal(s, 1.0 / vnrm2(s, dinv), dinv);
      size_t vec_bytes = (size_t)s * dim * sizeof(double);
      double *vec = ser_alloc(vec_bytes);
      if (!vec) {
        rc = SER_ENOMEM;
        goto done;
      }
      int r = lanczos_top(vec, &op, dim, rng);
      if (r == 0) {
        for (int t = 0; t < dim; t++)
          for (int64_t a = 0; a < s; a++) emb[a * dim + t] = vec[(size_t)t * s + a];
        rc = 0;
      } else if (r < 0) {
        rc = r;
      }
      ser_free(vec, vec_bytes);
    }
  }
  if (rc == 0) {
    double mx = 0;
    for (int64_t i = 0; i < s * dim; i++)
      if (fabs(emb[i]) > mx) mx = fabs(emb[i]);
    double scale = mx > 0 ? radius / mx : 0;
    for (int64_t a = 0; a < s; a++)
      for (int t = 0; t < dim; t++) out[(int64_t)mem[a] * dim + t] = (float)(emb[a * dim + t] * scale + centre[t]);
  } else if (rc == 1) {
    for (int64_t a = 0; a < s; a++)
      for (int t = 0; t < dim; t++)
        out[(int64_t)mem[a] * dim + t] = (float)(centre[t] + radius * (2.0 * ser_rng_uniform(rng) - 1.0));
  }
done:
  ser_free(op.rowptr, (size_t)(s + 1) * sizeof(int64_t));
  ser_free(op.col, (nnz_local ? nnz_local : 1) * sizeof(int32_t));
  ser_free(op.val, (nnz_local ? nnz_local : 1) * sizeof(double));
  ser_free(op.u0, (size_t)s * sizeof(double));
  ser_free(emb, emb_bytes);
  ser_free(A, a_bytes);
  ser_free(w, (size_t)(dim + 1) * sizeof(double));
  return rc;
}

int ser_umap_spectral_layout(float *out, const ser_umap_graph *g, const float *X, int64_t d, int dim,
                             ser_rng *rng, int64_t *n_random, int64_t *n_components) {
  int64_t n = g->n;
  size_t n32 = (size_t)(n ? n : 1) * sizeof(int32_t);
  int32_t *label = ser_alloc(n32), *order = ser_alloc(n32), *loc = ser_alloc(n32);
  int64_t *start = NULL, nc = 0;
  double *meta = NULL;
  int rc = 0;
  *n_random = 0;
  if (!label || !order || !loc) {
    rc = SER_ENOMEM;
    goto done;
  }
  nc = ser_umap_components(label, g);
  if (nc < 0) {
    rc = (int)nc;
    goto done;
  }
  *n_components = nc;
  start = ser_calloc((size_t)(nc + 1) * sizeof(int64_t));
  meta = ser_alloc((size_t)nc * dim * sizeof(double));
  if (!start || !meta) {
    rc = SER_ENOMEM;
    goto done;
  }
  rc = meta_layout(meta, label, nc, X, n, d, dim);
  if (rc < 0) goto done;
  for (int64_t i = 0; i < n; i++) start[label[i] + 1]++;
  for (int64_t c = 0; c < nc; c++) start[c + 1] += start[c];
  for (int64_t i = 0; i < n; i++) order[start[label[i]]++] = (int32_t)i;
  for (int64_t c = nc; c > 0; c--) start[c] = start[c - 1];
  start[0] = 0;
  for (int64_t c = 0; c < nc; c++) {
    int64_t s = start[c + 1] - start[c];
    int r = layout_component(out, g, order + start[c], s, loc, meta + c * dim,
                             nc == 1 ? 1.0 : box_radius(meta, nc, dim, c), dim, rng);
    if (r < 0) {
      rc = r;
      goto done;
    }
    if (r == 1) *n_random += s;
  }
done:
  if (rc == SER_ENOMEM) ser_error(SER_ENOMEM, "umap: out of memory in the spectral initialisation of %lld points", (long long)n);
  ser_free(label, n32);
  ser_free(order, n32);
  ser_free(loc, n32);
  ser_free(start, (size_t)(nc + 1) * sizeof(int64_t));
  ser_free(meta, (size_t)nc * dim * sizeof(double));
  return rc;
}
