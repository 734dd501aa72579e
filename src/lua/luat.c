#include "luat.h"

#include <string.h>

/* The userdata is a box around one reference, so __gc/__close can release it
 * once and later calls see NULL ("tensor was released"). */
typedef struct {
  ser_tensor *t;
} tensor_box;

ser_tensor *ser_lua_totensor(lua_State *L, int idx) {
  tensor_box *b = luaL_testudata(L, idx, SER_TENSOR_MT);
  return b ? b->t : NULL;
}

ser_tensor *ser_lua_checktensor(lua_State *L, int idx) {
  tensor_box *b = luaL_testudata(L, idx, SER_TENSOR_MT);
  if (!b) {
    const char *msg = lua_pushfstring(L, "tensor expected, got %s", luaL_typename(L, idx));
    luaL_argerror(L, idx, msg);
  }
  if (!b->t) luaL_argerror(L, idx, "tensor was released (used after close)");
  return b->t;
}

ser_tensor *ser_lua_opttensor(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : ser_lua_checktensor(L, idx);
}

int ser_lua_fail(lua_State *L, const char *fname) {
  const char *msg = ser_errmsg();
  size_t n = strlen(fname);
  /* core messages already start with the op name ("view: ..."); do not repeat it */
  if (strncmp(msg, fname, n) == 0 && msg[n] == ':') return luaL_error(L, "%s", msg);
  return luaL_error(L, "%s: %s", fname, msg);
}

void ser_lua_account(lua_State *L) {
  /* Lua sees only the small userdata box; without this a loop creating large
   * tensors grows without bound (Torch7 #229). Collect once the tensor memory
   * allocated since the last collection passes a slack: a quarter of what survived
   * it, at least 8 MB, and at least four times Lua's own heap (a full collection
   * costs ~0.14 ms per MB of it here, so at most ~0.035 ms per MB of tensors made:
   * the collector's share of a loop stays small whatever the program keeps in Lua).
   * The slack used to be all of the live memory (collect when it doubled): with a
   * decoded corpus of 700 MB resident, a training loop then left 700 MB of dead
   * activations waiting for the collector. Then its floor was 128 MB and the first
   * collection came at 256 MB: a small model's inference allocated that much fresh
   * memory before any block came back to the allocator's cache, so every page of every
   * output was a page fault — CNN2D on one clip took 28 ms instead of 2.7
   * (bench/bench_onnx.sh), and a training process kept ~200 MB more resident. */
  static size_t threshold = 16u << 20;
  size_t live = ser_memory_live();
  if (live > threshold) {
    lua_gc(L, LUA_GCCOLLECT);
    live = ser_memory_live();
    const size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT) << 10;
    size_t slack = live / 4;
    if (slack < (8u << 20)) slack = 8u << 20;
    if (slack < 4 * heap) slack = 4 * heap;
    threshold = live + slack;
  }
}

void ser_lua_pushtensor(lua_State *L, ser_tensor *t) {
  if (!t) luaL_error(L, "%s", ser_errmsg());
  tensor_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->t = t;
  luaL_setmetatable(L, SER_TENSOR_MT);
  ser_lua_account(L);
}

/* Pass 1 of reading a nested table: validates that it is rectangular and all
 * numbers, and finds its shape. Raises on bad input before anything is allocated. */
