/* ser.core.data: the C half of ser.data — folder walking, synthetic speech, writing a
 * corpus to disk, and assembling batches from the in-memory waveform matrix.
 * the Lua files under lua/ser/data/ are the public surface; these functions check their arguments but
 * expect the Lua side to have validated the user's options. */
#include <stdlib.h>
#include <string.h>

#include "audio/io.h"
#include "audio/synth.h"
#include "io/corpus_walk.h"
#include "luat.h"

/* walk(dir [, max_depth]) -> {paths...}, {"path: reason"...} */
static int l_walk(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  int max_depth = (int)luaL_optinteger(L, 2, 0);
  ser_filelist list;
  if (ser_corpus_walk(&list, dir, max_depth) < 0) return ser_lua_fail(L, "scan");
  /* copy into Lua before anything can raise, then free (lua_createtable may raise on OOM:
   * accept that rare leak path rather than complicate every push) */
  lua_createtable(L, (int)list.n, 0);
  for (size_t i = 0; i < list.n; i++) {
    lua_pushstring(L, list.paths[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_createtable(L, (int)list.n_problems, 0);
  for (size_t i = 0; i < list.n_problems; i++) {
    lua_pushstring(L, list.problems[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  ser_filelist_free(&list);
  return 2;
}

static int field_int(lua_State *L, int t, const char *key, int def, int row) {
  lua_getfield(L, t, key);
  int ok = 0;
  lua_Integer v = lua_isnil(L, -1) ? def : lua_tointegerx(L, -1, &ok);
  if (!lua_isnil(L, -1) && !ok)
    luaL_error(L, "synthetic: clip %d field '%s' must be a whole number, got %s", row, key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return (int)v;
}

/* synth(clips, samples, sr, seed) -> tensor [#clips, samples]; clips[i] = {speaker=, emotion=
 * (1-based), intensity= (0/1), statement=, repetition=}. */
static int l_synth(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_checkinteger(L, 2);
  int sr = (int)luaL_checkinteger(L, 3);
  lua_Integer seed = luaL_checkinteger(L, 4);
  int count = (int)lua_rawlen(L, 1);
  if (count < 1) return luaL_error(L, "synthetic: no clips to render");
  if (n < 1) return luaL_error(L, "synthetic: clip length %d samples must be positive", (int)n);
  ser_synth_clip *clips = lua_newuserdatauv(L, sizeof *clips * (size_t)count, 0); /* GC'd scratch */
  for (int i = 0; i < count; i++) {
    lua_rawgeti(L, 1, i + 1);
    if (!lua_istable(L, -1)) return luaL_error(L, "synthetic: clip %d must be a table", i + 1);
    int t = lua_gettop(L);
    clips[i].speaker = field_int(L, t, "speaker", 0, i + 1);
    clips[i].emotion = field_int(L, t, "emotion", 0, i + 1) - 1;
    clips[i].intensity = field_int(L, t, "intensity", 0, i + 1);
    clips[i].statement = field_int(L, t, "statement", 1, i + 1);
    clips[i].repetition = field_int(L, t, "repetition", 1, i + 1);
    lua_pop(L, 1);
  }
  ser_tensor *out = ser_tensor_empty(2, SER_DIMS(count, n));
  ser_lua_pushtensor(L, out); /* owned by Lua from here: an error below leaks nothing */
  if (ser_synth_render_many(ser_tensor_data(out), n, sr, clips, count, (uint64_t)seed) < 0)
    return ser_lua_fail(L, "synthetic");
  return 1;
}

/* save_rows(wav [N, T], paths, sr): row i to paths[i] (format from the extension; atomic). */
static int l_save_rows(lua_State *L) {
  ser_tensor *w = ser_lua_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int sr = (int)luaL_checkinteger(L, 3);
  if (w->ndim != 2 || !ser_tensor_is_contiguous(w))
    return luaL_error(L, "save_rows: expected a contiguous [N, T] tensor, got %s", SER_SHAPE(w));
  lua_Integer np = (lua_Integer)lua_rawlen(L, 2);
  if (np != w->shape[0])
    return luaL_error(L, "save_rows: %d paths for %d rows", (int)np, (int)w->shape[0]);
  const float *d = ser_tensor_data(w);
  for (lua_Integer i = 0; i < np; i++) {
    lua_rawgeti(L, 2, i + 1);
    const char *path = lua_tostring(L, -1);
    if (!path) return luaL_error(L, "save_rows: path %d is not a string", (int)i + 1);
    if (ser_audio_save(path, d + i * w->shape[1], w->shape[1], 1, sr) < 0) return ser_lua_fail(L, "synthetic");
    lua_pop(L, 1);
  }
  return 0;
}

/* gather(src [N, ...], rows) -> [#rows, ...]: copies the given 1-based rows (a batch). */
static int l_gather(lua_State *L) {
  ser_tensor *src = ser_lua_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (src->ndim < 1 || !ser_tensor_is_contiguous(src))
    return luaL_error(L, "gather: expected a contiguous tensor with a row dimension, got %s", SER_SHAPE(src));
  int64_t nrows = src->shape[0], row = ser_tensor_numel(src) / (nrows ? nrows : 1);
  int count = (int)lua_rawlen(L, 2);
  if (count < 1) return luaL_error(L, "gather: empty row list");
  int64_t shape[SER_MAX_DIMS];
  memcpy(shape, src->shape, sizeof shape);
  shape[0] = count;
  ser_tensor *out = ser_tensor_empty(src->ndim, shape);
  ser_lua_pushtensor(L, out);
  const float *s = ser_tensor_data(src);
  float *o = ser_tensor_data(out);
  for (int i = 0; i < count; i++) {
    lua_rawgeti(L, 2, i + 1);
    int ok = 0;
    lua_Integer r = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || r < 1 || r > nrows)
      return luaL_error(L, "gather: row %d is %s, expected a whole number in 1..%d", i + 1,
                        ok ? lua_pushfstring(L, "%d", (int)r) : "not a whole number", (int)nrows);
    memcpy(o + (int64_t)i * row, s + (r - 1) * row, (size_t)row * sizeof *o);
  }
  return 1;
}

/* cat_rows({t1 [b1, ...], t2 [b2, ...], ...}) -> [b1 + b2 + ..., ...] (same trailing shape). */
static int l_cat_rows(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int count = (int)lua_rawlen(L, 1);
  if (count < 1) return luaL_error(L, "cat_rows: empty list");
  int64_t shape[SER_MAX_DIMS], rows = 0;
  int ndim = 0;
  for (int i = 1; i <= count; i++) {
    lua_rawgeti(L, 1, i);
    ser_tensor *t = ser_lua_checktensor(L, -1);
    if (t->ndim < 1 || !ser_tensor_is_contiguous(t))
      return luaL_error(L, "cat_rows: part %d must be a contiguous tensor with a row dimension, got %s", i, SER_SHAPE(t));
    if (i == 1) {
      ndim = t->ndim;
      memcpy(shape, t->shape, sizeof shape);
    } else {
      int same = t->ndim == ndim;
      for (int d = 1; same && d < ndim; d++) same = t->shape[d] == shape[d];
      if (!same)
        return luaL_error(L, "cat_rows: part %d has shape %s, part 1 has %s; all parts must agree after dim 1", i,
                          SER_SHAPE(t), ser_shape_str(ndim, shape));
    }
    rows += t->shape[0];
    lua_pop(L, 1);
  }
  shape[0] = rows;
  ser_tensor *out = ser_tensor_empty(ndim, shape);
  ser_lua_pushtensor(L, out);
  float *o = ser_tensor_data(out);
  for (int i = 1; i <= count; i++) {
    lua_rawgeti(L, 1, i);
    ser_tensor *t = ser_lua_checktensor(L, -1);
    int64_t n = ser_tensor_numel(t);
    memcpy(o, ser_tensor_data(t), (size_t)n * sizeof *o);
    o += n;
    lua_pop(L, 1);
  }
  return 1;
}

/* stack({t1, t2, ...}) -> [n, numel]: same-size tensors (e.g. decoded clips [T]) as rows. */
static int l_stack(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int count = (int)lua_rawlen(L, 1);
  if (count < 1) return luaL_error(L, "stack: empty list");
  int64_t numel = -1;
  for (int i = 1; i <= count; i++) {
    lua_rawgeti(L, 1, i);
    ser_tensor *t = ser_lua_checktensor(L, -1);
    if (numel < 0) numel = ser_tensor_numel(t);
    if (ser_tensor_numel(t) != numel)
      return luaL_error(L, "stack: item %d has %d elements %s, item 1 has %d; all must be the same length", i,
                        (int)ser_tensor_numel(t), SER_SHAPE(t), (int)numel);
    lua_pop(L, 1);
  }
  ser_tensor *out = ser_tensor_empty(2, SER_DIMS(count, numel));
  ser_lua_pushtensor(L, out);
  for (int i = 1; i <= count; i++) {
    lua_rawgeti(L, 1, i);
    ser_tensor_gather_to(ser_lua_checktensor(L, -1), ser_tensor_data(out) + (int64_t)(i - 1) * numel);
    lua_pop(L, 1);
  }
  return 1;
}

/* fit_rows(t [N, T], n) -> [N, n]: each row trimmed or zero-padded at the end to n samples
 * (the reference's fixed-length clips). */
static int l_fit_rows(lua_State *L) {
  ser_tensor *t = ser_lua_checktensor(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (t->ndim != 2 || !ser_tensor_is_contiguous(t))
    return luaL_error(L, "fit_rows: expected a contiguous [N, T] tensor, got %s", SER_SHAPE(t));
  if (n < 1) return luaL_error(L, "fit_rows: length %d must be positive", (int)n);
  int64_t rows = t->shape[0], T = t->shape[1], keep = T < n ? T : n;
  ser_tensor *out = ser_tensor_zeros(2, SER_DIMS(rows, n));
  ser_lua_pushtensor(L, out);
  for (int64_t r = 0; r < rows; r++)
    memcpy(ser_tensor_data(out) + r * n, ser_tensor_data(t) + r * T, (size_t)keep * sizeof(float));
  return 1;
}

int ser_lua_open_data(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "walk", l_walk }, { "synth", l_synth }, { "save_rows", l_save_rows }, { "gather", l_gather },
    { "cat_rows", l_cat_rows },
    { "stack", l_stack },  { "fit_rows", l_fit_rows }, { NULL, NULL },
  };
  luaL_newlib(L, fns);
  lua_pushinteger(L, SER_SYNTH_EMOTIONS);
  lua_setfield(L, -2, "synth_emotions");
  return 1;
}
