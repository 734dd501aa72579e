/* ser.core.base: process-wide switches — seed, grad mode, threads, memory, version. */
#include <signal.h>
#include <string.h>

#include "luat.h"
#include "core/cpu.h"
#include "ops/gemm.h"

static int l_manual_seed(lua_State *L) {
  lua_Integer seed = luaL_checkinteger(L, 1);
  ser_manual_seed((uint64_t)seed);
  return 0;
}

/* get_rng_state() -> {six whole numbers}: the global generator (ser_rng_get_words), for a
 * training state; set_rng_state(t) puts one back. Numbers, not a string: JSON holds them exactly. */
static int l_get_rng_state(lua_State *L) {
  uint32_t w[6];
  ser_rng_get_words(ser_rng_global(), w);
  lua_createtable(L, 6, 0);
  for (int i = 0; i < 6; i++) {
    lua_pushinteger(L, (lua_Integer)w[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_set_rng_state(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_rawlen(L, 1) != 6)
    return luaL_error(L, "set_rng_state: expected a list of 6 whole numbers (from get_rng_state), got %d entries",
                      (int)lua_rawlen(L, 1));
  uint32_t w[6];
  for (int i = 0; i < 6; i++) {
    lua_rawgeti(L, 1, i + 1);
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || v < 0 || v > 0xffffffffLL)
      return luaL_error(L, "set_rng_state: entry %d is not a whole number in 0..4294967295", i + 1);
    w[i] = (uint32_t)v;
  }
  if (ser_rng_set_words(ser_rng_global(), w) < 0) return ser_lua_fail(L, "set_rng_state");
  return 0;
}

/* live tensor bytes, peak, and freed blocks kept for reuse */
static int l_memory(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ser_memory_live());
  lua_pushinteger(L, (lua_Integer)ser_memory_peak());
  lua_pushinteger(L, (lua_Integer)ser_memory_cached());
  return 3;
}

static int l_empty_cache(lua_State *L) {
  ser_memory_trim();
  return 0;
}

static int l_reset_peak_memory(lua_State *L) {
  ser_memory_reset_peak();
  return 0;
}

static int l_set_grad_enabled(lua_State *L) {
  luaL_checktype(L, 1, LUA_TBOOLEAN);
  lua_pushboolean(L, ser_set_grad_enabled(lua_toboolean(L, 1)));
  return 1;
}

static int l_is_grad_enabled(lua_State *L) {
  lua_pushboolean(L, ser_grad_enabled());
  return 1;
}

/* no_grad(fn, ...): runs fn with grad mode off and restores it even on error. */
static int l_no_grad(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int prev = ser_set_grad_enabled(0);
  int nargs = lua_gettop(L) - 1;
  int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
  ser_set_grad_enabled(prev);
  if (status != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

static int l_num_threads(lua_State *L) {
  lua_pushinteger(L, ser_num_threads());
  return 1;
}

static int l_set_num_threads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 0 || n > 1024) return luaL_error(L, "set_num_threads: %d threads; expected 1..1024 (0 = all cores)", (int)n);
  ser_set_num_threads((int)n);
  return 0;
}

static int l_blas_info(lua_State *L) {
  lua_pushstring(L, ser_blas_info());
  return 1;
}

static int l_gemm_info(lua_State *L) {
  lua_pushstring(L, ser_gemm_info());
  return 1;
}

/* isa_info() -> the kernels' instruction-set level as serlua -v shows it, that level's
 * name and the CPU's own (src/core/cpu.h; SER_ISA may lower the first below the last). */
static int l_isa_info(lua_State *L) {
  lua_pushstring(L, ser_cpu_info());
  lua_pushstring(L, ser_isa_name(ser_cpu_level()));
  lua_pushstring(L, ser_isa_name(ser_cpu_detected_level()));
  return 3;
}

static int l_op_names(lua_State *L) {
  lua_createtable(L, SER_OP_COUNT, 0);
  for (int i = 0; i < SER_OP_COUNT; i++) {
    lua_pushstring(L, ser_op_table[i].name);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* SIGINT -> a flag the training loop polls, so Ctrl-C stops after the batch.
 * A second Ctrl-C while the flag is still set terminates, as users expect.
 * catch_interrupt(false) puts back whatever handler was there before (the
 * REPL's own, for instance), not the default one. */
static volatile sig_atomic_t interrupted;
static struct sigaction previous_sigint;
static int catching;

static void on_sigint(int sig) {
  if (interrupted) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  interrupted = 1;
}

static int l_catch_interrupt(lua_State *L) {
  int on = lua_toboolean(L, 1);
  interrupted = 0;
  if (on && !catching) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_sigint);
    catching = 1;
  } else if (!on && catching) {
    sigaction(SIGINT, &previous_sigint, NULL);
    catching = 0;
  }
  return 0;
}

static int l_interrupted(lua_State *L) {
  lua_pushboolean(L, interrupted);
  if (lua_toboolean(L, 1)) interrupted = 0;
  return 1;
}

static const luaL_Reg functions[] = {{"manual_seed", l_manual_seed},
                                     {"get_rng_state", l_get_rng_state},
                                     {"set_rng_state", l_set_rng_state},
                                     {"memory", l_memory},
                                     {"reset_peak_memory", l_reset_peak_memory},
                                     {"empty_cache", l_empty_cache},
                                     {"set_grad_enabled", l_set_grad_enabled},
                                     {"is_grad_enabled", l_is_grad_enabled},
                                     {"no_grad", l_no_grad},
                                     {"num_threads", l_num_threads},
                                     {"set_num_threads", l_set_num_threads},
                                     {"blas_info", l_blas_info},
                                     {"gemm_info", l_gemm_info},
                                     {"isa_info", l_isa_info},
                                     {"op_names", l_op_names},
                                     {"catch_interrupt", l_catch_interrupt},
                                     {"interrupted", l_interrupted},
                                     {NULL, NULL}};

int ser_lua_open_base(lua_State *L) {
  ser_threads_init();
  luaL_newlib(L, functions);
  lua_pushstring(L, SER_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
