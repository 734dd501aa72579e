/* ser.core.nn_transformer: the C side of ser.nn.functional's transformer ops
 * (merged into ser.nn.functional by lua/ser/nn/functional.lua). Conversion
 * and argument checks only; the work is in src/ops/.
 *
 *   F.layer_norm(x, normalized_shape, weight, bias, eps)   normalized_shape: n or {n}, x's last dim;
 *                                                           weight, bias optional; eps default 1e-5
 *   F.gelu(x, {approximate = "none"})                       exact erf form
 *   F.scaled_dot_product_attention(q, k, v, {lengths =, heads =, scale =})
 *       q [B, Tq, E], k, v [B, Tk, E]; heads (default 1) split E; lengths: B key counts
 *       (a table or a 1-d tensor; keys past them are masked); scale default 1/sqrt(E/heads) */
#include <math.h>
#include <string.h>

#include "luat.h"

static int l_layer_norm(lua_State *L) {
  const char *fname = "layer_norm";
  ser_tensor *x = ser_lua_checktensor(L, 1);
  int64_t last = x->ndim > 0 ? x->shape[x->ndim - 1] : 0;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, 2);
    if (n != 1)
      return luaL_error(L, "%s: normalized_shape has %d entries; only the last dim is supported (normalized_shape = {%I})",
                        fname, (int)n, (lua_Integer)last);
    lua_geti(L, 2, 1);
    lua_replace(L, 2);
  }
  int isint = 0;
  lua_Integer d = lua_tointegerx(L, 2, &isint);
  if (!isint)
    return luaL_error(L, "%s: normalized_shape must be an integer or {integer} (the input's last dim), got %s", fname,
                      luaL_typename(L, 2));
  if (d != last)
    return luaL_error(L, "%s: normalized_shape [%I] does not match the last dim of input %s", fname, (lua_Integer)d,
                      ser_shape_str(x->ndim, x->shape));
  ser_tensor *w = ser_lua_opttensor(L, 3), *b = ser_lua_opttensor(L, 4), *y = NULL;
  double eps = luaL_optnumber(L, 5, 1e-5);
  SER_LUA_TRY(L, fname, ser_layer_norm(&y, x, w, b, eps));
  ser_lua_pushtensor(L, y);
  return 1;
}

static int l_gelu(lua_State *L) {
  static const char *const allowed[] = {"approximate", NULL};
  ser_tensor *x = ser_lua_checktensor(L, 1), *y = NULL;
  ser_lua_checkoptions(L, 2, allowed, "gelu");
  const char *approx = ser_lua_optstring(L, 2, "approximate", "none", "gelu");
  if (strcmp(approx, "none") != 0)
    return luaL_error(L, "gelu: approximate = '%s' is not supported; expected 'none' (the exact erf form)", approx);
  SER_LUA_TRY(L, "gelu", ser_gelu(&y, x));
  ser_lua_pushtensor(L, y);
  return 1;
}

/* opts.lengths -> B int32 key counts in a userdata left on the stack (freed by the GC
 * even when a later check raises); NULL when absent. Range checks are the core's. */
static const int32_t *read_lengths(lua_State *L, int opts, int64_t B, const char *fname) {
  if (lua_isnoneornil(L, opts) || lua_getfield(L, opts, "lengths") == LUA_TNIL) return NULL;
  int idx = lua_gettop(L);
  ser_tensor *t = ser_lua_totensor(L, idx);
  if (!t && !lua_istable(L, idx))
    luaL_error(L, "%s: option 'lengths' must be a table of %I integers or a 1-d tensor, got %s", fname, (lua_Integer)B,
               luaL_typename(L, idx));
  int64_t n = t ? (t->ndim == 1 ? t->shape[0] : -1) : (int64_t)luaL_len(L, idx);
  if (n != B)
    luaL_error(L, "%s: option 'lengths' has %s entries, q has batch size %I", fname,
               n < 0 ? "a non-1-d tensor of" : lua_pushfstring(L, "%I", (lua_Integer)n), (lua_Integer)B);
  int32_t *len = lua_newuserdatauv(L, (size_t)B * sizeof(int32_t), 0);
  for (int64_t i = 0; i < B; i++) {
    double v;
    if (t) {
      v = ser_tensor_get_flat(t, i);
    } else {
      lua_geti(L, idx, i + 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "%s: lengths[%I] must be a number, got %s", fname, (lua_Integer)(i + 1), luaL_typename(L, -1));
      v = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    if (v != floor(v) || !(v >= -2147483648.0 && v <= 2147483647.0))
      luaL_error(L, "%s: lengths[%I] must be a whole number of keys, got %f", fname, (lua_Integer)(i + 1), v);
    len[i] = (int32_t)v;
  }
  return len;
}

static int l_attention(lua_State *L) {
  const char *fname = "scaled_dot_product_attention";
  static const char *const allowed[] = {"lengths", "heads", "scale", NULL};
  ser_tensor *q = ser_lua_checktensor(L, 1), *k = ser_lua_checktensor(L, 2), *v = ser_lua_checktensor(L, 3);
  ser_lua_checkoptions(L, 4, allowed, fname);
  lua_Integer heads = ser_lua_optinteger(L, 4, "heads", 1, fname);
  if (heads < 1 || heads > 0x7fffffff) return luaL_error(L, "%s: option 'heads' must be >= 1, got %I", fname, heads);
  const int64_t E = q->ndim == 3 ? q->shape[2] : 0;
  double scale = ser_lua_optnumber(L, 4, "scale", E > 0 ? 1.0 / sqrt((double)E / (double)heads) : 1.0, fname);
  const int32_t *len = q->ndim == 3 ? read_lengths(L, 4, q->shape[0], fname) : NULL;
  ser_tensor *y = NULL;
  SER_LUA_TRY(L, fname, ser_scaled_dot_product_attention(&y, q, k, v, len, (int)heads, scale));
  ser_lua_pushtensor(L, y);
  return 1;
}

int ser_lua_open_nn_transformer(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"layer_norm", l_layer_norm},
      {"gelu", l_gelu},
      {"scaled_dot_product_attention", l_attention},
      {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
