/* UMAP's spectral initialisation (umap-learn 0.5 spectral.py).
 *
 * Each connected component of the fuzzy graph W is laid out by the
 * eigenvectors of its normalized Laplacian L = I - D^-1/2 W D^-1/2 for the
 * smallest non-trivial eigenvalues. Components of up to 200 points use a dense
 * LAPACK solve (dsyev); larger ones a restarted Lanczos (Krylov-Schur style,
 * full reorthogonalisation, deflated against the trivial eigenvector
 * D^1/2 1) on the sparse matrix, so memory stays O(n * 40) and time O(nnz)
 * per iteration: a dense solve would cost O(n^3) and already takes longer than
 * the whole embedding at n = 1440. As in umap-learn, several components are
 * placed around a meta-layout of the components and scaled to half the
 * distance to the nearest other component; a component that is too small, or
 * whose eigen-solve does not converge, gets a random layout in its box. */
#ifndef SER_EVAL_UMAP_SPECTRAL_H
#define SER_EVAL_UMAP_SPECTRAL_H

#include <stdint.h>

#include "core/rng.h"
#include "eval/umap_graph.h"

/* Connected components: label [n] in 0..count-1, numbered in order of each
 * component's smallest vertex. Returns the count. */
int64_t ser_umap_components(int32_t *label, const ser_umap_graph *g);

/* Writes the (unscaled) initial layout into out [n, dim]. X [n, d] is the
 * input data (the meta-layout of several components uses their centroids).
 * *n_random gets the number of points that were laid out at random (0 when
 * the spectral solve covered every point); *n_components the component count.
 * Returns 0 or SER_ENOMEM. */
int ser_umap_spectral_layout(float *out, const ser_umap_graph *g, const float *X, int64_t d, int dim,
                             ser_rng *rng, int64_t *n_random, int64_t *n_components);

/* Smallest `nev` eigenpairs of the symmetric matrix A [n, n] (column-major,
 * overwritten): values ascending into w [nev], vectors into v [n, nev]
 * (column-major). Through LAPACK dsyev. Returns 0, SER_ENOMEM, or
 * SER_EUNSUPPORTED if LAPACK reports a failure. Exposed for tests. */
int ser_umap_dense_smallest(double *w, double *v, double *A, int n, int nev);

#endif
