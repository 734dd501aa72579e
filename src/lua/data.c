/* ser.core.data: the C half of ser.data — folder walking, synthetic speech, writing a
 * corpus to disk, and assembling batches from the in-memory waveform matrix.
 * the Lua files under lua/ser/data/ are the public surface; these functions check their arguments but
 * expect the Lua side to have validated the user's options. */
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "luat.h"

/* The file list lives in a userdata while it is copied into Lua tables, so an allocation
 * error raised by Lua on the way frees it (__gc) instead of leaking it. */
#define FILELIST_MT "ser.data.FileList"

static int filelist_gc(lua_State *L) {
  ser_filelist_free(luaL_checkudata(L, 1, FILELIST_MT));
  return 0;
}

/* walk(dir [, max_depth]) -> {paths...}, {"path: reason"...} */
static int l_walk(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  int max_depth = (int)luaL_optinteger(L, 2, 0);
  ser_filelist *list = lua_newuserdatauv(L, sizeof *list, 0);
  memset(list, 0, sizeof *list);
  if (luaL_newmetatable(L, FILELIST_MT)) {
    lua_pushcfunction(L, filelist_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (ser_corpus_walk(list, dir, max_depth) < 0) return ser_lua_fail(L, "scan");
  lua_createtable(L, (int)list->n, 0);
  for (size_t i = 0; i < list->n; i++) {
    lua_pushstring(L, list->paths[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_createtable(L, (int)list->n_problems, 0);
  for (size_t i = 0; i < list->n_problems; i++) {
    lua_pushstring(L, list->problems[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  ser_filelist_free(list); /* now, not at the next collection: lists can be large */
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

/* The tensors of the list at idx (borrowed: the list keeps them alive), in a GC'd scratch
 * userdata pushed on the stack. */
static ser_tensor **check_tensor_list(lua_State *L, int idx, int *count, const char *fname, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)lua_rawlen(L, idx);
  if (n < 1) luaL_error(L, "%s: empty list", fname);
  ser_tensor **ts = lua_newuserdatauv(L, (size_t)n * sizeof *ts, 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    ts[i] = ser_lua_totensor(L, -1);
    if (!ts[i]) luaL_error(L, "%s: %s %d is a %s, expected a live tensor", fname, what, i + 1, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  *count = n;
  return ts;
}

/* gather(src [N, ...], rows) -> [#rows, ...]: copies the given 1-based rows (a batch). */
static int l_gather(lua_State *L) {
  ser_tensor *src = ser_lua_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (src->ndim < 1 || !ser_tensor_is_contiguous(src))
    return luaL_error(L, "gather: expected a contiguous tensor with a row dimension, got %s", SER_SHAPE(src));
  int64_t nrows = src->shape[0];
  int count = (int)lua_rawlen(L, 2);
  if (count < 1) return luaL_error(L, "gather: empty row list");
  int64_t *rows = lua_newuserdatauv(L, (size_t)count * sizeof *rows, 0);
  for (int i = 0; i < count; i++) {
    lua_rawgeti(L, 2, i + 1);
    int ok = 0;
    lua_Integer r = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || r < 1 || r > nrows)
      return luaL_error(L, "gather: row %d is %s, expected a whole number in 1..%d", i + 1,
                        ok ? lua_pushfstring(L, "%d", (int)r) : "not a whole number", (int)nrows);
    rows[i] = r - 1;
  }
  ser_tensor *out;
  if (ser_data_gather(&out, src, rows, count) < 0) return ser_lua_fail(L, "gather");
  ser_lua_pushtensor(L, out);
  return 1;
}

/* cat_rows({t1 [b1, ...], t2 [b2, ...], ...}) -> [b1 + b2 + ..., ...] (same trailing shape). */
static int l_cat_rows(lua_State *L) {
  int count;
  ser_tensor **parts = check_tensor_list(L, 1, &count, "cat_rows", "part");
  ser_tensor *out;
  if (ser_data_cat_rows(&out, parts, count) < 0) return ser_lua_fail(L, "cat_rows");
  ser_lua_pushtensor(L, out);
  return 1;
}

/* stack({t1, t2, ...}) -> [n, numel]: same-size tensors (e.g. decoded clips [T]) as rows. */
static int l_stack(lua_State *L) {
  int count;
  ser_tensor **items = check_tensor_list(L, 1, &count, "stack", "item");
  ser_tensor *out;
  if (ser_data_stack(&out, items, count) < 0) return ser_lua_fail(L, "stack");
  ser_lua_pushtensor(L, out);
  return 1;
}

/* fit_rows(t [N, T], n) -> [N, n]: each row trimmed or zero-padded at the end to n samples
 * (the reference's fixed-length clips). */
static int l_fit_rows(lua_State *L) {
  ser_tensor *t = ser_lua_checktensor(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  ser_tensor *out;
  if (ser_data_fit_rows(&out, t, n) < 0) return ser_lua_fail(L, "fit_rows");
  ser_lua_pushtensor(L, out);
  return 1;
}

/* ---- prefetch: the loader's background worker (src/data/prefetch.c) ---- */

#define PREFETCH_MT "ser.data.Prefetch"

typedef struct {
  ser_prefetch *pf;
} prefetch_box;

static double field_num(lua_State *L, int t, const char *key, double def, const char *where) {
  lua_getfield(L, t, key);
  double v = def;
  if (lua_isnumber(L, -1)) v = lua_tonumber(L, -1);
  else if (!lua_isnil(L, -1)) luaL_error(L, "prefetch: %s field '%s' must be a number, got %s", where, key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static int field_bool(lua_State *L, int t, const char *key, int def) {
  lua_getfield(L, t, key);
  int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static const char *field_str(lua_State *L, int t, const char *key, const char *def, const char *where) {
  lua_getfield(L, t, key);
  const char *v = lua_isnil(L, -1) ? def : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (!v) luaL_error(L, "prefetch: %s field '%s' must be a string, got %s", where, key, luaL_typename(L, -1));
  lua_pop(L, 1); /* a string stays alive in the table */
  return v;
}

/* prefetch(wav [N, T], recipe) -> worker. recipe = {sr =, steps = {{kind = "gain", p =, a =, b =},
 * {kind = "speed", p =, factors = {...}}, ...}, features = "waveform"|"logmel"|"mfcc",
 * fopts = {...}, time_masks =, time_width =, time_p =, freq_masks =, freq_width =, freq_p =, mask_value =,
 * norm_mean = [N, F], norm_scale = [N, F]}. */
static int l_prefetch(lua_State *L) {
  ser_tensor *wav = ser_lua_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  static const char *const recipe_keys[] = { "sr", "steps", "features", "fopts", "time_masks", "time_width",
                                             "time_p", "freq_masks", "freq_width", "freq_p", "mask_value",
                                             "norm_mean", "norm_scale", NULL };
  ser_lua_checkoptions(L, 2, recipe_keys, "prefetch");
  ser_pf_recipe r;
  memset(&r, 0, sizeof r);
  r.sr = (int)field_num(L, 2, "sr", 16000, "recipe");
  const char *feat = field_str(L, 2, "features", "waveform", "recipe");
  r.features = !strcmp(feat, "waveform") ? 0 : !strcmp(feat, "logmel") ? 1 : !strcmp(feat, "mfcc") ? 2 : -1;
  if (r.features < 0) return luaL_error(L, "prefetch: features '%s' unknown (waveform, logmel, mfcc)", feat);
  /* the feature options through ser.features' own parser: the same names, defaults and
   * refusal of unknown keys on both paths */
  lua_getfield(L, 2, "fopts");
  r.fopts = ser_lua_checkfeatopts(L, lua_gettop(L), r.features == 2 ? SER_FEAT_MFCC : SER_FEAT_LOGMEL, "prefetch: fopts");
  lua_pop(L, 1);
  r.time_masks = (int)field_num(L, 2, "time_masks", 0, "recipe");
  r.time_width = (int)field_num(L, 2, "time_width", 0, "recipe");
  r.freq_masks = (int)field_num(L, 2, "freq_masks", 0, "recipe");
  r.freq_width = (int)field_num(L, 2, "freq_width", 0, "recipe");
  r.time_p = (float)field_num(L, 2, "time_p", 1, "recipe");
  r.freq_p = (float)field_num(L, 2, "freq_p", 1, "recipe");
  r.mask_value = (float)field_num(L, 2, "mask_value", 0, "recipe");
  /* optional per-row normalisation tensors; they stay referenced from the recipe table's
   * owner until ser_prefetch_new retains them */
  lua_getfield(L, 2, "norm_mean");
  if (!lua_isnil(L, -1)) r.norm_mean = ser_lua_checktensor(L, lua_gettop(L));
  lua_getfield(L, 2, "norm_scale");
  if (!lua_isnil(L, -1)) r.norm_scale = ser_lua_checktensor(L, lua_gettop(L));
  lua_pop(L, 2);
  lua_getfield(L, 2, "steps");
  int steps = lua_gettop(L);
  if (!lua_isnil(L, steps)) {
    luaL_checktype(L, steps, LUA_TTABLE);
    r.n_steps = (int)lua_rawlen(L, steps);
    if (r.n_steps > SER_PF_MAX_STEPS) return luaL_error(L, "prefetch: %d steps, at most %d", r.n_steps, SER_PF_MAX_STEPS);
    static const char *const kinds[] = { "gain", "noise", "noise_snr", "pitch", "speed", "shift", NULL };
    static const char *const step_keys[] = { "kind", "p", "a", "b", "factors", "roll", NULL };
    for (int i = 0; i < r.n_steps; i++) {
      lua_rawgeti(L, steps, i + 1);
      int t = lua_gettop(L);
      if (!lua_istable(L, t)) return luaL_error(L, "prefetch: step %d must be a table", i + 1);
      ser_lua_checkoptions(L, t, step_keys, lua_pushfstring(L, "prefetch: step %d", i + 1));
      lua_pop(L, 1);
      const char *k = field_str(L, t, "kind", "", "step");
      int kind = -1;
      for (int j = 0; kinds[j]; j++)
        if (!strcmp(kinds[j], k)) kind = j;
      if (kind < 0) return luaL_error(L, "prefetch: step %d kind '%s' unknown (gain, noise, noise_snr, pitch, speed, shift)", i + 1, k);
      ser_aug_step *st = &r.steps[i];
      st->kind = (ser_aug_kind)kind;
      st->p = (float)field_num(L, t, "p", 1, "step");
      st->a = (float)field_num(L, t, "a", 0, "step");
      st->b = (float)field_num(L, t, "b", 0, "step");
      st->roll = field_bool(L, t, "roll", 0);
      lua_getfield(L, t, "factors");
      if (lua_istable(L, -1)) {
        st->nf = (int)lua_rawlen(L, -1);
        if (st->nf > SER_AUG_MAX_FACTORS) return luaL_error(L, "prefetch: step %d has %d speed factors, at most %d", i + 1, st->nf, SER_AUG_MAX_FACTORS);
        for (int j = 0; j < st->nf; j++) {
          lua_rawgeti(L, -1, j + 1);
          st->factors[j] = (float)lua_tonumber(L, -1);
          lua_pop(L, 1);
        }
      }
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
  /* the box exists (empty) before the worker does, so a failure leaks nothing */
  prefetch_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->pf = NULL;
  luaL_setmetatable(L, PREFETCH_MT);
  if (ser_prefetch_new(&box->pf, wav, &r) < 0) return ser_lua_fail(L, "prefetch");
  return 1;
}

static prefetch_box *check_prefetch(lua_State *L) {
  prefetch_box *b = luaL_checkudata(L, 1, PREFETCH_MT);
  if (!b->pf) luaL_error(L, "prefetch: the worker was closed");
  return b;
}

/* pf:submit(rows (1-based), seed) */
static int l_pf_submit(lua_State *L) {
  prefetch_box *b = check_prefetch(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer seed = luaL_checkinteger(L, 3);
  int count = (int)lua_rawlen(L, 2);
  if (count < 1) return luaL_error(L, "prefetch: empty batch");
  int64_t *rows = lua_newuserdatauv(L, (size_t)count * sizeof *rows, 0);
  for (int i = 0; i < count; i++) {
    lua_rawgeti(L, 2, i + 1);
    int ok = 0;
    lua_Integer r = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok) return luaL_error(L, "prefetch: batch entry %d is not a whole number", i + 1);
    rows[i] = r - 1;
  }
  if (ser_prefetch_submit(b->pf, rows, count, (uint64_t)seed) < 0) return ser_lua_fail(L, "prefetch");
  return 0;
}

/* pf:next() -> tensor of the oldest submitted batch (waits for it). */
static int l_pf_next(lua_State *L) {
  prefetch_box *b = check_prefetch(L);
  ser_tensor *out;
  if (ser_prefetch_next(b->pf, &out) < 0) return ser_lua_fail(L, "prefetch");
  ser_lua_pushtensor(L, out);
  return 1;
}

static int l_pf_pending(lua_State *L) {
  prefetch_box *b = check_prefetch(L);
  lua_pushinteger(L, ser_prefetch_pending(b->pf));
  return 1;
}

static int l_pf_close(lua_State *L) {
  prefetch_box *b = luaL_checkudata(L, 1, PREFETCH_MT);
  ser_prefetch_free(b->pf);
  b->pf = NULL;
  return 0;
}

int ser_lua_open_data(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "walk", l_walk }, { "synth", l_synth }, { "save_rows", l_save_rows }, { "gather", l_gather },
    { "cat_rows", l_cat_rows },
    { "stack", l_stack },  { "fit_rows", l_fit_rows }, { "prefetch", l_prefetch }, { NULL, NULL },
  };
  static const luaL_Reg pf_methods[] = {
    { "submit", l_pf_submit }, { "next", l_pf_next }, { "pending", l_pf_pending }, { "close", l_pf_close }, { NULL, NULL },
  };
  ser_lua_newclass(L, PREFETCH_MT, pf_methods, l_pf_close, NULL);
  luaL_newlib(L, fns);
  lua_pushinteger(L, SER_SYNTH_EMOTIONS);
  lua_setfield(L, -2, "synth_emotions");
  return 1;
}
