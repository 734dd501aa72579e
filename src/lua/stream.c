/* ser.core.stream: the streaming front end of ser.stream (src/audio/stream.h).
 *   pcm_decode(bytes, "s16"|"f32", channels) -> samples [n] (mono), bytes used
 *   frame_db(x [n], frame)                   -> dBFS of each frame [ceil(n / frame)]
 *   new{ in_rate =, rate =, window =, hop = } -> a Stream:
 *     st:push(x [n] [, first])  -> samples taken from x[first..n] (first 1-based, default 1)
 *     st:finish()               -> true while the resampler's tail is still waiting for room
 *     st:next_window()          -> samples [len], start (0-based sample index at rate) | nil
 *     st:samples()              -> samples at rate received so far
 *     st:close()                -> frees it now (also __gc / __close) */
#include <string.h>

#include "luat.h"

#define STREAM_MT "ser.core.Stream"

static ser_stream **check_box(lua_State *L) {
  return luaL_checkudata(L, 1, STREAM_MT);
}

static ser_stream *check_stream(lua_State *L) {
  ser_stream **box = check_box(L);
  if (!*box) luaL_error(L, "stream: the stream is closed");
  return *box;
}

static int l_close(lua_State *L) {
  ser_stream **box = check_box(L);
  ser_stream_free(*box);
  *box = NULL;
  return 0;
}

static ser_pcm_format check_format(lua_State *L, int idx) {
  const char *f = luaL_checkstring(L, idx);
  if (strcmp(f, "s16") == 0) return SER_PCM_S16;
  if (strcmp(f, "f32") == 0) return SER_PCM_F32;
  luaL_error(L, "pcm_decode: format must be \"s16\" or \"f32\", got \"%s\"", f);
  return SER_PCM_S16;
}

static int l_pcm_decode(lua_State *L) {
  size_t n;
  const char *bytes = luaL_checklstring(L, 1, &n);
  ser_pcm_format fmt = check_format(L, 2);
  lua_Integer channels = luaL_optinteger(L, 3, 1);
  if (channels < 1 || channels > 64) return luaL_error(L, "pcm_decode: channels must be 1..64, got %d", (int)channels);
  int64_t frames = (int64_t)(n / ((size_t)ser_pcm_sample_bytes(fmt) * (size_t)channels));
  int64_t shape[1] = {frames};
  ser_tensor *t = ser_tensor_empty(1, shape);
  ser_lua_pushtensor(L, t);
  size_t used = 0;
  if (ser_pcm_decode(ser_tensor_data(t), (const unsigned char *)bytes, n, fmt, (int)channels, &used) < 0)
    return ser_lua_fail(L, "pcm_decode");
  lua_pushinteger(L, (lua_Integer)used);
  return 2;
}

/* A contiguous 1-D tensor at idx (the caller's, borrowed; a view is copied onto the stack). */
static ser_tensor *check_signal(lua_State *L, int idx, const char *fname) {
  ser_tensor *t = ser_lua_checktensor(L, idx);
  if (t->ndim != 1) return luaL_error(L, "%s: expected a 1-D tensor of samples, got %d dimensions", fname, t->ndim), NULL;
  if (!ser_tensor_is_contiguous(t)) {
    ser_lua_pushtensor(L, ser_tensor_contiguous_raw(t));
    lua_replace(L, idx);
    t = ser_lua_checktensor(L, idx);
  }
  return t;
}

static int l_frame_db(lua_State *L) {
  ser_tensor *x = check_signal(L, 1, "frame_db");
  lua_Integer frame = luaL_checkinteger(L, 2);
  if (frame < 1) return luaL_error(L, "frame_db: frame must be >= 1 sample, got %d", (int)frame);
  int64_t n = x->shape[0], shape[1] = {(n + frame - 1) / frame};
  ser_tensor *out = ser_tensor_empty(1, shape);
  ser_lua_pushtensor(L, out);
  ser_frame_db(ser_tensor_data(out), ser_tensor_data(x), n, (int64_t)frame);
  return 1;
}

static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const known[] = {"in_rate", "rate", "window", "hop", NULL};
  ser_lua_checkoptions(L, 1, known, "stream.new");
  ser_stream_opts o = {
      .in_rate = ser_lua_optnumber(L, 1, "in_rate", 16000, "stream.new"),
      .rate = (int)ser_lua_optinteger(L, 1, "rate", 16000, "stream.new"),
      .window = (int64_t)ser_lua_optinteger(L, 1, "window", 48000, "stream.new"),
      .hop = (int64_t)ser_lua_optinteger(L, 1, "hop", 8000, "stream.new"),
  };
  /* the userdata exists (empty) before the stream, so a raise in between leaks nothing */
  ser_stream **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, STREAM_MT);
  if (ser_stream_new(box, &o) < 0) return ser_lua_fail(L, "stream.new");
  return 1;
}

static int l_push(lua_State *L) {
  ser_stream *s = check_stream(L);
  ser_tensor *x = check_signal(L, 2, "stream:push");
  lua_Integer first = luaL_optinteger(L, 3, 1);
  int64_t n = x->shape[0];
  if (first < 1 || first > n + 1)
    return luaL_error(L, "stream:push: first must be 1..%d, got %d", (int)(n + 1), (int)first);
  int64_t taken = ser_stream_push(s, ser_tensor_data(x) + (first - 1), n - (first - 1));
  if (taken < 0) return ser_lua_fail(L, "stream:push");
  lua_pushinteger(L, (lua_Integer)taken);
  return 1;
}

static int l_finish(lua_State *L) {
  int rc = ser_stream_finish(check_stream(L));
  if (rc < 0) return ser_lua_fail(L, "stream:finish");
  lua_pushboolean(L, rc == 1);
  return 1;
}

static int l_next_window(lua_State *L) {
  ser_stream *s = check_stream(L);
  int64_t shape[1] = {ser_stream_window(s)}, start = 0, len = 0;
  ser_tensor *buf = ser_tensor_empty(1, shape);
  ser_lua_pushtensor(L, buf);
  if (!ser_stream_next_window(s, ser_tensor_data(buf), &start, &len)) {
    lua_pushnil(L);
    return 1;
  }
  if (len < shape[0]) {
    ser_tensor *part = NULL;
    if (ser_tensor_narrow_raw(&part, buf, 0, 0, len) < 0) return ser_lua_fail(L, "stream:next_window");
    ser_lua_pushtensor(L, part);
  }
  lua_pushinteger(L, (lua_Integer)start);
  return 2;
}

static int l_samples(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ser_stream_samples(check_stream(L)));
  return 1;
}

int ser_lua_open_stream(lua_State *L) {
  static const luaL_Reg methods[] = {{"push", l_push},           {"finish", l_finish}, {"next_window", l_next_window},
                                     {"samples", l_samples},     {"close", l_close},   {NULL, NULL}};
  ser_lua_newclass(L, STREAM_MT, methods, l_close, NULL);
  static const luaL_Reg fns[] = {{"pcm_decode", l_pcm_decode}, {"frame_db", l_frame_db}, {"new", l_new}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
