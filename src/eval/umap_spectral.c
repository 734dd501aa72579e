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

#define DENSE_MAX 200        /* components up to this size use the dense solve */
#define LANCZOS_TOL 1e-4     /* residual norm of a unit Ritz vector, as umap-learn's eigsh tol */

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
  dsyev_("V", "U", &n, A, &n, ev, &q, &lwork, &info, 1, 1);
  lwork = (int)q;
  size_t work_bytes = (size_t)(lwork > 1 ? lwork : 1) * sizeof(double);
  double *work = ser_alloc(work_bytes);
  if (!work) {
    ser_free(ev, ev_bytes);
    return SER_ENOMEM;
  }
  dsyev_("V", "U", &n, A, &n, ev, work, &lwork, &info, 1, 1);
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
    double c = cblas_ddot((int)n, u0, 1, w, 1);
    cblas_daxpy((int)n, -c, u0, 1, w, 1);
    if (cols > 0) {
      cblas_dgemv(CblasColMajor, CblasTrans, (int)n, cols, 1.0, V, (int)n, w, 1, 0.0, h, 1);
      cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, cols, -1.0, V, (int)n, h, 1, 1.0, w, 1);
    }
  }
}

/* A random unit vector orthogonal to u0 and V[:, 0..cols). */
static void random_orthonormal(double *w, const local_op *op, const double *V, int cols, double *h,
                               ser_rng *rng) {
  for (int attempt = 0; attempt < 8; attempt++) {
    for (int64_t i = 0; i < op->n; i++) w[i] = ser_rng_uniform(rng) - 0.5;
    orthogonalise(w, op->u0, V, op->n, cols, h);
    double nrm = cblas_dnrm2((int)op->n, w, 1);
    if (nrm > 1e-8) {
      cblas_dscal((int)op->n, 1.0 / nrm, w, 1);
      return;
    }
  }
}

/* Largest `nev` eigenpairs of S restricted to u0's complement (= the smallest
 * non-trivial ones of L = I - S): vectors into evec [n, nev] column-major,
 * in order of decreasing eigenvalue of S. Returns 0 when converged, 1 when not
 * (the caller falls back to a random layout), SER_ENOMEM. */
static int lanczos_top(double *evec, const local_op *op, int nev, ser_rng *rng) {
  int64_t n = op->n;
  int m = (int)sqrt((double)n);
  if (m < 40) m = 40;
  if (m > 120) m = 120;
  if (m > n - 2) m = (int)(n - 2);
  if (m < 2 * nev + 1) return 1;
  int keep = nev + (m - nev) / 2;
  int64_t max_matvec = 5 * n > 20000 ? 5 * n : 20000;

  size_t nm_bytes = (size_t)n * m * sizeof(double), n_bytes = (size_t)n * sizeof(double);
  size_t mm_bytes = (size_t)m * m * sizeof(double), m_bytes = (size_t)m * sizeof(double);
  double *V = ser_alloc(nm_bytes), *AV = ser_alloc(nm_bytes), *T = ser_alloc(nm_bytes);
  double *f = ser_alloc(n_bytes), *r = ser_alloc(n_bytes);
  double *H = ser_alloc(mm_bytes), *S = ser_alloc(mm_bytes), *theta = ser_alloc(m_bytes),
         *h = ser_alloc(m_bytes);
  int rc = 1;
  if (!V || !AV || !T || !f || !r || !H || !S || !theta || !h) {
    rc = SER_ENOMEM;
    goto done;
  }

  random_orthonormal(V, op, V, 0, h, rng);
  int kept = 0;
  int64_t matvecs = 0;
  for (;;) {
    for (int j = kept; j < m; j++) {
      double *aj = AV + (size_t)j * n;
      op_apply(aj, op, V + (size_t)j * n);
      matvecs++;
      double *next = j + 1 < m ? V + (size_t)(j + 1) * n : f;
      memcpy(next, aj, n_bytes);
      orthogonalise(next, op->u0, V, n, j + 1, h);
      double nrm = cblas_dnrm2((int)n, next, 1);
      if (nrm > 1e-10)
        cblas_dscal((int)n, 1.0 / nrm, next, 1);
      else /* invariant subspace reached: continue from a fresh direction */
        random_orthonormal(next, op, V, j + 1, h, rng);
    }
    /* Rayleigh-Ritz on the whole basis: H = V^T S V computed explicitly, so
     * the restarts need no recurrence bookkeeping. */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, m, (int)n, 1.0, V, (int)n, AV, (int)n,
                0.0, H, m);
    for (int a = 0; a < m; a++)
      for (int b = a + 1; b < m; b++) {
        double s = 0.5 * (H[a + b * m] + H[b + a * m]);
        H[a + b * m] = H[b + a * m] = s;
      }
    /* S (m*m doubles, >= dsyev's minimum 3m-1) is the LAPACK workspace here. */
    int info = 0, lw = m * m;
    dsyev_("V", "U", &m, H, &m, theta, S, &lw, &info, 1, 1);
    if (info != 0) goto done;
    /* Ritz vectors of the largest eigenvalues, descending: columns of H from the end. */
    for (int t = 0; t < keep; t++) memcpy(S + (size_t)t * m, H + (size_t)(m - 1 - t) * m, m_bytes);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)n, keep, m, 1.0, V, (int)n, S, m,
                0.0, T, (int)n);
    int converged = 1;
    for (int t = 0; t < nev && converged; t++) {
      cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, m, 1.0, AV, (int)n, S + (size_t)t * m, 1, 0.0,
                  r, 1);
      cblas_daxpy((int)n, -theta[m - 1 - t], T + (size_t)t * n, 1, r, 1);
      if (cblas_dnrm2((int)n, r, 1) > LANCZOS_TOL) converged = 0;
    }
    if (converged) {
      memcpy(evec, T, (size_t)n * nev * sizeof(double));
      rc = 0;
      goto done;
    }
    if (matvecs > max_matvec) goto done;
    /* Restart from the kept Ritz vectors plus the next Krylov direction f. */
    memcpy(V, T, (size_t)n * keep * sizeof(double));
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)n, keep, m, 1.0, AV, (int)n, S, m,
                0.0, T, (int)n);
    memcpy(AV, T, (size_t)n * keep * sizeof(double));
    memcpy(V + (size_t)keep * n, f, n_bytes);
    kept = keep;
    /* AV[:, keep] is recomputed by the next sweep, which starts at j = keep. */
  }

done:
  ser_free(V, nm_bytes);
  ser_free(AV, nm_bytes);
  ser_free(T, nm_bytes);
  ser_free(f, n_bytes);
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
      double nrm = cblas_dnrm2((int)s, dinv, 1);
      cblas_dscal((int)s, 1.0 / nrm, dinv, 1);
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
