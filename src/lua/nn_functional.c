/* ser.core.nn_cnn: the C side of ser.nn.functional for the convolutional ops
 * (merged into ser.nn.functional by lua/ser/nn/functional.lua) and the amp
 * switch (placed as ser.set_amp by lua/ser/init.lua).
 *
 *   F.conv2d(x, w, b, {stride=, padding=, dilation=})    sizes: n or {h, w}
 *   F.conv1d(x, w, b, {stride=, padding=, dilation=, groups=})    sizes: n or {n}; groups: conv1d only
 *   F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
 *   F.batch_norm_relu(same arguments)  relu(batch_norm(...)) as one op (nn.Sequential fuses the pair)
 *   F.max_pool2d(x, kernel, {stride=, padding=})          also max_pool1d, avg_pool2d, avg_pool1d
 *   F.adaptive_avg_pool2d(x, size)                        also adaptive_avg_pool1d
 *   F.linear(x, w, b)   F.dropout(x, p, training)   F.leaky_relu(x, slope)
 *   F.relu(x)   F.sigmoid(x)   F.tanh(x)   (the core's activations)
 *   ser.set_amp(on) -> previous setting; in this module also amp() -> bool,
 *   bf16_supported() -> bool and monotonic() -> seconds (benchmark clock),
 *   amp_rule([mode]) -> previous mode ("auto" / "bf16" / "fp32": which GEMMs amp
 *   gives to bf16, src/ops/gemm_rule.c) and amp_rule_lookup(ta, tb, M, N, K)
 *   -> bf16?, fp32 us, bf16 us (the decision for a product and its class's times) */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "luat.h"

/* A size argument: a positive/non-negative integer, or a table of nd of them
 * (a 1-element table is accepted for 1-d). Raises with fname and what. */
static void size_value(lua_State *L, int idx, int nd, int *out, int min, const char *fname, const char *what) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    int isint = 0; /* 2.0 (say, from n / 2) counts as the integer 2 */
    lua_Integer v = lua_tointegerx(L, idx, &isint);
    if (!isint || v < min || v > 0x3fffffff)
      luaL_error(L, "%s: %s must be an integer >= %d, got %s", fname, what, min, luaL_tolstring(L, idx, NULL));
    for (int i = 0; i < nd; i++) out[i] = (int)v;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE)
    luaL_error(L, "%s: %s must be a number or a table of %d numbers, got %s", fname, what, nd,
               luaL_typename(L, idx));
  int n = (int)luaL_len(L, idx);
  if (n != nd) luaL_error(L, "%s: %s must have %d entries, got %d", fname, what, nd, n);
  for (int i = 0; i < nd; i++) {
    lua_geti(L, idx, i + 1);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min || v > 0x3fffffff)
      luaL_error(L, "%s: %s[%d] must be an integer >= %d, got %s", fname, what, i + 1, min, luaL_tolstring(L, -1, NULL));
    out[i] = (int)v;
    lua_pop(L, 1);
  }
}

/* opts.key as a size (absent: def in every entry). */
static void opt_size(lua_State *L, int opts, const char *key, int nd, int *out, int def, int min, const char *fname) {
  for (int i = 0; i < nd; i++) out[i] = def;
  if (lua_isnoneornil(L, opts)) return;
  if (!lua_istable(L, opts)) luaL_error(L, "%s: options must be a table, got %s", fname, luaL_typename(L, opts));
  if (lua_getfield(L, opts, key) != LUA_TNIL) {
    char what[64];
    snprintf(what, sizeof what, "option '%s'", key);
    size_value(L, lua_gettop(L), nd, out, min, fname, what);
  }
  lua_pop(L, 1);
}


static int conv(lua_State *L, int nd) {
  const char *fname = nd == 2 ? "conv2d" : "conv1d";
  static const char *const allowed[] = {"stride", "padding", "dilation", "groups", NULL};
  ser_tensor *x = ser_lua_checktensor(L, 1), *w = ser_lua_checktensor(L, 2), *b = ser_lua_opttensor(L, 3);
  ser_lua_checkoptions(L, 4, allowed, fname);
  ser_conv_opts o = SER_CONV_OPTS_DEFAULT;
  opt_size(L, 4, "stride", nd, o.stride, 1, 1, fname);
  opt_size(L, 4, "padding", nd, o.padding, 0, 0, fname);
  opt_size(L, 4, "dilation", nd, o.dilation, 1, 1, fname);
  int groups = 1;
  opt_size(L, 4, "groups", 1, &groups, 1, 1, fname);
  if (groups > 1 && nd == 2) return luaL_error(L, "conv2d: option 'groups' is implemented for conv1d only, got %d", groups);
  ser_tensor *y = NULL;
  SER_LUA_TRY(L, fname, nd == 2 ? ser_conv2d(&y, x, w, b, &o)
                        : groups > 1 ? ser_conv1d_grouped(&y, x, w, b, groups, &o) : ser_conv1d(&y, x, w, b, &o));
  ser_lua_pushtensor(L, y);
  return 1;
}
static int l_conv2d(lua_State *L) { return conv(L, 2); }
static int l_conv1d(lua_State *L) { return conv(L, 1); }

