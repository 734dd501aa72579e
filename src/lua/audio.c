/* ser.core.audio (ser.audio): load / save / info / load_many / resample and the
 * decode cache. Files that will not decode give `nil, message` (the caller is
 * expected to handle them); bad arguments raise. */
#include <stdlib.h>
#include <string.h>

#include "audio/audio.h"
#include "luat.h"

static const char *const load_keys[] = {"sr", "mono", "seconds", "offset", "normalize", "cache", "stack", NULL};

static ser_audio_opts load_opts(lua_State *L, int idx, const char *fname, int *cache, int *stack) {
  ser_lua_checkoptions(L, idx, load_keys, fname);
  ser_audio_opts o = ser_audio_opts_default();
  lua_Integer sr = ser_lua_optinteger(L, idx, "sr", 0, fname);
  if (sr < 0 || sr > 1000000) luaL_error(L, "%s: option 'sr' must be in 1..1000000 Hz (or nil for the file's rate), got %d", fname, (int)sr);
  o.sr = (int)sr;
  o.mono = ser_lua_optboolean(L, idx, "mono", 1, fname);
  o.seconds = ser_lua_optnumber(L, idx, "seconds", 0.0, fname);
  o.offset = ser_lua_optnumber(L, idx, "offset", 0.0, fname);
  o.normalize = ser_lua_optboolean(L, idx, "normalize", 0, fname);
  if (!(o.seconds >= 0)) luaL_error(L, "%s: option 'seconds' must be > 0, got %f", fname, o.seconds);
  if (!(o.offset >= 0)) luaL_error(L, "%s: option 'offset' must be >= 0, got %f", fname, o.offset);
  int stacked = stack ? ser_lua_optboolean(L, idx, "stack", 0, fname) : 0;
  if (stack) *stack = stacked;
  /* A stacked matrix is the caller's own copy of the clips: caching them too would hold
   * the corpus twice (the loader's [N, T] matrix is 370 MB for RAVDESS), so the decode
   * cache is off for stack = true unless asked for. */
  if (cache) *cache = ser_lua_optboolean(L, idx, "cache", !stacked, fname);
  return o;
}

static void push_audio(lua_State *L, ser_audio *a) {
  ser_tensor *t = a->channels == 1 ? ser_tensor_empty(1, SER_DIMS(a->frames))
                                   : ser_tensor_empty(2, SER_DIMS(a->channels, a->frames));
  if (t) memcpy(ser_tensor_data(t), a->data, (size_t)(a->frames * a->channels) * sizeof(float));
  ser_audio_free(a);
  ser_lua_pushtensor(L, t);
}

/* load(path [, opts]) -> wav, sr | nil, message */
static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int cache;
  ser_audio_opts o = load_opts(L, 2, "audio.load", &cache, NULL);
  ser_audio a;
  if (ser_audio_load_cached(&a, path, &o, cache) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  int sr = a.sr;
  push_audio(L, &a);
  lua_pushinteger(L, sr);
  return 2;
}

/* info(path) -> {frames=, channels=, sr=, seconds=, format=} | nil, message */
static int l_info(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  ser_audio_info inf;
  if (ser_audio_info_get(&inf, path) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, inf.frames);
  lua_setfield(L, -2, "frames");
  lua_pushinteger(L, inf.channels);
  lua_setfield(L, -2, "channels");
  lua_pushinteger(L, inf.sr);
  lua_setfield(L, -2, "sr");
  lua_pushnumber(L, (double)inf.frames / inf.sr);
  lua_setfield(L, -2, "seconds");
  lua_pushstring(L, inf.format_name);
  lua_setfield(L, -2, "format");
  return 1;
}

/* save(path, wav [T] or [C, T], sr) -> true; raises on failure. */
static int l_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  ser_tensor *w = ser_lua_checktensor(L, 2);
  lua_Integer sr = luaL_checkinteger(L, 3);
  if (sr < 1 || sr > 1000000) return luaL_error(L, "audio.save: sr must be in 1..1000000 Hz, got %d", (int)sr);
  if (ser_audio_save_tensor(path, w, (int)sr) < 0) return ser_lua_fail(L, "audio.save");
  lua_pushboolean(L, 1);
  return 1;
}

/* Scratch of load_many, owned by a userdata so an error frees it in __gc. */
typedef struct {
  int n;
  ser_audio *a;
  int *rc;
  char **msg;
  const char **paths;
} many_box;

