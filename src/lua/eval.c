/* ser.core.eval: UMAP and the C metrics for Lua.
 *   umap(X, opts)                 -> [n, n_components] tensor, info table
 *   confusion(pred, target, k)    -> k x k table of counts (rows = true class)
 *   trustworthiness(X, Y, k)      -> number
 *   knn_recall(X, Y, k)           -> number
 * Class ids are 1-based here (Lua arrays or tensors of whole numbers); the
 * core takes 0-based ones. Scratch arrays are Lua userdata so that an error
 * raised halfway leaks nothing. */
#include <math.h>
#include <string.h>

#include "eval/metrics.h"
#include "eval/umap.h"
#include "luat.h"

/* A 2-D float matrix argument: a tensor or a nested table (converted in place
 * on the stack by ser_lua_checktensorlike, so the GC owns it). Borrowed. */
static ser_tensor *arg_matrix(lua_State *L, int idx, const char *fname, const char *what) {
  if (!lua_isuserdata(L, idx) && !lua_istable(L, idx))
    luaL_error(L, "%s: %s must be a 2-D tensor or a table of rows, got %s", fname, what,
               luaL_typename(L, idx));
  ser_tensor *t = ser_lua_checktensorlike(L, idx, fname);
  if (t->ndim != 2)
    luaL_error(L, "%s: %s must be 2-D [n, features], got shape %s", fname, what, SER_SHAPE(t));
  return t;
}

/* A contiguous float copy of t in a userdata left on the stack. */
static float *matrix_data(lua_State *L, ser_tensor *t) {
  float *buf = lua_newuserdatauv(L, (size_t)ser_tensor_numel(t) * sizeof(float) + 1, 0);
  ser_tensor_gather_to(t, buf);
  return buf;
}

/* Class ids from a Lua array or a tensor: 1-based whole numbers in 1..k
 * (k <= 0: any positive id). Returns 0-based ids in a userdata left on the stack. */
static int32_t *arg_labels(lua_State *L, int idx, const char *fname, const char *what, int64_t *n_out,
                           int k) {
  ser_tensor *t = ser_lua_totensor(L, idx);
  int64_t n;
  if (t) {
    n = ser_tensor_numel(t);
  } else if (lua_istable(L, idx)) {
    n = (int64_t)lua_rawlen(L, idx);
  } else {
    return luaL_error(L, "%s: %s must be a Lua array or a tensor of class ids, got %s", fname, what,
                      luaL_typename(L, idx)),
           NULL;
  }
  int32_t *ids = lua_newuserdatauv(L, (size_t)n * sizeof(int32_t) + 1, 0);
  for (int64_t i = 0; i < n; i++) {
    double v;
    if (t) {
      v = ser_tensor_get_flat(t, i);
    } else {
      lua_rawgeti(L, idx, (lua_Integer)i + 1);
      if (!lua_isnumber(L, -1))
        luaL_error(L, "%s: %s[%d] is a %s; expected a class id", fname, what, (int)(i + 1),
                   luaL_typename(L, -1));
      v = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    if (!(v >= 1) || v != floor(v) || v > INT32_MAX || (k > 0 && v > k)) {
      /* whole numbers print without a fraction ("4", not "4.0") */
      if (v == floor(v) && fabs(v) < 1e15)
        lua_pushfstring(L, "%I", (lua_Integer)v);
      else
        lua_pushfstring(L, "%f", (lua_Number)v);
      if (k > 0)
        luaL_error(L, "%s: %s[%d] is %s; expected a class id 1..%d", fname, what, (int)(i + 1), lua_tostring(L, -1), k);
      luaL_error(L, "%s: %s[%d] is %s; expected a whole class id >= 1", fname, what, (int)(i + 1), lua_tostring(L, -1));
    }
    ids[i] = (int32_t)v - 1;
  }
  *n_out = n;
  return ids;
}

static const char *const umap_keys[] = {
    "n_neighbors", "n_components", "min_dist", "spread", "n_epochs", "init", "seed",
    "learning_rate", "negative_sample_rate", "repulsion_strength", "local_connectivity",
    "set_op_mix_ratio", "a", "b", NULL};


static int l_umap(lua_State *L) {
  const char *F = "umap";
  ser_tensor *X = arg_matrix(L, 1, F, "X");
  ser_lua_checkoptions(L, 2, umap_keys, F);
  ser_umap_opts o;
  ser_umap_opts_init(&o);
  o.n_neighbors = (int)ser_lua_optinteger(L, 2, "n_neighbors", o.n_neighbors, F);
  o.n_components = (int)ser_lua_optinteger(L, 2, "n_components", o.n_components, F);
  o.min_dist = ser_lua_optnumber(L, 2, "min_dist", o.min_dist, F);
  o.spread = ser_lua_optnumber(L, 2, "spread", o.spread, F);
  o.n_epochs = (int)ser_lua_optinteger(L, 2, "n_epochs", 0, F);
  o.learning_rate = ser_lua_optnumber(L, 2, "learning_rate", o.learning_rate, F);
  o.negative_sample_rate = (int)ser_lua_optinteger(L, 2, "negative_sample_rate", o.negative_sample_rate, F);
  o.repulsion_strength = ser_lua_optnumber(L, 2, "repulsion_strength", o.repulsion_strength, F);
  o.local_connectivity = ser_lua_optnumber(L, 2, "local_connectivity", o.local_connectivity, F);
  o.set_op_mix_ratio = ser_lua_optnumber(L, 2, "set_op_mix_ratio", o.set_op_mix_ratio, F);
  o.a = ser_lua_optnumber(L, 2, "a", 0, F);
  o.b = ser_lua_optnumber(L, 2, "b", 0, F);
  const char *init = ser_lua_optstring(L, 2, "init", "spectral", F);
  if (strcmp(init, "spectral") == 0)
    o.init = SER_UMAP_INIT_SPECTRAL;
  else if (strcmp(init, "random") == 0)
    o.init = SER_UMAP_INIT_RANDOM;
  else
    return luaL_error(L, "umap: option 'init' is '%s'; expected 'spectral' or 'random'", init);
  /* Without a seed the run follows ser.manual_seed through the global
   * generator; the seed used is reported (53 bits, exact in a Lua number). */
  lua_Integer seed = ser_lua_optinteger(L, 2, "seed", -1, F);
  if (seed < -1) return luaL_error(L, "umap: option 'seed' must be >= 0, got %I", seed);
  if (seed >= 0) {
    o.seed = (uint64_t)seed;
  } else {
    ser_rng *g = ser_rng_global();
    o.seed = ((uint64_t)(ser_rng_u32(g) >> 11) << 32) | ser_rng_u32(g);
  }

  ser_umap_info info;
  ser_tensor *Y = NULL;
  if (ser_umap(&Y, X, &o, &info) < 0) return ser_lua_fail(L, F);
  ser_lua_pushtensor(L, Y);
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, info.n_neighbors);
  lua_setfield(L, -2, "n_neighbors");
  lua_pushinteger(L, info.n_epochs);
  lua_setfield(L, -2, "n_epochs");
  lua_pushnumber(L, info.a);
  lua_setfield(L, -2, "a");
  lua_pushnumber(L, info.b);
  lua_setfield(L, -2, "b");
  lua_pushinteger(L, info.n_edges);
  lua_setfield(L, -2, "n_edges");
  lua_pushinteger(L, info.n_graph_components);
  lua_setfield(L, -2, "graph_components");
  lua_pushinteger(L, info.n_random_init);
  lua_setfield(L, -2, "random_init_points");
  lua_pushinteger(L, (lua_Integer)o.seed);
  lua_setfield(L, -2, "seed");
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, info.seconds_knn);
  lua_setfield(L, -2, "knn");
  lua_pushnumber(L, info.seconds_graph);
  lua_setfield(L, -2, "graph");
  lua_pushnumber(L, info.seconds_init);
  lua_setfield(L, -2, "init");
  lua_pushnumber(L, info.seconds_sgd);
  lua_setfield(L, -2, "sgd");
  lua_setfield(L, -2, "seconds");
  return 2;
}