static int batch_norm(lua_State *L, int relu) {
  ser_tensor *x = ser_lua_checktensor(L, 1), *rm = ser_lua_opttensor(L, 2), *rv = ser_lua_opttensor(L, 3);
  ser_tensor *w = ser_lua_opttensor(L, 4), *b = ser_lua_opttensor(L, 5);
  int training = lua_toboolean(L, 6); /* PyTorch's default: training=False */
  double momentum = luaL_optnumber(L, 7, 0.1), eps = luaL_optnumber(L, 8, 1e-5);
  ser_tensor *y = NULL;
  if (relu)
    SER_LUA_TRY(L, "batch_norm_relu", ser_batch_norm_relu(&y, x, rm, rv, w, b, training, momentum, eps));
  else
    SER_LUA_TRY(L, "batch_norm", ser_batch_norm(&y, x, rm, rv, w, b, training, momentum, eps));
  ser_lua_pushtensor(L, y);
  return 1;
}
static int l_batch_norm(lua_State *L) { return batch_norm(L, 0); }
static int l_batch_norm_relu(lua_State *L) { return batch_norm(L, 1); }

static void pool_opts(lua_State *L, int nd, ser_pool_opts *o, const char *fname) {
  static const char *const allowed[] = {"stride", "padding", NULL};
  ser_lua_checkoptions(L, 3, allowed, fname);
  memset(o, 0, sizeof *o);
  size_value(L, 2, nd, o->kernel, 1, fname, "kernel size");
  opt_size(L, 3, "stride", nd, o->stride, 0, 1, fname); /* 0 = the kernel size */
  opt_size(L, 3, "padding", nd, o->padding, 0, 0, fname);
}

static int max_pool(lua_State *L, int nd) {
  const char *fname = nd == 2 ? "max_pool2d" : "max_pool1d";
  ser_tensor *x = ser_lua_checktensor(L, 1), *y = NULL;
  ser_pool_opts o;
  pool_opts(L, nd, &o, fname);
  SER_LUA_TRY(L, fname, nd == 2 ? ser_max_pool2d(&y, NULL, x, &o) : ser_max_pool1d(&y, NULL, x, &o));
  ser_lua_pushtensor(L, y);
  return 1;
}
static int l_max_pool2d(lua_State *L) { return max_pool(L, 2); }
static int l_max_pool1d(lua_State *L) { return max_pool(L, 1); }

static int avg_pool(lua_State *L, int nd) {
  const char *fname = nd == 2 ? "avg_pool2d" : "avg_pool1d";
  ser_tensor *x = ser_lua_checktensor(L, 1), *y = NULL;
  ser_pool_opts o;
  pool_opts(L, nd, &o, fname);
  SER_LUA_TRY(L, fname, nd == 2 ? ser_avg_pool2d(&y, x, &o) : ser_avg_pool1d(&y, x, &o));
  ser_lua_pushtensor(L, y);
  return 1;
}
static int l_avg_pool2d(lua_State *L) { return avg_pool(L, 2); }
static int l_avg_pool1d(lua_State *L) { return avg_pool(L, 1); }

static int adaptive(lua_State *L, int nd) {
  const char *fname = nd == 2 ? "adaptive_avg_pool2d" : "adaptive_avg_pool1d";
  ser_tensor *x = ser_lua_checktensor(L, 1), *y = NULL;
  int size[2];
  size_value(L, 2, nd, size, 1, fname, "output size");
  SER_LUA_TRY(L, fname, nd == 2 ? ser_adaptive_avg_pool2d(&y, x, size[0], size[1]) : ser_adaptive_avg_pool1d(&y, x, size[0]));
  ser_lua_pushtensor(L, y);
  return 1;
}
static int l_adaptive_avg_pool2d(lua_State *L) { return adaptive(L, 2); }
static int l_adaptive_avg_pool1d(lua_State *L) { return adaptive(L, 1); }

