/* UMAP's fuzzy simplicial set: the weighted kNN graph, symmetrised.
 *
 * Follows umap-learn 0.5 (umap_.py: smooth_knn_dist,
 * compute_membership_strengths, fuzzy_simplicial_set): per point a distance to
 * the nearest neighbour rho and a bandwidth sigma found by binary search so that
 * sum_j exp(-(d_ij - rho_i) / sigma_i) = log2(k); memberships
 * w_ij = exp(-(d_ij - rho_i) / sigma_i) (1 when d_ij <= rho_i, 0 for the point
 * itself); then the fuzzy union P = A + A^T - A o A^T (set_op_mix_ratio 1). */
#ifndef SER_EVAL_UMAP_GRAPH_H
#define SER_EVAL_UMAP_GRAPH_H

#include <stdint.h>

/* A symmetric sparse graph in CSR form; columns ascending within a row. */
typedef struct ser_umap_graph {
  int64_t n, nnz;
  int64_t *rowptr; /* n + 1 */
  int32_t *col;    /* nnz */
  float *val;      /* nnz, in (0, 1] */
} ser_umap_graph;

/* sigma, rho [n] from the kNN distances dist [n, k] (ascending per row,
 * neighbour 0 being the point itself at distance 0). */
void ser_umap_smooth_knn_dist(double *sigma, double *rho, const float *dist, int64_t n, int64_t k,
                              double local_connectivity, double bandwidth);

/* Builds the symmetrised membership graph from idx/dist [n, k] (as returned by
 * ser_knn_exact with include_self). set_op_mix_ratio in [0, 1] blends fuzzy
 * union (1) and intersection (0). On success g owns its arrays
 * (ser_umap_graph_free). */
int ser_umap_fuzzy_graph(ser_umap_graph *g, const int32_t *idx, const float *dist, int64_t n,
                         int64_t k, double local_connectivity, double set_op_mix_ratio);
void ser_umap_graph_free(ser_umap_graph *g);

#endif
