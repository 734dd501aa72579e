/* ser_mpi.so: the MPI plug-in of data-parallel training (docs/distributed.md).
 *
 * A Lua C module linked against Open MPI and nothing of serlua's: it starts MPI,
 * fills a ser_comm (src/core/comm.h) with MPI collectives on MPI_COMM_WORLD and
 * returns it as a light userdata, which lua/ser/dist.lua installs in the core
 * (ser.core.dist.install). serlua and ser.so never link libmpi; this file is
 * built only where mpicc exists and loaded only when the environment says that
 * mpirun started the process (OMPI_COMM_WORLD_SIZE / PMIX_RANK).
 *
 * Ending the job: a process that exits with a non-zero status (a Lua error, a
 * failed check) would leave the others waiting in a collective forever, so the
 * exit handler calls MPI_Abort with a message naming the rank and what it was
 * doing (ser_comm.activity); a clean exit calls MPI_Finalize. A process killed
 * by a signal runs no handler: mpirun then reports the rank and the signal and
 * ends the others itself. */
#include <lauxlib.h>
#include <lua.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm.h"
#include "core/half.h"

static ser_comm comm;

/* MPI counts are ints: larger buffers go in chunks. */
#define CHUNK ((size_t)1 << 30)

/* Sums of 16-bit floats as MPI user operations: each pair is added in float32 and rounded back. */
static void sum_bf16(void *in, void *inout, int *len, MPI_Datatype *type) {
  const uint16_t *a = in;
  uint16_t *b = inout;
  for (int i = 0; i < *len; i++) b[i] = ser_f32_to_bf16(ser_bf16_to_f32(a[i]) + ser_bf16_to_f32(b[i]));
}

static void sum_f16(void *in, void *inout, int *len, MPI_Datatype *type) {
  const uint16_t *a = in;
  uint16_t *b = inout;
  for (int i = 0; i < *len; i++) b[i] = ser_f32_to_f16(ser_f16_to_f32(a[i]) + ser_f16_to_f32(b[i]));
}

static MPI_Op op_bf16 = MPI_OP_NULL, op_f16 = MPI_OP_NULL;

static int allreduce_f32(float *buf, size_t n, int compress, void *ctx) {
  if (compress == SER_COMM_F32) {
    for (size_t off = 0; off < n; off += CHUNK) {
      int m = (int)(n - off < CHUNK ? n - off : CHUNK);
      if (MPI_Allreduce(MPI_IN_PLACE, buf + off, m, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
    }
    return 0;
  }
  uint16_t *h = malloc((n ? n : 1) * sizeof *h);
  if (!h) return -2;
  const int bf = compress == SER_COMM_BF16;
  for (size_t i = 0; i < n; i++) h[i] = bf ? ser_f32_to_bf16(buf[i]) : ser_f32_to_f16(buf[i]);
  int rc = 0;
  for (size_t off = 0; off < n && rc == 0; off += CHUNK) {
    int m = (int)(n - off < CHUNK ? n - off : CHUNK);
    if (MPI_Allreduce(MPI_IN_PLACE, h + off, m, MPI_UINT16_T, bf ? op_bf16 : op_f16, MPI_COMM_WORLD) != MPI_SUCCESS)
      rc = -1;
  }
  for (size_t i = 0; i < n && rc == 0; i++) buf[i] = bf ? ser_bf16_to_f32(h[i]) : ser_f16_to_f32(h[i]);
  free(h);
  return rc;
}

static int allreduce_f64(double *buf, size_t n, void *ctx) {
  for (size_t off = 0; off < n; off += CHUNK) {
    int m = (int)(n - off < CHUNK ? n - off : CHUNK);
    if (MPI_Allreduce(MPI_IN_PLACE, buf + off, m, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
  }
  return 0;
}

static int broadcast(void *buf, size_t bytes, int root, void *ctx) {
  for (size_t off = 0; off < bytes; off += CHUNK) {
    int m = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
    if (MPI_Bcast((char *)buf + off, m, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
  }
  return 0;
}

static int allgather(const void *in, void *out, size_t n, void *ctx) {
  if (n > (size_t)1 << 30) return -2;
  return MPI_Allgather(in, (int)n, MPI_BYTE, out, (int)n, MPI_BYTE, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

static int barrier(void *ctx) { return MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1; }

/* on_exit handler (glibc): sees the exit status, which atexit does not. */
static void at_exit(int status, void *arg) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin) return;
  if (status != 0) {
    fprintf(stderr, "serlua: rank %d of %d failed (exit status %d) while %s; ending every rank of the job\n",
            comm.rank, comm.size, status, comm.activity[0] ? comm.activity : "starting up");
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
}

int luaopen_ser_mpi(lua_State *L) {
  int init = 0;
  MPI_Initialized(&init);
  if (!init) {
    /* FUNNELED: OpenMP worker threads compute, only the main thread calls MPI. */
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return luaL_error(L, "ser_mpi: MPI_Init_thread failed");
    MPI_Op_create(sum_bf16, 1, &op_bf16);
    MPI_Op_create(sum_f16, 1, &op_f16);
    MPI_Comm_rank(MPI_COMM_WORLD, &comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm.size);
    comm.magic = SER_COMM_MAGIC;
    comm.version = SER_COMM_VERSION;
    comm.allreduce_f32 = allreduce_f32;
    comm.allreduce_f64 = allreduce_f64;
    comm.broadcast = broadcast;
    comm.allgather = allgather;
    comm.barrier = barrier;
    on_exit(at_exit, NULL);
  }
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int vlen = 0;
  MPI_Get_library_version(version, &vlen);
  char *nl = strchr(version, ',');
  if (nl) *nl = '\0';
  lua_createtable(L, 0, 4);
  lua_pushlightuserdata(L, &comm);
  lua_setfield(L, -2, "comm");
  lua_pushinteger(L, comm.rank);
  lua_setfield(L, -2, "rank");
  lua_pushinteger(L, comm.size);
  lua_setfield(L, -2, "size");
  lua_pushstring(L, version);
  lua_setfield(L, -2, "library");
  return 1;
}
