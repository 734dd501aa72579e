#include "comm.h"

#include <stdarg.h>
#include <stdio.h>

#include "error.h"

static ser_comm *installed;
static int sync_bn;

int ser_comm_install(ser_comm *comm) {
  if (comm && (comm->magic != SER_COMM_MAGIC || comm->version != SER_COMM_VERSION))
    return ser_error(SER_EINVAL,
                     "comm: the MPI plug-in speaks interface %#x version %u, this build expects %#x version %u; "
                     "rebuild ser_mpi.so with this tree (make)",
                     comm->magic, comm->version, SER_COMM_MAGIC, SER_COMM_VERSION);
  if (comm && (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size || !comm->allreduce_f32 ||
               !comm->allreduce_f64 || !comm->broadcast || !comm->allgather || !comm->barrier))
    return ser_error(SER_EINVAL, "comm: incomplete communicator (rank %d of %d, or a missing function)", comm->rank,
                     comm->size);
  installed = comm;
  if (!comm) sync_bn = 0;
  return 0;
}

ser_comm *ser_comm_get(void) { return installed; }

void ser_comm_activity(const char *fmt, ...) {
  if (!installed) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(installed->activity, sizeof installed->activity, fmt, ap);
  va_end(ap);
}

void ser_comm_set_sync_batchnorm(int on) { sync_bn = on != 0; }

int ser_comm_sync_batchnorm(void) { return sync_bn && installed != NULL; }
