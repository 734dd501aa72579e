/* UMAP's layout optimisation (umap-learn 0.5 layouts.py) and the a/b curve.
 *
 * Low-dimensional similarity is 1 / (1 + a d^(2b)); find_ab fits a and b to
 * the target curve (1 for d < min_dist, exp(-(d - min_dist) / spread) beyond)
 * on 300 points of [0, 3 spread] by least squares, as umap-learn's
 * find_ab_params does with scipy's curve_fit (Levenberg-Marquardt from a = b = 1).
 *
 * The optimisation is umap-learn's optimize_layout_euclidean: each edge is
 * sampled every epochs_per_sample epochs (= max weight / weight), attracted
 * with gradient -2ab d^(2(b-1)) / (1 + a d^(2b)) (x - y), followed by
 * negative_sample_rate random vertices repelled with 2 gamma b /
 * ((0.001 + d^2)(1 + a d^(2b))) (x - y); every gradient coordinate is clipped
 * to [-4, 4]; the learning rate decays linearly from its initial value. */
#ifndef SER_EVAL_UMAP_SGD_H
#define SER_EVAL_UMAP_SGD_H

#include <stdint.h>

#include "core/rng.h"

/* Returns 0 or SER_EINVAL (spread <= 0, min_dist < 0 or > spread, no convergence). */
int ser_umap_find_ab(double *a, double *b, double spread, double min_dist);

typedef struct ser_umap_sgd {
  int64_t n_vertices, n_edges;
  const int32_t *head, *tail;        /* edge endpoints (both directions of each pair) */
  const double *epochs_per_sample;   /* per edge, > 0 */
  int n_epochs, dim, negative_sample_rate;
  double a, b, gamma, initial_alpha;
} ser_umap_sgd;

/* Optimises emb [n_vertices, dim] in place; single thread, deterministic for
 * the generator's state. Returns 0 or SER_ENOMEM. */
int ser_umap_optimize(float *emb, const ser_umap_sgd *p, ser_rng *rng);

/* x^b for x > 0 as the batched repulsions compute it (relative error < 3e-6);
 * exposed for tests. */
float ser_umap_fast_pow(float x, float b);

#endif
