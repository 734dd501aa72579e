/* ser.tensor: the tensor type, its constructors, methods and metamethods.
 * Dims and indices are 1-based here (negative count from the end) and 0-based
 * in the core; conversion happens only in this file and luat.c. */
#include <math.h>
#include <string.h>

#include "luat.h"

/* The box layout is shared with luat.c. */
typedef struct {
  ser_tensor *t;
} tensor_box;

#define CHECK(L, name, expr) SER_LUA_TRY(L, name, expr)

static ser_tensor *self(lua_State *L) { return ser_lua_checktensor(L, 1); }

/* ---- constructors ---- */

/* T.new{{1,2},{3,4}} builds from a table; T.new(t) copies a tensor; T.new(x) a 0-d tensor. */
static int t_new(lua_State *L) {
  int was_tensor = ser_lua_totensor(L, 1) != NULL;
  ser_tensor *t = ser_lua_checktensorlike(L, 1, "tensor.new");
  if (was_tensor)
    ser_lua_pushtensor(L, ser_tensor_clone_raw(t));
  else
    lua_pushvalue(L, 1); /* the freshly converted tensor */
  return 1;
}

static int make_filled(lua_State *L, const char *name, float value, int uninit) {
  int64_t shape[SER_MAX_DIMS];
  int nd = ser_lua_checkshape(L, 1, shape, name);
  ser_lua_pushtensor(L, uninit ? ser_tensor_zeros(nd, shape) : ser_tensor_full(nd, shape, value));
  return 1;
}

static int t_zeros(lua_State *L) { return make_filled(L, "tensor.zeros", 0, 1); }
static int t_ones(lua_State *L) { return make_filled(L, "tensor.ones", 1, 0); }
static int t_empty(lua_State *L) { return make_filled(L, "tensor.empty", 0, 1); }

static int t_full(lua_State *L) {
  int64_t shape[SER_MAX_DIMS];
  luaL_checktype(L, 1, LUA_TTABLE);
  int nd = ser_lua_checkshape(L, 1, shape, "tensor.full");
  ser_lua_pushtensor(L, ser_tensor_full(nd, shape, (float)luaL_checknumber(L, 2)));
  return 1;
}

static int t_rand_like(lua_State *L, const char *name, int normal) {
  int64_t shape[SER_MAX_DIMS];
  int nd = ser_lua_checkshape(L, 1, shape, name);
  ser_tensor *t = ser_tensor_empty(nd, shape);
  ser_lua_pushtensor(L, t);
  if (normal)
    ser_tensor_fill_normal(t, 0, 1, NULL);
  else
    ser_tensor_fill_uniform(t, 0, 1, NULL);
  return 1;
}
static int t_rand(lua_State *L) { return t_rand_like(L, "tensor.rand", 0); }
static int t_randn(lua_State *L) { return t_rand_like(L, "tensor.randn", 1); }

/* arange(end) | arange(start, end [, step]) as torch.arange (end excluded). */
static int t_arange(lua_State *L) {
  double start = 0, end, step = 1;
  if (lua_gettop(L) == 1) {
    end = luaL_checknumber(L, 1);
  } else {
    start = luaL_checknumber(L, 1);
    end = luaL_checknumber(L, 2);
    step = luaL_optnumber(L, 3, 1);
  }
  ser_tensor *t;
  CHECK(L, "tensor.arange", ser_tensor_arange(&t, start, end, step));
  ser_lua_pushtensor(L, t);
  return 1;
}

static int t_fromfile(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int64_t shape[SER_MAX_DIMS];
  luaL_checktype(L, 2, LUA_TTABLE);
  int nd = ser_lua_checkshape(L, 2, shape, "tensor.fromfile");
  ser_tensor *t;
  CHECK(L, "tensor.fromfile", ser_tensor_fromfile(&t, path, nd, shape));
  ser_lua_pushtensor(L, t);
  return 1;
}

static int t_is_tensor(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, SER_TENSOR_MT) != NULL);
  return 1;
}

