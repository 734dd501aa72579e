/* The communicator the core talks to when a job runs on several processes
 * (data-parallel training, sharded feature extraction: docs/distributed.md).
 *
 * The core never links an MPI library: a plug-in (src/mpi/ser_mpi.c, built as
 * ser_mpi.so against Open MPI and loaded only under mpirun) fills a ser_comm
 * with its functions and hands it over with ser_comm_install. Without one,
 * ser_comm_get() is NULL and nothing in the core changes. Every collective
 * must be called by every process of the job, in the same order. */
#ifndef SER_CORE_COMM_H
#define SER_CORE_COMM_H

#include <stddef.h>
#include <stdint.h>

#define SER_COMM_MAGIC 0x5345524dU /* "SERM" */
#define SER_COMM_VERSION 1

/* Gradient compression of ser_comm.allreduce_f32: the sum travels as 16-bit floats. */
enum { SER_COMM_F32 = 0, SER_COMM_BF16 = 1, SER_COMM_F16 = 2 };

typedef struct ser_comm {
  uint32_t magic, version; /* SER_COMM_MAGIC, SER_COMM_VERSION: checked at install */
  int rank, size;
  /* buf[0..n) = the sum over processes, in place; compress: SER_COMM_* */
  int (*allreduce_f32)(float *buf, size_t n, int compress, void *ctx);
  int (*allreduce_f64)(double *buf, size_t n, void *ctx);
  /* bytes of buf from process root to every process */
  int (*broadcast)(void *buf, size_t bytes, int root, void *ctx);
  /* every process's n bytes, concatenated in rank order into out (size * n bytes, every process) */
  int (*allgather)(const void *in, void *out, size_t n, void *ctx);
  int (*barrier)(void *ctx);
  void *ctx;
  /* What this process is doing (ser_comm_activity), for the message the plug-in
   * prints when a process fails and the job is ended. */
  char activity[240];
} ser_comm;

/* Installs (or, with NULL, removes) the communicator. Fails on a wrong magic or version. */
int ser_comm_install(ser_comm *comm);
/* The installed communicator, or NULL (a single process). */
ser_comm *ser_comm_get(void);
/* Records what this process is doing ("training epoch 3, batch 5/12"); no-op without a communicator. */
void ser_comm_activity(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Synchronised BatchNorm: while on (and a communicator is installed), training-mode
 * batch_norm takes its per-channel statistics over every process's batch
 * (forward: sums and squared deviations; backward: sums of dy and dy * xhat). */
void ser_comm_set_sync_batchnorm(int on);
int ser_comm_sync_batchnorm(void);

#endif