static void scan_nested(lua_State *L, int idx, int depth, int *ndim, int64_t *shape, const char *fname) {
  idx = lua_absindex(L, idx);
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  if (depth >= SER_MAX_DIMS) luaL_error(L, "%s: table nests deeper than %d dimensions", fname, SER_MAX_DIMS);
  if (depth == *ndim) {
    *ndim = depth + 1;
    shape[depth] = len;
  } else if (shape[depth] != len) {
    luaL_error(L, "%s: ragged table: a row at depth %d has %d elements, expected %d", fname, depth + 1, (int)len,
               (int)shape[depth]);
  }
  for (lua_Integer i = 1; i <= len; i++) {
    int ty = lua_rawgeti(L, idx, i);
    if (ty == LUA_TTABLE) {
      if (i > 1 && *ndim == depth + 1) luaL_error(L, "%s: ragged table: a row where a number was expected", fname);
      scan_nested(L, -1, depth + 1, ndim, shape, fname);
    } else if (ty == LUA_TNUMBER) {
      if (*ndim != depth + 1) luaL_error(L, "%s: ragged table: a number where a row was expected", fname);
    } else {
      luaL_error(L, "%s: table element %d at depth %d is a %s; expected a number or a table", fname, (int)i, depth + 1,
                 luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
}

/* Pass 2: copies the (validated) numbers in row-major order. */
static void fill_nested(lua_State *L, int idx, float **dst) {
  idx = lua_absindex(L, idx);
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer i = 1; i <= len; i++) {
    if (lua_rawgeti(L, idx, i) == LUA_TTABLE)
      fill_nested(L, -1, dst);
    else
      *(*dst)++ = (float)lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
}

ser_tensor *ser_lua_checktensorlike(lua_State *L, int idx, const char *fname) {
  idx = lua_absindex(L, idx);
  ser_tensor *t = ser_lua_totensor(L, idx);
  if (t) return t;
  if (luaL_testudata(L, idx, SER_TENSOR_MT)) ser_lua_checktensor(L, idx); /* released: raises */
  if (lua_type(L, idx) == LUA_TNUMBER) {
    t = ser_tensor_full(0, NULL, (float)lua_tonumber(L, idx));
    if (!t) ser_lua_fail(L, fname);
  } else if (lua_type(L, idx) == LUA_TTABLE) {
    int ndim = 0;
    int64_t shape[SER_MAX_DIMS] = {0};
    scan_nested(L, idx, 0, &ndim, shape, fname);
    t = ser_tensor_empty(ndim, shape);
    if (!t) ser_lua_fail(L, fname);
    float *dst = ser_tensor_data(t);
    fill_nested(L, idx, &dst);
  } else {
    luaL_error(L, "%s: expected a tensor, a number or a table of numbers, got %s", fname, luaL_typename(L, idx));
  }
  /* the converted tensor replaces the argument, so the stack owns it */
  ser_lua_pushtensor(L, t);
  lua_replace(L, idx);
  return t;
}

int ser_lua_checkdim(lua_State *L, int idx, int ndim, const char *fname) {
  lua_Integer d = luaL_checkinteger(L, idx);
  lua_Integer r = d < 0 ? d + ndim : d - 1;
  if (d == 0 || r < 0 || r >= ndim)
    luaL_error(L, "%s: dim %d out of range for a %d-d tensor (expected 1..%d or -%d..-1)", fname, (int)d, ndim, ndim,
               ndim);
  return (int)r;
}

int ser_lua_checkshape(lua_State *L, int idx, int64_t *shape, const char *fname) {
  int nd = 0;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    if (len > SER_MAX_DIMS) luaL_error(L, "%s: shape has %d dims, at most %d supported", fname, (int)len, SER_MAX_DIMS);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_rawgeti(L, idx, i);
      if (!lua_isinteger(L, -1))
        luaL_error(L, "%s: shape entry %d is %s, expected an integer", fname, (int)i,
                   lua_isnumber(L, -1) ? "not a whole number" : luaL_typename(L, -1));
      shape[nd++] = lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    return nd;
  }
  int top = lua_gettop(L);
  for (int i = idx; i <= top; i++) {
    if (!lua_isinteger(L, i)) {
      if (lua_istable(L, i) || lua_isnil(L, i)) break; /* trailing options table */
      luaL_error(L, "%s: size %d is %s, expected an integer", fname, i - idx + 1,
                 lua_isnumber(L, i) ? "not a whole number" : luaL_typename(L, i));
    }
    if (nd == SER_MAX_DIMS) luaL_error(L, "%s: more than %d dims", fname, SER_MAX_DIMS);
    shape[nd++] = lua_tointeger(L, i);
  }
  return nd;
}

static int opt_field(lua_State *L, int opts, const char *key) {
  if (lua_isnoneornil(L, opts)) return 0;
  luaL_checktype(L, opts, LUA_TTABLE);
  return lua_getfield(L, opts, key) != LUA_TNIL ? 1 : (lua_pop(L, 1), 0);
}

double ser_lua_optnumber(lua_State *L, int opts, const char *key, double def, const char *fname) {
  if (!opt_field(L, opts, key)) return def;
  if (!lua_isnumber(L, -1)) luaL_error(L, "%s: option '%s' must be a number, got %s", fname, key, luaL_typename(L, -1));
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

lua_Integer ser_lua_optinteger(lua_State *L, int opts, const char *key, lua_Integer def, const char *fname) {
  if (!opt_field(L, opts, key)) return def;
  if (!lua_isinteger(L, -1))
    luaL_error(L, "%s: option '%s' must be an integer, got %s", fname, key,
               lua_isnumber(L, -1) ? "a fraction" : luaL_typename(L, -1));
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

int ser_lua_optboolean(lua_State *L, int opts, const char *key, int def, const char *fname) {
  if (!opt_field(L, opts, key)) return def;
  if (!lua_isboolean(L, -1)) luaL_error(L, "%s: option '%s' must be a boolean, got %s", fname, key, luaL_typename(L, -1));
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

const char *ser_lua_optstring(lua_State *L, int opts, const char *key, const char *def, const char *fname) {
  if (!opt_field(L, opts, key)) return def;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "%s: option '%s' must be a string, got %s", fname, key, luaL_typename(L, -1));
  const char *v = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays alive: it is referenced by the options table */
  return v;
}

void ser_lua_checkoptions(lua_State *L, int opts, const char *const *known, const char *fname) {
  if (lua_isnoneornil(L, opts)) return;
  opts = lua_absindex(L, opts);
  if (!lua_istable(L, opts)) luaL_error(L, "%s: options must be a table, got %s", fname, luaL_typename(L, opts));
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, lua_tostring(L, -1)) == 0;
    if (!ok) {
      const char *key = luaL_tolstring(L, -1, NULL);
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (const char *const *k = known; *k; k++) {
        if (k != known) luaL_addstring(&b, ", ");
        luaL_addstring(&b, *k);
      }
      luaL_pushresult(&b);
      luaL_error(L, "%s: unknown option '%s' (expected %s)", fname, key, lua_tostring(L, -1));
    }
  }
}

int32_t *ser_lua_checklengths(lua_State *L, int opts, const ser_tensor *x, const char *fname, const char *unit,
                              lua_Integer max) {
  static const char *const keys[] = {"lengths", NULL};
  if (lua_isnoneornil(L, opts)) return NULL;
  luaL_checktype(L, opts, LUA_TTABLE);
  ser_lua_checkoptions(L, opts, keys, fname);
  opts = lua_absindex(L, opts);
  lua_getfield(L, opts, "lengths");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "%s: option 'lengths' must be a list of %s counts, got %s", fname, unit, luaL_typename(L, -1));
  const int list = lua_gettop(L);
  const lua_Integer B = x->ndim >= 1 ? x->shape[0] : 0, n = (lua_Integer)lua_rawlen(L, list);
  if (n != B)
    luaL_error(L, "%s: 'lengths' has %d entries, the batch %s has %d clips", fname, (int)n, SER_SHAPE(x), (int)B);
  int32_t *lengths = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)(n + 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    int isint = 0;
    const lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 1 || v > max)
      luaL_error(L, "%s: lengths[%d] must be a whole number of %ss >= 1, got %s", fname, (int)i, unit,
                 luaL_tolstring(L, -1, NULL));
    lengths[i - 1] = (int32_t)v;
    lua_pop(L, 1);
  }
  return lengths;
}

