/* UMAP (McInnes, Healy & Melville 2018) in C, following umap-learn 0.5.4 with
 * the euclidean metric:
 *   1. exact kNN (the point itself first), BLAS distances      (eval/knn.h)
 *   2. fuzzy simplicial set: rho/sigma per point, fuzzy union   (eval/umap_graph.h)
 *   3. edges below max weight / n_epochs dropped
 *   4. spectral initialisation (or uniform random in [-10, 10]), scaled so
 *      max |coordinate| = 10, plus N(0, 1e-4) noise, then every coordinate
 *      rescaled to [0, 10]                                       (eval/umap_spectral.h)
 *   5. SGD with negative sampling, a/b fitted from min_dist and spread (eval/umap_sgd.h)
 * Deterministic for a seed: the only randomness is one ser_rng seeded from
 * opts.seed, and the steps that use threads (kNN, BLAS) give the same result
 * whatever the thread count. Differences from umap-learn: neighbours are
 * always exact (umap-learn switches to approximate NN-descent from 4096
 * points), the meta-layout of a disconnected graph uses the components'
 * principal axes (see umap_spectral.c), and the random streams differ, so
 * layouts match umap-learn in quality, not coordinate by coordinate. */
#ifndef SER_EVAL_UMAP_H
#define SER_EVAL_UMAP_H

#include <stdint.h>

#include "core/tensor.h"

enum { SER_UMAP_INIT_SPECTRAL = 0, SER_UMAP_INIT_RANDOM = 1 };

typedef struct ser_umap_opts {
  int n_neighbors;           /* 15; more than n - 1 is reduced to n - 1 (as umap-learn) */
  int n_components;          /* 2 */
  double min_dist;           /* 0.1 */
  double spread;             /* 1.0 */
  int n_epochs;              /* 0: 500 for up to 10000 points, else 200 (umap-learn) */
  int init;                  /* SER_UMAP_INIT_SPECTRAL */
  uint64_t seed;             /* 42 */
  double learning_rate;      /* 1.0 */
  int negative_sample_rate;  /* 5 */
  double repulsion_strength; /* 1.0 */
  double local_connectivity; /* 1.0 */
  double set_op_mix_ratio;   /* 1.0 */
  double a, b;               /* 0 and 0: fitted from min_dist and spread */
} ser_umap_opts;

/* What a run did (for messages and benchmarks). */
typedef struct ser_umap_info {
  int n_neighbors, n_epochs;
  double a, b;
  int64_t n_edges;            /* directed edges optimised (each pair twice) */
  int64_t n_graph_components; /* connected components of the fuzzy graph */
  int64_t n_random_init;      /* points laid out at random (init "random", tiny or unsolved components) */
  double seconds_knn, seconds_graph, seconds_init, seconds_sgd;
} ser_umap_info;

void ser_umap_opts_init(ser_umap_opts *o);

/* out [n, n_components] from X [n, d] (row-major float32). info may be NULL.
 * Errors: SER_EINVAL (bad option, n < 2, non-finite input) with the values in
 * the message; SER_ENOMEM. */
int ser_umap_embed(float *out, const float *X, int64_t n, int64_t d, const ser_umap_opts *opts,
                   ser_umap_info *info);

/* Tensor front end: X must be 2-D [n, d] (any strides). */
int ser_umap(ser_tensor **out, ser_tensor *X, const ser_umap_opts *opts, ser_umap_info *info);

#endif
