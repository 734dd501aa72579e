/* ser.core.dist: the communicator of a job started by mpirun, as Lua sees it.
 * The communicator itself comes from the MPI plug-in (src/mpi/ser_mpi.c, loaded
 * by lua/ser/dist.lua only under mpirun) as a light userdata; this binding
 * installs it in the core and exposes its collectives on tensors and strings.
 * Without install() every function behaves as for a job of one process.
 *   install(comm) -> rank, size;  rank(), size(), installed()
 *   allreduce(t[, "bf16" | "fp16"]): t (contiguous) = the sum over processes, in place
 *   broadcast(t, root): t = process root's t (root 0-based)
 *   broadcast_string(s, root) -> process root's s;  allgather_string(s) -> { s of rank 0, ... }
 *   barrier();  activity(text);  sync_batchnorm([on]) -> previous setting */
#include <stdlib.h>
#include <string.h>

#include "luat.h"

static ser_comm *comm_or_null(void) { return ser_comm_get(); }

static int l_install(lua_State *L) {
  luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
  if (ser_comm_install(lua_touserdata(L, 1))) return ser_lua_fail(L, "dist.install");
  lua_pushinteger(L, ser_comm_get()->rank);
  lua_pushinteger(L, ser_comm_get()->size);
  return 2;
}

static int l_rank(lua_State *L) {
  lua_pushinteger(L, comm_or_null() ? comm_or_null()->rank : 0);
  return 1;
}

static int l_size(lua_State *L) {
  lua_pushinteger(L, comm_or_null() ? comm_or_null()->size : 1);
  return 1;
}

static int l_installed(lua_State *L) {
  lua_pushboolean(L, comm_or_null() != NULL);
  return 1;
}

static float *check_contiguous(lua_State *L, int idx, const char *fname, size_t *n) {
  ser_tensor *t = ser_lua_checktensor(L, idx);
  if (!ser_tensor_is_contiguous(t)) luaL_error(L, "%s: the tensor must be contiguous (clone it first)", fname);
  *n = (size_t)ser_tensor_numel(t);
  return ser_tensor_data(t);
}

static int l_allreduce(lua_State *L) {
  size_t n;
  float *d = check_contiguous(L, 1, "dist.allreduce", &n);
  static const char *const names[] = {"none", "bf16", "fp16", NULL};
  static const int modes[] = {SER_COMM_F32, SER_COMM_BF16, SER_COMM_F16};
  const int mode = modes[luaL_checkoption(L, 2, "none", names)];
  ser_comm *c = comm_or_null();
  if (c && c->allreduce_f32(d, n, mode, c->ctx)) luaL_error(L, "dist.allreduce: the MPI allreduce failed");
  return 0;
}

static int check_root(lua_State *L, int idx, const char *fname) {
  const lua_Integer root = luaL_optinteger(L, idx, 0);
  ser_comm *c = comm_or_null();
  const int size = c ? c->size : 1;
  if (root < 0 || root >= size) luaL_error(L, "%s: root %d is not a rank of this job (0..%d)", fname, (int)root, size - 1);
  return (int)root;
}

static int l_broadcast(lua_State *L) {
  size_t n;
  float *d = check_contiguous(L, 1, "dist.broadcast", &n);
  const int root = check_root(L, 2, "dist.broadcast");
  ser_comm *c = comm_or_null();
  if (c && c->broadcast(d, n * sizeof(float), root, c->ctx)) luaL_error(L, "dist.broadcast: the MPI broadcast failed");
  return 0;
}

static int l_broadcast_string(lua_State *L) {
  size_t len = 0;
  const char *s = luaL_optlstring(L, 1, "", &len);
  const int root = check_root(L, 2, "dist.broadcast_string");
  ser_comm *c = comm_or_null();
  if (!c) {
    lua_pushlstring(L, s, len);
    return 1;
  }
  uint64_t n = len;
  if (c->broadcast(&n, sizeof n, root, c->ctx)) luaL_error(L, "dist.broadcast_string: the MPI broadcast failed");
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)n);
  if (c->rank == root) memcpy(p, s, (size_t)n);
  if (c->broadcast(p, (size_t)n, root, c->ctx)) luaL_error(L, "dist.broadcast_string: the MPI broadcast failed");
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* Lengths first, then every string padded to the longest: two fixed-size allgathers. */
static int l_allgather_string(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  ser_comm *c = comm_or_null();
  lua_createtable(L, c ? c->size : 1, 0);
  if (!c) {
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    return 1;
  }
  const int size = c->size;
  uint64_t mine = len, *lens = lua_newuserdatauv(L, sizeof(uint64_t) * (size_t)size, 0);
  if (c->allgather(&mine, lens, sizeof mine, c->ctx)) luaL_error(L, "dist.allgather_string: the MPI allgather failed");
  size_t longest = 1;
  for (int r = 0; r < size; r++) longest = lens[r] > longest ? (size_t)lens[r] : longest;
  char *pad = lua_newuserdatauv(L, longest, 0);
  char *all = lua_newuserdatauv(L, longest * (size_t)size, 0);
  memset(pad, 0, longest);
  memcpy(pad, s, len);
  if (c->allgather(pad, all, longest, c->ctx)) luaL_error(L, "dist.allgather_string: the MPI allgather failed");
  for (int r = 0; r < size; r++) {
    lua_pushlstring(L, all + (size_t)r * longest, (size_t)lens[r]);
    lua_rawseti(L, -5, r + 1);
  }
  lua_pop(L, 3);
  return 1;
}

static int l_barrier(lua_State *L) {
  ser_comm *c = comm_or_null();
  if (c && c->barrier(c->ctx)) luaL_error(L, "dist.barrier: the MPI barrier failed");
  return 0;
}

static int l_activity(lua_State *L) {
  ser_comm_activity("%s", luaL_checkstring(L, 1));
  return 0;
}

static int l_sync_batchnorm(lua_State *L) {
  const int prev = ser_comm_sync_batchnorm();
  if (!lua_isnoneornil(L, 1)) ser_comm_set_sync_batchnorm(lua_toboolean(L, 1));
  lua_pushboolean(L, prev);
  return 1;
}

int ser_lua_open_dist(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"install", l_install},
      {"rank", l_rank},
      {"size", l_size},
      {"installed", l_installed},
      {"allreduce", l_allreduce},
      {"broadcast", l_broadcast},
      {"broadcast_string", l_broadcast_string},
      {"allgather_string", l_allgather_string},
      {"barrier", l_barrier},
      {"activity", l_activity},
      {"sync_batchnorm", l_sync_batchnorm},
      {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