static int l_linear(lua_State *L) {
  ser_tensor *x = ser_lua_checktensor(L, 1), *w = ser_lua_checktensor(L, 2), *b = ser_lua_opttensor(L, 3), *y = NULL;
  SER_LUA_TRY(L, "linear", ser_linear(&y, x, w, b));
  ser_lua_pushtensor(L, y);
  return 1;
}

static int l_dropout(lua_State *L) {
  ser_tensor *x = ser_lua_checktensor(L, 1), *y = NULL;
  double p = luaL_optnumber(L, 2, 0.5);
  int training = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3); /* PyTorch's default: training=True */
  SER_LUA_TRY(L, "dropout", ser_dropout(&y, x, p, training, NULL));
  ser_lua_pushtensor(L, y);
  return 1;
}

static int l_leaky_relu(lua_State *L) {
  ser_tensor *x = ser_lua_checktensor(L, 1), *y = NULL;
  SER_LUA_TRY(L, "leaky_relu", ser_leaky_relu(&y, x, luaL_optnumber(L, 2, 0.01)));
  ser_lua_pushtensor(L, y);
  return 1;
}

/* The core's activations under their F names (nn.ReLU, nn.Sigmoid, nn.Tanh call these). */
static int unary(lua_State *L, int (*fn)(ser_tensor **, ser_tensor *), const char *fname) {
  ser_tensor *x = ser_lua_checktensor(L, 1), *y = NULL;
  SER_LUA_TRY(L, fname, fn(&y, x));
  ser_lua_pushtensor(L, y);
  return 1;
}
static int l_relu(lua_State *L) { return unary(L, ser_relu, "relu"); }
static int l_sigmoid(lua_State *L) { return unary(L, ser_sigmoid, "sigmoid"); }
static int l_tanh(lua_State *L) { return unary(L, ser_tanh, "tanh"); }

static int l_set_amp(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, ser_set_amp(lua_toboolean(L, 1)));
  return 1;
}

static int l_amp(lua_State *L) {
  lua_pushboolean(L, ser_amp_enabled());
  return 1;
}

/* Monotonic wall-clock seconds (os.clock counts CPU time of all threads, os.time
 * whole seconds): the benchmarks' clock and ser.train.progress.now. */
static int l_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + 1e-9 * (lua_Number)ts.tv_nsec);
  return 1;
}

static int l_amp_rule(lua_State *L) {
  static const char *const names[] = {"auto", "bf16", "fp32", NULL};
  const int m = lua_isnoneornil(L, 1) ? -1 : luaL_checkoption(L, 1, NULL, names);
  lua_pushstring(L, names[ser_gemm_set_amp_rule(m)]);
  return 1;
}

static int l_amp_rule_lookup(lua_State *L) {
  const int ta = lua_toboolean(L, 1), tb = lua_toboolean(L, 2);
  const lua_Integer M = luaL_checkinteger(L, 3), N = luaL_checkinteger(L, 4), K = luaL_checkinteger(L, 5);
  if (M < 1 || N < 1 || K < 1 || M > 1 << 20 || N > 1 << 20 || K > 1 << 20)
    return luaL_error(L, "amp_rule_lookup: M, N, K must be in 1..2^20, got %d, %d, %d", (int)M, (int)N, (int)K);
  double f = 0, b = 0;
  lua_pushboolean(L, ser_gemm_rule_lookup(ta, tb, (int)M, (int)N, (int)K, &f, &b));
  lua_pushnumber(L, f);
  lua_pushnumber(L, b);
  return 3;
}

static int l_bf16_supported(lua_State *L) {
  lua_pushboolean(L, ser_bf16_supported());
  return 1;
}

int ser_lua_open_nn_functional_cnn(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"conv2d", l_conv2d},
      {"conv1d", l_conv1d},
      {"batch_norm", l_batch_norm},
      {"batch_norm_relu", l_batch_norm_relu},
      {"max_pool2d", l_max_pool2d},
      {"max_pool1d", l_max_pool1d},
      {"avg_pool2d", l_avg_pool2d},
      {"avg_pool1d", l_avg_pool1d},
      {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
      {"adaptive_avg_pool1d", l_adaptive_avg_pool1d},
      {"linear", l_linear},
      {"dropout", l_dropout},
      {"leaky_relu", l_leaky_relu},
      {"relu", l_relu},
      {"sigmoid", l_sigmoid},
      {"tanh", l_tanh},
      {"set_amp", l_set_amp},
      {"amp", l_amp},
      {"bf16_supported", l_bf16_supported},
      {"amp_rule", l_amp_rule},
      {"amp_rule_lookup", l_amp_rule_lookup},
      {"monotonic", l_monotonic},
      {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