static void many_release(many_box *m) {
  for (int i = 0; m->a && i < m->n; i++) {
    if (m->rc && m->rc[i] == 0) ser_audio_free(&m->a[i]);
    if (m->msg) free(m->msg[i]);
  }
  free(m->a);
  free(m->rc);
  free(m->msg);
  free(m->paths);
  memset(m, 0, sizeof *m);
}

static int many_gc(lua_State *L) {
  many_release(lua_touserdata(L, 1));
  return 0;
}

/* load_many(paths [, opts]) -> list, errors
 *   list[i] is the tensor of paths[i], or the error message (a string) if it
 *   failed; errors is nil when all decoded, else {[i] = message}.
 * With opts.stack = true (needs seconds, or files of equal length, and mono):
 *   -> [N, T] tensor, sr | nil, message (the first failure and the count). */
static int l_load_many(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int cache, stack;
  ser_audio_opts o = load_opts(L, 2, "audio.load_many", &cache, &stack);
  int n = (int)lua_rawlen(L, 1);
  many_box *m = lua_newuserdatauv(L, sizeof *m, 1);
  memset(m, 0, sizeof *m);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, many_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  int box = lua_gettop(L);
  /* The path strings stay alive in the argument table for the whole call. */
  m->paths = calloc((size_t)(n ? n : 1), sizeof *m->paths);
  m->a = calloc((size_t)(n ? n : 1), sizeof *m->a);
  m->rc = calloc((size_t)(n ? n : 1), sizeof *m->rc);
  m->msg = calloc((size_t)(n ? n : 1), sizeof *m->msg);
  if (!m->paths || !m->a || !m->rc || !m->msg) return luaL_error(L, "audio.load_many: out of memory for %d paths", n);
  m->n = n;
  for (int i = 0; i < n; i++) {
    m->rc[i] = -1; /* nothing to free until loaded */
    lua_rawgeti(L, 1, i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "audio.load_many: paths[%d] must be a string, got %s", i + 1, luaL_typename(L, -1));
    m->paths[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  int failures = ser_audio_load_many(m->a, m->rc, m->msg, m->paths, n, &o, cache);

  if (stack) {
    if (failures) {
      int first = 0;
      while (m->rc[first] == 0) first++;
      lua_pushnil(L);
      lua_pushfstring(L, "audio.load_many: %d of %d files failed; first: %s", failures, n, m->msg[first]);
      return 2;
    }
    if (n == 0) return luaL_error(L, "audio.load_many: stack = true needs at least one path");
    int64_t T = m->a[0].frames;
    for (int i = 0; i < n; i++)
      if (m->a[i].frames != T || m->a[i].channels != 1)
        return luaL_error(L, "audio.load_many: cannot stack: '%s' gives %d x %I samples, '%s' gives 1 x %I "
                          "(set seconds for a fixed length, and mono)",
                          m->paths[i], m->a[i].channels, (lua_Integer)m->a[i].frames, m->paths[0], (lua_Integer)T);
    ser_tensor *t;
    if (ser_audio_stack(&t, m->a, n) < 0) return ser_lua_fail(L, "audio.load_many");
    int sr = m->a[0].sr;
    many_release(m); /* the clips now, not at the next collection: a corpus is hundreds of MB */
    ser_lua_pushtensor(L, t);
    lua_pushinteger(L, sr);
    return 2;
  }
  lua_createtable(L, n, 0);
  int list = lua_gettop(L);
  if (failures) lua_createtable(L, 0, failures);
  else lua_pushnil(L);
  int errs = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    if (m->rc[i] == 0) {
      m->rc[i] = -1; /* ownership moves to the tensor */
      push_audio(L, &m->a[i]);
    } else {
      lua_pushstring(L, m->msg[i]);
      lua_pushvalue(L, -1);
      lua_rawseti(L, errs, i + 1);
    }
    lua_rawseti(L, list, i + 1);
  }
  (void)box;
  return 2;
}

/* resample(wav [T] or [B, T], from, to [, {method = "sinc" | "soxr"}]) */
static int l_resample(lua_State *L) {
  ser_tensor *w = ser_lua_checktensor(L, 1);
  lua_Integer from = luaL_checkinteger(L, 2), to = luaL_checkinteger(L, 3);
  static const char *const keys[] = {"method", NULL};
  ser_lua_checkoptions(L, 4, keys, "audio.resample");
  const char *method = ser_lua_optstring(L, 4, "method", "sinc", "audio.resample");
  ser_resample_method m;
  if (!strcmp(method, "sinc")) m = SER_RESAMPLE_SINC;
  else if (!strcmp(method, "soxr")) m = SER_RESAMPLE_SOXR;
  else return luaL_error(L, "audio.resample: method must be 'sinc' (torchaudio) or 'soxr', got '%s'", method);
  if (from < 1 || to < 1 || from > 1000000 || to > 1000000)
    return luaL_error(L, "audio.resample: rates must be in 1..1000000 Hz, got %d -> %d", (int)from, (int)to);
  ser_tensor *out;
  if (ser_resample_tensor(&out, w, (int)from, (int)to, m) < 0) return ser_lua_fail(L, "audio.resample");
  ser_lua_pushtensor(L, out);
  return 1;
}

/* trim(wav [T] or [C, T] [, {top_db = 60, frame_length = 2048, hop_length = 512}])
 *   -> trimmed copy, first, last (the 1-based sample range kept; last = first - 1 if nothing is kept)
 * librosa.effects.trim's rule (see src/audio/trim.h). */
static int l_trim(lua_State *L) {
  ser_tensor *w = ser_lua_checktensor(L, 1);
  static const char *const keys[] = {"top_db", "frame_length", "hop_length", NULL};
  ser_lua_checkoptions(L, 2, keys, "audio.trim");
  ser_trim_opts o = ser_trim_opts_default();
  o.top_db = ser_lua_optnumber(L, 2, "top_db", o.top_db, "audio.trim");
  lua_Integer fl = ser_lua_optinteger(L, 2, "frame_length", o.frame_length, "audio.trim");
  lua_Integer hop = ser_lua_optinteger(L, 2, "hop_length", o.hop_length, "audio.trim");
  if (fl < 1 || fl > (1 << 24) || hop < 1 || hop > (1 << 24))
    return luaL_error(L, "audio.trim: frame_length and hop_length must be in 1..16777216, got %d and %d", (int)fl, (int)hop);
  o.frame_length = (int)fl;
  o.hop_length = (int)hop;
  if (w->ndim != 1 && w->ndim != 2)
    return luaL_error(L, "audio.trim: expected a waveform [T] or [C, T], got %s", SER_SHAPE(w));
  int64_t start, end;
  ser_tensor *out;
  if (ser_audio_trim_tensor(&out, &start, &end, w, &o) < 0) return ser_lua_fail(L, "audio.trim");
  ser_lua_pushtensor(L, out);
  lua_pushinteger(L, end > start ? start + 1 : 1);
  lua_pushinteger(L, end);
  return 3;
}

static int l_cache_stats(lua_State *L) {
  ser_audio_cache_stats s;
  ser_audio_cache_get_stats(&s);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)s.entries);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)s.bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)s.limit);
  lua_setfield(L, -2, "limit");
  lua_pushinteger(L, (lua_Integer)s.hits);
  lua_setfield(L, -2, "hits");
  lua_pushinteger(L, (lua_Integer)s.misses);
  lua_setfield(L, -2, "misses");
  lua_pushinteger(L, (lua_Integer)s.rejected);
  lua_setfield(L, -2, "rejected");
  return 1;
}

static int l_cache_clear(lua_State *L) {
  ser_audio_cache_clear();
  return 0;
}

/* cache_limit(megabytes): 0 disables keeping new results. */
static int l_cache_limit(lua_State *L) {
  lua_Number mb = luaL_checknumber(L, 1);
  if (!(mb >= 0)) return luaL_error(L, "audio.cache_limit: megabytes must be >= 0, got %f", mb);
  ser_audio_cache_set_limit((size_t)(mb * 1048576.0));
  return 0;
}

int ser_lua_open_audio(lua_State *L) {
  static const luaL_Reg fns[] = {{"load", l_load},         {"load_many", l_load_many},     {"save", l_save},
                                 {"info", l_info},         {"resample", l_resample},       {"cache_stats", l_cache_stats},
                                 {"cache_clear", l_cache_clear}, {"cache_limit", l_cache_limit}, {"trim", l_trim},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_newtable(L);
  for (int i = 0; ser_audio_extensions[i]; i++) {
    lua_pushstring(L, ser_audio_extensions[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "extensions");
  return 1;
}