static int l_confusion(lua_State *L) {
  const char *F = "confusion";
  lua_Integer k = luaL_checkinteger(L, 3);
  if (k < 1 || k > 100000) return luaL_error(L, "confusion: n_classes must be in 1..100000, got %d", (int)k);
  int64_t np, nt;
  int32_t *pred = arg_labels(L, 1, F, "pred", &np, (int)k);
  int32_t *target = arg_labels(L, 2, F, "target", &nt, (int)k);
  if (np != nt)
    return luaL_error(L, "confusion: %d predictions but %d targets; expected the same count", (int)np, (int)nt);
  int64_t *conf = lua_newuserdatauv(L, (size_t)k * k * sizeof(int64_t), 0);
  if (ser_metrics_confusion(conf, pred, target, np, (int)k) < 0) return ser_lua_fail(L, F);
  lua_createtable(L, (int)k, 0);
  for (lua_Integer i = 0; i < k; i++) {
    lua_createtable(L, (int)k, 0);
    for (lua_Integer j = 0; j < k; j++) {
      lua_pushinteger(L, conf[i * k + j]);
      lua_rawseti(L, -2, j + 1);
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

typedef int (*pair_metric)(double *, const float *, const float *, int64_t, int64_t, int64_t, int64_t);

static int pair_call(lua_State *L, const char *F, pair_metric fn) {
  ser_tensor *X = arg_matrix(L, 1, F, "X");
  ser_tensor *Y = arg_matrix(L, 2, F, "Y");
  lua_Integer k = luaL_optinteger(L, 3, 5);
  if (X->shape[0] != Y->shape[0])
    return luaL_error(L, "%s: X has %d rows but Y has %d; expected one embedding row per input row", F,
                      (int)X->shape[0], (int)Y->shape[0]);
  float *x = matrix_data(L, X), *y = matrix_data(L, Y);
  double r = 0;
  if (fn(&r, x, y, X->shape[0], X->shape[1], Y->shape[1], (int64_t)k) < 0) return ser_lua_fail(L, F);
  lua_pushnumber(L, r);
  return 1;
}

static int l_trustworthiness(lua_State *L) {
  return pair_call(L, "trustworthiness", ser_metrics_trustworthiness);
}
static int l_knn_recall(lua_State *L) { return pair_call(L, "knn_recall", ser_metrics_knn_recall); }

int ser_lua_open_eval(lua_State *L) {
  static const luaL_Reg fns[] = {{"umap", l_umap},
                                 {"confusion", l_confusion},
                                 {"trustworthiness", l_trustworthiness},
                                 {"knn_recall", l_knn_recall},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