static int t_cat(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 1);
  if (n < 1) return luaL_error(L, "tensor.cat: expected a non-empty list of tensors");
  if (n > 4096) return luaL_error(L, "tensor.cat: %d tensors; at most 4096 at once", n);
  ser_tensor **xs = lua_newuserdatauv(L, (size_t)n * sizeof *xs, 0); /* freed by the GC */
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    xs[i] = ser_lua_totensor(L, -1);
    if (!xs[i]) return luaL_error(L, "tensor.cat: element %d is %s, expected a tensor", i + 1, luaL_typename(L, -1));
    lua_pop(L, 1); /* still referenced by the list */
  }
  int dim = lua_isnoneornil(L, 2) ? 0 : ser_lua_checkdim(L, 2, xs[0]->ndim, "tensor.cat");
  ser_tensor *out;
  CHECK(L, "cat", ser_cat(&out, xs, n, dim));
  ser_lua_pushtensor(L, out);
  return 1;
}

/* ---- inspection ---- */

static int m_shape(lua_State *L) {
  ser_tensor *t = self(L);
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->shape[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_size(lua_State *L) {
  ser_tensor *t = self(L);
  if (lua_isnoneornil(L, 2)) return m_shape(L);
  lua_pushinteger(L, t->shape[ser_lua_checkdim(L, 2, t->ndim, "size")]);
  return 1;
}

static int m_dim(lua_State *L) {
  lua_pushinteger(L, self(L)->ndim);
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, ser_tensor_numel(self(L)));
  return 1;
}

static int m_is_contiguous(lua_State *L) {
  lua_pushboolean(L, ser_tensor_is_contiguous(self(L)));
  return 1;
}

static int m_item(lua_State *L) {
  ser_tensor *t = self(L);
  if (ser_tensor_numel(t) != 1)
    return luaL_error(L, "item: tensor %s has %d elements; item() needs exactly one", SER_SHAPE(t),
                      (int)ser_tensor_numel(t));
  lua_pushnumber(L, ser_tensor_get_flat(t, 0));
  return 1;
}

static void push_table(lua_State *L, const ser_tensor *t, int dim, int64_t offset) {
  lua_createtable(L, (int)t->shape[dim], 0);
  for (int64_t i = 0; i < t->shape[dim]; i++) {
    int64_t off = offset + i * t->stride[dim];
    if (dim == t->ndim - 1)
      lua_pushnumber(L, t->storage->data[off]);
    else
      push_table(L, t, dim + 1, off);
    lua_rawseti(L, -2, i + 1);
  }
}

static int m_totable(lua_State *L) {
  ser_tensor *t = self(L);
  if (t->ndim == 0)
    lua_pushnumber(L, ser_tensor_get_flat(t, 0));
  else
    push_table(L, t, 0, t->offset);
  return 1;
}

static int m_tofile(lua_State *L) {
  ser_tensor *t = self(L);
  CHECK(L, "tofile", ser_tensor_tofile(t, luaL_checkstring(L, 2)));
  lua_settop(L, 1);
  return 1;
}

/* ---- views and copies ---- */

static int m_view_like(lua_State *L, int copy_ok) {
  ser_tensor *t = self(L), *out;
  int64_t shape[SER_MAX_DIMS];
  int nd = ser_lua_checkshape(L, 2, shape, copy_ok ? "reshape" : "view");
  CHECK(L, copy_ok ? "reshape" : "view", copy_ok ? ser_reshape(&out, t, nd, shape) : ser_view(&out, t, nd, shape));
  ser_lua_pushtensor(L, out);
  return 1;
}
static int m_view(lua_State *L) { return m_view_like(L, 0); }
static int m_reshape(lua_State *L) { return m_view_like(L, 1); }

static int m_permute(lua_State *L) {
  ser_tensor *t = self(L), *out;
  int perm[SER_MAX_DIMS], n = 0;
  int table = lua_istable(L, 2);
  int count = table ? (int)lua_rawlen(L, 2) : lua_gettop(L) - 1;
  if (count != t->ndim)
    return luaL_error(L, "permute: got %d dims for a %d-d tensor %s; expected a permutation of all dims", count, t->ndim,
                      SER_SHAPE(t));
  for (int i = 0; i < count; i++) {
    if (table) lua_rawgeti(L, 2, i + 1);
    perm[n++] = ser_lua_checkdim(L, table ? -1 : i + 2, t->ndim, "permute");
    if (table) lua_pop(L, 1);
  }
  CHECK(L, "permute", ser_permute(&out, t, perm));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_transpose(lua_State *L) {
  ser_tensor *t = self(L), *out;
  int d0 = lua_isnoneornil(L, 2) ? 0 : ser_lua_checkdim(L, 2, t->ndim, "transpose");
  int d1 = lua_isnoneornil(L, 3) ? 1 : ser_lua_checkdim(L, 3, t->ndim, "transpose");
  if (t->ndim < 2 && lua_isnoneornil(L, 2)) return luaL_error(L, "transpose: tensor %s has fewer than 2 dims", SER_SHAPE(t));
  CHECK(L, "transpose", ser_transpose(&out, t, d0, d1));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_narrow(lua_State *L) {
  ser_tensor *t = self(L), *out;
  int dim = ser_lua_checkdim(L, 2, t->ndim, "narrow");
  lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
  if (start < 0) start += t->shape[dim] + 1;
  CHECK(L, "narrow", ser_narrow(&out, t, dim, start - 1, len));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_select(lua_State *L) {
  ser_tensor *t = self(L), *out;
  int dim = ser_lua_checkdim(L, 2, t->ndim, "select");
  lua_Integer i = luaL_checkinteger(L, 3);
  if (i < 0) i += t->shape[dim] + 1;
  CHECK(L, "select", ser_select(&out, t, dim, i - 1));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_contiguous(lua_State *L) {
  ser_tensor *out;
  CHECK(L, "contiguous", ser_contiguous(&out, self(L)));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_clone(lua_State *L) {
  ser_tensor *t = self(L), *out;
  /* clone keeps history: a contiguous copy recorded like contiguous() */
  if (t->requires_grad && ser_grad_enabled()) {
    ser_tensor *z = ser_tensor_zeros(0, NULL);
    ser_lua_pushtensor(L, z);
    CHECK(L, "clone", ser_add(&out, t, z));
  } else {
    out = ser_tensor_clone_raw(t);
  }
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_squeeze(lua_State *L) {
  ser_tensor *t = self(L), *out;
  int dim = lua_isnoneornil(L, 2) ? -1 : ser_lua_checkdim(L, 2, t->ndim, "squeeze");
  CHECK(L, "squeeze", ser_squeeze(&out, t, dim));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_unsqueeze(lua_State *L) {
  ser_tensor *t = self(L), *out;
  int dim = ser_lua_checkdim(L, 2, t->ndim + 1, "unsqueeze");
  CHECK(L, "unsqueeze", ser_unsqueeze(&out, t, dim));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_flatten(lua_State *L) {
  ser_tensor *t = self(L), *out;
  int nd = t->ndim ? t->ndim : 1;
  int start = lua_isnoneornil(L, 2) ? 0 : ser_lua_checkdim(L, 2, nd, "flatten");
  int end = lua_isnoneornil(L, 3) ? nd - 1 : ser_lua_checkdim(L, 3, nd, "flatten");
  CHECK(L, "flatten", ser_flatten(&out, t, start, end));
  ser_lua_pushtensor(L, out);
  return 1;
}

/* ---- arithmetic ---- */

typedef int (*binary_fn)(ser_tensor **, ser_tensor *, ser_tensor *);

static int binary(lua_State *L, const char *name, binary_fn fn) {
  ser_tensor *a = ser_lua_checktensorlike(L, 1, name);
  ser_tensor *b = ser_lua_checktensorlike(L, 2, name);
  ser_tensor *out;
  CHECK(L, name, fn(&out, a, b));
  ser_lua_pushtensor(L, out);
  return 1;
}
static int m_add(lua_State *L) { return binary(L, "add", ser_add); }
static int m_sub(lua_State *L) { return binary(L, "sub", ser_sub); }
static int m_mul(lua_State *L) { return binary(L, "mul", ser_mul); }
static int m_div(lua_State *L) { return binary(L, "div", ser_div); }
static int m_matmul(lua_State *L) { return binary(L, "matmul", ser_matmul); }

static int compare(lua_State *L, const char *name, ser_cmp c) {
  ser_tensor *a = ser_lua_checktensorlike(L, 1, name), *b = ser_lua_checktensorlike(L, 2, name), *out;
  CHECK(L, name, ser_compare(&out, a, b, c));
  ser_lua_pushtensor(L, out);
  return 1;
}
static int m_eq(lua_State *L) { return compare(L, "eq", SER_CMP_EQ); }
static int m_ne(lua_State *L) { return compare(L, "ne", SER_CMP_NE); }
static int m_lt(lua_State *L) { return compare(L, "lt", SER_CMP_LT); }
static int m_le(lua_State *L) { return compare(L, "le", SER_CMP_LE); }
static int m_gt(lua_State *L) { return compare(L, "gt", SER_CMP_GT); }
static int m_ge(lua_State *L) { return compare(L, "ge", SER_CMP_GE); }

typedef int (*unary_fn)(ser_tensor **, ser_tensor *);
static int unary(lua_State *L, const char *name, unary_fn fn) {
  ser_tensor *out;
  CHECK(L, name, fn(&out, self(L)));
  ser_lua_pushtensor(L, out);
  return 1;
}
static int m_neg(lua_State *L) { return unary(L, "neg", ser_neg); }
static int m_exp(lua_State *L) { return unary(L, "exp", ser_exp); }
static int m_log(lua_State *L) { return unary(L, "log", ser_log); }
static int m_sqrt(lua_State *L) { return unary(L, "sqrt", ser_sqrt); }
static int m_abs(lua_State *L) { return unary(L, "abs", ser_abs); }
static int m_relu(lua_State *L) { return unary(L, "relu", ser_relu); }
static int m_sigmoid(lua_State *L) { return unary(L, "sigmoid", ser_sigmoid); }
static int m_tanh(lua_State *L) { return unary(L, "tanh", ser_tanh); }

static int m_pow(lua_State *L) {
  ser_tensor *out;
  CHECK(L, "pow", ser_pow(&out, self(L), (float)luaL_checknumber(L, 2)));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_clamp(lua_State *L) {
  ser_tensor *out;
  float lo = lua_isnoneornil(L, 2) ? -INFINITY : (float)luaL_checknumber(L, 2);
  float hi = lua_isnoneornil(L, 3) ? INFINITY : (float)luaL_checknumber(L, 3);
  CHECK(L, "clamp", ser_clamp(&out, self(L), lo, hi));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int softmax_like(lua_State *L, const char *name, int take_log) {
  ser_tensor *t = self(L), *out;
  int dim = lua_isnoneornil(L, 2) ? t->ndim - 1 : ser_lua_checkdim(L, 2, t->ndim, name);
  CHECK(L, name, take_log ? ser_log_softmax(&out, t, dim) : ser_softmax(&out, t, dim));
  ser_lua_pushtensor(L, out);
  return 1;
}
static int m_softmax(lua_State *L) { return softmax_like(L, "softmax", 0); }
static int m_log_softmax(lua_State *L) { return softmax_like(L, "log_softmax", 1); }

/* ---- reductions ---- */

/* Reads an optional dim or list of dims at idx into a bit mask (all dims if absent). */
static unsigned dims_mask(lua_State *L, int idx, const ser_tensor *t, const char *name) {
  if (lua_isnoneornil(L, idx)) return SER_ALL_DIMS;
  unsigned mask = 0;
  if (lua_istable(L, idx)) {
    int n = (int)lua_rawlen(L, idx);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, i);
      mask |= 1u << ser_lua_checkdim(L, -1, t->ndim, name);
      lua_pop(L, 1);
    }
    return mask;
  }
  return 1u << ser_lua_checkdim(L, idx, t->ndim, name);
}

static int m_sum(lua_State *L) {
  ser_tensor *t = self(L), *out;
  unsigned dims = dims_mask(L, 2, t, "sum");
  CHECK(L, "sum", ser_sum(&out, t, dims, lua_toboolean(L, 3)));
  ser_lua_pushtensor(L, out);
  return 1;
}

static int m_mean(lua_State *L) {
  ser_tensor *t = self(L), *out;
  unsigned dims = dims_mask(L, 2, t, "mean");
  CHECK(L, "mean", ser_mean(&out, t, dims, lua_toboolean(L, 3)));
  ser_lua_pushtensor(L, out);
  return 1;
}

/* var(dims, {unbiased = true, keepdim = false}) like torch.var */
static int var_like(lua_State *L, int take_sqrt) {
  const char *name = take_sqrt ? "std" : "var";
  ser_tensor *t = self(L), *out;
  unsigned dims = dims_mask(L, 2, t, name);
  int unbiased = ser_lua_optboolean(L, 3, "unbiased", 1, name);
  int keepdim = ser_lua_optboolean(L, 3, "keepdim", 0, name);
  CHECK(L, name, take_sqrt ? ser_std(&out, t, dims, unbiased, keepdim) : ser_var(&out, t, dims, unbiased, keepdim));
  ser_lua_pushtensor(L, out);
  return 1;
}
static int m_var(lua_State *L) { return var_like(L, 0); }
static int m_std(lua_State *L) { return var_like(L, 1); }

/* Takes over ix (0-based indices from the core) and returns the 1-based indices Lua shows
 * (NULL with the core's error set when out of memory). */
static ser_tensor *one_based(ser_tensor *ix) {
  ser_tensor *out = NULL;
  ser_add_scalar(&out, ix, 1.0f);
  ser_tensor_release(ix);
  return out;
}

/* max() -> number; max(dim [, keepdim]) -> values, indices (1-based) */
static int extreme(lua_State *L, int want_max) {
  const char *name = want_max ? "max" : "min";
  ser_tensor *t = self(L);
  if (lua_isnoneornil(L, 2)) {
    float v;
    CHECK(L, name, want_max ? ser_max_all(&v, t) : ser_min_all(&v, t));
    lua_pushnumber(L, v);
    return 1;
  }
  int dim = ser_lua_checkdim(L, 2, t->ndim, name);
  ser_tensor *v, *ix;
  CHECK(L, name, want_max ? ser_max_dim(&v, &ix, t, dim, lua_toboolean(L, 3)) : ser_min_dim(&v, &ix, t, dim, lua_toboolean(L, 3)));
  ser_lua_pushtensor(L, v);
  ser_lua_pushtensor(L, one_based(ix));
  return 2;
}
static int m_max(lua_State *L) { return extreme(L, 1); }
static int m_min(lua_State *L) { return extreme(L, 0); }

static int m_argmax(lua_State *L) {
  ser_tensor *t = self(L);
  int dim = lua_isnoneornil(L, 2) ? t->ndim - 1 : ser_lua_checkdim(L, 2, t->ndim, "argmax");
  ser_tensor *v, *ix;
  CHECK(L, "argmax", ser_max_dim(&v, &ix, t, dim, lua_toboolean(L, 3)));
  ser_tensor_release(v);
  ser_lua_pushtensor(L, one_based(ix));
  return 1;
}

/* ---- in place (no autograd) ---- */

static ser_tensor *check_inplace(lua_State *L, const char *name) {
  ser_tensor *t = self(L);
  if (t->requires_grad && ser_grad_enabled())
    luaL_error(L, "%s: in-place change of a tensor that requires grad; wrap it in ser.no_grad(function() ... end)",
               name);
  return t;
}

static int m_fill_(lua_State *L) {
  ser_tensor *t = check_inplace(L, "fill_");
  ser_tensor_fill(t, (float)luaL_checknumber(L, 2));
  lua_settop(L, 1);
  return 1;
}

static int m_zero_(lua_State *L) {
  ser_tensor_fill(check_inplace(L, "zero_"), 0);
  lua_settop(L, 1);
  return 1;
}

static int m_copy_(lua_State *L) {
  ser_tensor *t = check_inplace(L, "copy_");
  ser_tensor *src = ser_lua_checktensorlike(L, 2, "copy_");
  if (ser_tensor_numel(src) == 1 && ser_tensor_numel(t) != 1) {
    ser_tensor_fill(t, ser_tensor_get_flat(src, 0));
  } else {
    CHECK(L, "copy_", ser_tensor_copy_(t, src));
  }
  lua_settop(L, 1);
  return 1;
}

static int m_add_(lua_State *L) {
  ser_tensor *t = check_inplace(L, "add_");
  ser_tensor *src = ser_lua_checktensorlike(L, 2, "add_");
  CHECK(L, "add_", ser_tensor_add_(t, src, (float)luaL_optnumber(L, 3, 1.0)));
  lua_settop(L, 1);
  return 1;
}

static int m_uniform_(lua_State *L) {
  ser_tensor *t = check_inplace(L, "uniform_");
  ser_tensor_fill_uniform(t, (float)luaL_optnumber(L, 2, 0), (float)luaL_optnumber(L, 3, 1), NULL);
  lua_settop(L, 1);
  return 1;
}

static int m_normal_(lua_State *L) {
  ser_tensor *t = check_inplace(L, "normal_");
  ser_tensor_fill_normal(t, (float)luaL_optnumber(L, 2, 0), (float)luaL_optnumber(L, 3, 1), NULL);
  lua_settop(L, 1);
  return 1;
}

/* ---- autograd ---- */

/* x:requires_grad() -> boolean; x:requires_grad(true|false) -> x (marks a leaf) */
static int m_requires_grad(lua_State *L) {
  ser_tensor *t = self(L);
  if (lua_isnone(L, 2)) {
    lua_pushboolean(L, t->requires_grad);
    return 1;
  }
  int on = lua_toboolean(L, 2);
  if (t->grad_fn && !on)
    return luaL_error(L, "requires_grad: this tensor is the result of an op; use x:detach() to stop gradients");
  t->requires_grad = on || t->grad_fn != NULL;
  lua_settop(L, 1);
  return 1;
}

static int m_grad(lua_State *L) {
  ser_tensor *t = self(L);
  if (!t->grad) {
    lua_pushnil(L);
    return 1;
  }
  ser_lua_pushtensor(L, ser_tensor_retain(t->grad));
  return 1;
}

static int m_set_grad(lua_State *L) {
  ser_tensor *t = self(L);
  ser_tensor *g = ser_lua_opttensor(L, 2);
  if (g && !ser_tensor_same_shape(g, t))
    return luaL_error(L, "set_grad: gradient %s does not match tensor %s", SER_SHAPE(g), SER_SHAPE(t));
  ser_tensor *c = g ? ser_tensor_clone_raw(g) : NULL;
  if (g && !c) return ser_lua_fail(L, "set_grad");
  ser_tensor_release(t->grad);
  t->grad = c;
  lua_settop(L, 1);
  return 1;
}

/* x:backward([grad] [, {retain_graph = false}]) */
static int m_backward(lua_State *L) {
  ser_tensor *t = self(L);
  int opts = 0;
  ser_tensor *g = NULL;
  if (lua_istable(L, 2) && !ser_lua_totensor(L, 2))
    opts = 2;
  else if (!lua_isnoneornil(L, 2)) {
    g = ser_lua_checktensorlike(L, 2, "backward");
    opts = lua_istable(L, 3) ? 3 : 0;
  }
  int retain = opts ? ser_lua_optboolean(L, opts, "retain_graph", 0, "backward") : 0;
  CHECK(L, "backward", ser_backward(t, g, retain));
  return 0;
}

static int m_zero_grad(lua_State *L) {
  ser_tensor_zero_grad(self(L), lua_toboolean(L, 2));
  return 0;
}

static int m_detach(lua_State *L) {
  ser_lua_pushtensor(L, ser_detach(self(L)));
  return 1;
}

static int m_is_leaf(lua_State *L) {
  lua_pushboolean(L, self(L)->grad_fn == NULL);
  return 1;
}

static int m_grad_fn(lua_State *L) {
  ser_tensor *t = self(L);
  if (t->grad_fn)
    lua_pushstring(L, ser_op_table[t->grad_fn->op].name);
  else
    lua_pushnil(L);
  return 1;
}

/* ---- metamethods ---- */

static int mm_gc(lua_State *L) {
  tensor_box *b = luaL_checkudata(L, 1, SER_TENSOR_MT);
  ser_tensor_release(b->t);
  b->t = NULL;
  return 0;
}

static int mm_len(lua_State *L) {
  ser_tensor *t = self(L);
  lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
  return 1;
}

/* t[i]: a number for 1-d tensors, else the i-th slice along dim 1 (a view). */
static int mm_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER) {
    ser_tensor *t = self(L);
    if (!lua_isinteger(L, 2)) return luaL_error(L, "tensor index must be an integer, got %f", lua_tonumber(L, 2));
    if (t->ndim == 0) return luaL_error(L, "cannot index a 0-d tensor; use item()");
    lua_Integer i = lua_tointeger(L, 2);
    if (i < 0) i += t->shape[0] + 1;
    if (i < 1 || i > t->shape[0])
      return luaL_error(L, "index %d out of range 1..%d for tensor %s", (int)lua_tointeger(L, 2), (int)t->shape[0],
                        SER_SHAPE(t));
    if (t->ndim == 1) {
      lua_pushnumber(L, ser_tensor_data(t)[(i - 1) * t->stride[0]]);
      return 1;
    }
    ser_tensor *out;
    CHECK(L, "index", ser_select(&out, t, 0, i - 1));
    ser_lua_pushtensor(L, out);
    return 1;
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__methods");
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* t[i] = v for 1-d tensors, or fills / copies into the i-th slice. */
static int mm_newindex(lua_State *L) {
  ser_tensor *t = self(L);
  if (!lua_isinteger(L, 2)) return luaL_error(L, "tensor fields cannot be assigned; only integer indices");
  if (t->requires_grad && ser_grad_enabled())
    return luaL_error(L, "cannot assign into a tensor that requires grad outside ser.no_grad");
  if (t->ndim == 0) return luaL_error(L, "cannot index a 0-d tensor");
  lua_Integer i = lua_tointeger(L, 2);
  if (i < 0) i += t->shape[0] + 1;
  if (i < 1 || i > t->shape[0])
    return luaL_error(L, "index %d out of range 1..%d for tensor %s", (int)lua_tointeger(L, 2), (int)t->shape[0],
                      SER_SHAPE(t));
  ser_tensor *slice;
  CHECK(L, "index", ser_tensor_select_raw(&slice, t, 0, i - 1));
  ser_lua_pushtensor(L, slice);
  if (lua_type(L, 3) == LUA_TNUMBER) {
    ser_tensor_fill(slice, (float)lua_tonumber(L, 3));
  } else {
    ser_tensor *src = ser_lua_checktensorlike(L, 3, "index assignment");
    CHECK(L, "index assignment", ser_tensor_copy_(slice, src));
  }
  return 0;
}

static const luaL_Reg methods[] = {
    {"shape", m_shape},         {"size", m_size},
    {"dim", m_dim},             {"numel", m_numel},
    {"is_contiguous", m_is_contiguous},
    {"item", m_item},           {"totable", m_totable},
    {"tofile", m_tofile},       {"view", m_view},
    {"reshape", m_reshape},     {"permute", m_permute},
    {"transpose", m_transpose}, {"narrow", m_narrow},
    {"select", m_select},       {"contiguous", m_contiguous},
    {"clone", m_clone},         {"squeeze", m_squeeze},
    {"unsqueeze", m_unsqueeze}, {"flatten", m_flatten},
    {"add", m_add},             {"sub", m_sub},
    {"mul", m_mul},             {"div", m_div},
    {"matmul", m_matmul},       {"eq", m_eq},
    {"ne", m_ne},               {"lt", m_lt},
    {"le", m_le},               {"gt", m_gt},
    {"ge", m_ge},               {"neg", m_neg},
    {"exp", m_exp},             {"log", m_log},
    {"sqrt", m_sqrt},           {"abs", m_abs},
    {"relu", m_relu},           {"sigmoid", m_sigmoid},
    {"tanh", m_tanh},           {"pow", m_pow},
    {"clamp", m_clamp},         {"softmax", m_softmax},
    {"log_softmax", m_log_softmax},
    {"sum", m_sum},             {"mean", m_mean},
    {"var", m_var},             {"std", m_std},
    {"max", m_max},             {"min", m_min},
    {"argmax", m_argmax},       {"fill_", m_fill_},
    {"zero_", m_zero_},         {"copy_", m_copy_},
    {"add_", m_add_},           {"uniform_", m_uniform_},
    {"normal_", m_normal_},     {"requires_grad", m_requires_grad},
    {"grad", m_grad},           {"set_grad", m_set_grad},
    {"backward", m_backward},   {"zero_grad", m_zero_grad},
    {"detach", m_detach},       {"is_leaf", m_is_leaf},
    {"grad_fn", m_grad_fn},     {NULL, NULL}};

static const luaL_Reg metamethods[] = {
    {"__gc", mm_gc},     {"__close", mm_gc}, {"__len", mm_len}, {"__index", mm_index}, {"__newindex", mm_newindex},
    {"__add", m_add},    {"__sub", m_sub},   {"__mul", m_mul},  {"__div", m_div},      {"__unm", m_neg},
    {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"new", t_new},         {"zeros", t_zeros},       {"ones", t_ones},       {"empty", t_empty},
    {"full", t_full},       {"rand", t_rand},         {"randn", t_randn},     {"arange", t_arange},
    {"fromfile", t_fromfile}, {"is_tensor", t_is_tensor}, {"cat", t_cat},    {NULL, NULL}};

int ser_lua_open_tensor(lua_State *L) {
  if (luaL_newmetatable(L, SER_TENSOR_MT)) {
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__methods");
  }
  luaL_newlib(L, functions);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "metatable"); /* lua/ser/tensor.lua adds __tostring and Lua-side methods */
  lua_getfield(L, -2, "__methods");
  lua_setfield(L, -2, "methods");
  lua_remove(L, -2);
  return 1;
}
