/* Thread count for OpenBLAS and our OpenMP loops.
 *
 * SER_NUM_THREADS, else OMP_NUM_THREADS (default: all cores), is read once.
 * We link the OpenMP build of OpenBLAS so that its threads and ours come from
 * one pool and two cores are never oversubscribed. */
#ifndef SER_CORE_THREADS_H
#define SER_CORE_THREADS_H

void ser_threads_init(void);        /* idempotent; reads SER_NUM_THREADS / OMP_NUM_THREADS */
int ser_num_threads(void);
void ser_set_num_threads(int n);    /* n < 1 means all cores */
const char *ser_blas_info(void);
/* The OpenBLAS core type with AVX-512 kernels ("SkylakeX") when this CPU has
 * AVX-512 but OpenBLAS runs kernels without it (OPENBLAS_CORETYPE forcing an
 * older core, or a library older than the CPU), else NULL. ser_blas_info names
 * it; the choice is OpenBLAS's, made when it loads. */
const char *ser_blas_better_core(void);    /* e.g. "OpenBLAS 0.3.21 (Zen, OpenMP, 2 threads)" */

#endif