void ser_lua_pushtensorlist(lua_State *L, ser_tensor *const *ts, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    ser_lua_pushtensor(L, ts[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

void ser_lua_pushnamedtensors(lua_State *L, const void *obj, int n, ser_lua_named_tensor_fn get, int clone) {
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    const char *name;
    ser_tensor *w = get(obj, i, &name);
    /* a failed clone is NULL: pushtensor raises the pending core error */
    ser_lua_pushtensor(L, clone ? ser_tensor_clone_raw(w) : ser_tensor_retain(w));
    lua_setfield(L, -2, name);
  }
}

void **ser_lua_newbox(lua_State *L, const char *mt) {
  void **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, mt);
  return box;
}

void *ser_lua_checkbox(lua_State *L, int idx, const char *mt, const char *what) {
  void **box = luaL_checkudata(L, idx, mt);
  if (!*box) luaL_error(L, "%s was already released", what);
  return *box;
}

void *ser_lua_takebox(lua_State *L, int idx, const char *mt) {
  void **box = luaL_checkudata(L, idx, mt);
  void *p = *box;
  *box = NULL;
  return p;
}

void ser_lua_newclass(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc,
                      lua_CFunction tostring) {
  if (luaL_newmetatable(L, mt)) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    if (tostring) {
      lua_pushcfunction(L, tostring);
      lua_setfield(L, -2, "__tostring");
    }
    if (methods) {
      lua_newtable(L);
      luaL_setfuncs(L, methods, 0);
      lua_setfield(L, -2, "__index");
    }
  }
  lua_pop(L, 1);
}

void ser_lua_setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

void ser_lua_setbool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}
