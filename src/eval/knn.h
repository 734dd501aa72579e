/* Exact k nearest neighbours under the euclidean distance.
 *
 * Squared distances come from one GEMM per block of rows
 * (||x||^2 + ||y||^2 - 2 x.y, cblas_sgemm), the top k of each row is selected
 * in parallel (OpenMP over rows), and the distances of the chosen neighbours
 * are then recomputed directly in double, so the values handed back carry no
 * cancellation error from the GEMM expansion. Ties are broken by the smaller
 * index, so results do not depend on the thread count. */
#ifndef SER_EVAL_KNN_H
#define SER_EVAL_KNN_H

#include <stdint.h>

/* For each of the n rows of X [n, d] (row-major), its k nearest rows:
 * idx [n, k] (0-based) and dist [n, k] (euclidean, ascending).
 * include_self != 0: the point itself is neighbour 0 at distance 0 (umap-learn's
 * convention); include_self == 0: it is excluded (scikit-learn's kneighbors()).
 * Needs k <= n (include_self) or k <= n - 1. dist may be NULL.
 * Returns 0 or SER_EINVAL / SER_ENOMEM with the message set. */
int ser_knn_exact(int32_t *idx, float *dist, const float *X, int64_t n, int64_t d, int64_t k,
                  int include_self);

/* Squared euclidean distances between the rows [r0, r0 + rows) of X and all
 * n rows, into out [rows, n] (double, row-major), computed in double (dgemm on
 * a double copy `Xd` of X and its squared norms `sq`); the diagonal is exactly 0.
 * For the metrics, which need exact ranks. */
void ser_knn_sqdist_block_f64(double *out, const double *Xd, const double *sq, int64_t n, int64_t d,
                              int64_t r0, int64_t rows);

/* Threads worth using for all-pairs work on n points of d features: one
 * below about 1e9 multiply-adds (a few milliseconds of GEMM), where forking
 * saves little and, on a busy machine, waiting for a descheduled thread costs
 * far more (measured: kNN of 1440 x 256 took 0.05 s on one thread, 0.2 s on
 * two under load); above it, ser_num_threads(). */
int ser_knn_threads(int64_t n, int64_t d);
/* Caps OpenBLAS at nt threads; returns the previous count for ser_knn_blas_restore. */
int ser_knn_blas_limit(int nt);
void ser_knn_blas_restore(int previous);

#endif
