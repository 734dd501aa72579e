/* ser.core.augment: the C half of ser.augment (lua/ser/augment.lua builds the
 * transform objects, chains and the reference preset on top).
 *
 * Every function takes a waveform [T] / [B, T] (masks: [F, T], [B, F, T] or
 * [B, 1, F, T]) and returns a new tensor plus a report of what was done to
 * each example. Example b draws from its own generator derived in order from
 * the caller's (opts.generator or the global one), then the examples run in
 * parallel: the result depends on the seed, not on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment/augment.h"
#include "luat.h"

#define GEN_MT "ser.augment.Generator"

/* generator(seed) -> an independent random stream for augmentation. */
static int l_generator(lua_State *L) {
  lua_Integer seed = luaL_checkinteger(L, 1);
  ser_rng *r = lua_newuserdatauv(L, sizeof *r, 0);
  ser_rng_seed(r, (uint64_t)seed);
  luaL_setmetatable(L, GEN_MT);
  return 1;
}

static int gen_tostring(lua_State *L) {
  lua_pushfstring(L, "ser.augment.Generator (%p)", lua_touserdata(L, 1));
  return 1;
}

static ser_rng *opt_generator(lua_State *L, int opts) {
  if (lua_isnoneornil(L, opts)) return NULL;
  lua_getfield(L, opts, "generator");
  ser_rng *r = NULL;
  if (!lua_isnil(L, -1)) {
    r = luaL_testudata(L, -1, GEN_MT);
    if (!r) luaL_error(L, "augment: option 'generator' must come from ser.augment.generator(seed), got %s", luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return r;
}

static float opt_prob(lua_State *L, int opts, const char *fname) {
  double p = ser_lua_optnumber(L, opts, "p", 1.0, fname);
  if (!(p >= 0.0 && p <= 1.0)) luaL_error(L, "%s: p must be in [0, 1], got %f", fname, p);
  return (float)p;
}

/* Runs one waveform step over the rows of a copy of x (ser_aug_batch); pushes y and the
 * per-example report (a number each: the drawn parameter, or 0/1 when skipped). */
static int run_wave(lua_State *L, const char *fname, const ser_aug_step *step, int sr, ser_rng *parent) {
  ser_tensor *x = ser_lua_checktensor(L, 1);
  if (x->ndim != 1 && x->ndim != 2)
    return luaL_error(L, "%s: expected a waveform [T] or a batch [B, T], got %s", fname, SER_SHAPE(x));
  int64_t B = x->ndim == 2 ? x->shape[0] : 1, n = x->shape[x->ndim - 1];
  if (n < 1 || B < 1) return luaL_error(L, "%s: empty waveform %s", fname, SER_SHAPE(x));
  ser_tensor *y = ser_tensor_clone_raw(x);
  ser_lua_pushtensor(L, y);
  float *report = lua_newuserdatauv(L, sizeof *report * (size_t)B, 0);
  if (ser_aug_batch(ser_tensor_data(y), B, n, sr, step, 1, parent, NULL, report, 0) < 0) return ser_lua_fail(L, fname);
  lua_createtable(L, (int)B, 0);
  for (int64_t b = 0; b < B; b++) {
    lua_pushnumber(L, report[b]);
    lua_rawseti(L, -2, b + 1);
  }
  lua_remove(L, -2); /* y, report, table -> y, table */
  return 2;
}

static int l_gain(lua_State *L) {
  const char *f = "augment.gain";
  ser_aug_step j = {.kind = SER_AUG_GAIN};
  j.a = (float)ser_lua_optnumber(L, 2, "min", 0.8, f);
  j.b = (float)ser_lua_optnumber(L, 2, "max", 1.2, f);
  if (!(j.a <= j.b) || !isfinite(j.a) || !isfinite(j.b)) return luaL_error(L, "%s: need min <= max, got %f, %f", f, (double)j.a, (double)j.b);
  j.p = opt_prob(L, 2, f);
  return run_wave(L, f, &j, 0, opt_generator(L, 2));
}

static int l_noise(lua_State *L) {
  const char *f = "augment.noise";
  ser_aug_step j = {.kind = SER_AUG_NOISE};
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "snr_db");
  int has_snr = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (has_snr) {
    j.kind = SER_AUG_NOISE_SNR;
    j.a = (float)ser_lua_optnumber(L, 2, "snr_db", 20.0, f);
    if (!isfinite(j.a)) return luaL_error(L, "%s: snr_db must be finite", f);
  } else {
    j.a = (float)ser_lua_optnumber(L, 2, "std", 0.005, f);
    if (!(j.a >= 0) || !isfinite(j.a)) return luaL_error(L, "%s: std must be >= 0, got %f", f, (double)j.a);
  }
  j.p = opt_prob(L, 2, f);
  return run_wave(L, f, &j, 0, opt_generator(L, 2));
}

static int l_pitch(lua_State *L) {
  const char *f = "augment.pitch";
  ser_aug_step j = {.kind = SER_AUG_PITCH};
  int sr = (int)ser_lua_optinteger(L, 2, "sr", 16000, f);
  j.a = (float)ser_lua_optnumber(L, 2, "semitones", 2.0, f);
  if (sr < 1) return luaL_error(L, "%s: sr must be positive, got %d", f, sr);
  if (!(j.a >= 0 && j.a <= 24)) return luaL_error(L, "%s: semitones (the largest shift) must be in 0..24, got %f", f, (double)j.a);
  j.p = opt_prob(L, 2, f);
  return run_wave(L, f, &j, sr, opt_generator(L, 2));
}

static int l_speed(lua_State *L) {
  const char *f = "augment.speed";
  ser_aug_step j = {.kind = SER_AUG_SPEED, .factors = {0.9f, 1.0f, 1.1f}, .nf = 3};
  int sr = (int)ser_lua_optinteger(L, 2, "sr", 16000, f);
  if (sr < 1) return luaL_error(L, "%s: sr must be positive, got %d", f, sr);
  if (!lua_isnoneornil(L, 2)) {
    lua_getfield(L, 2, "factors");
    if (!lua_isnil(L, -1)) {
      if (!lua_istable(L, -1)) return luaL_error(L, "%s: factors must be a list of numbers", f);
      j.nf = (int)lua_rawlen(L, -1);
      if (j.nf < 1) return luaL_error(L, "%s: factors is empty", f);
      if (j.nf > SER_AUG_MAX_FACTORS)
        return luaL_error(L, "%s: %d factors, at most %d", f, j.nf, SER_AUG_MAX_FACTORS);
      for (int i = 0; i < j.nf; i++) {
        lua_rawgeti(L, -1, i + 1);
        double v = lua_tonumber(L, -1);
        if (!(v > 0.1 && v < 10)) return luaL_error(L, "%s: factors[%d] must be in (0.1, 10), got %s", f, i + 1, luaL_tolstring(L, -1, NULL));
        j.factors[i] = (float)v;
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  j.p = opt_prob(L, 2, f);
  return run_wave(L, f, &j, sr, opt_generator(L, 2));
}

static int l_time_shift(lua_State *L) {
  const char *f = "augment.time_shift";
  ser_aug_step j = {.kind = SER_AUG_SHIFT};
  lua_Integer max_shift = ser_lua_optinteger(L, 2, "max", 1600, f);
  if (max_shift < 0) return luaL_error(L, "%s: max (samples) must be >= 0, got %d", f, (int)max_shift);
  j.a = (double)max_shift;
  j.roll = ser_lua_optboolean(L, 2, "roll", 0, f);
  j.p = opt_prob(L, 2, f);
  return run_wave(L, f, &j, 0, opt_generator(L, 2));
}

/* pitch_shift(x, sr, semitones): deterministic shift of every row. */
static int l_pitch_shift(lua_State *L) {
  ser_tensor *x = ser_lua_checktensor(L, 1);
  lua_Integer sr = luaL_checkinteger(L, 2);
  double st = luaL_checknumber(L, 3);
  if (x->ndim != 1 && x->ndim != 2)
    return luaL_error(L, "augment.pitch_shift: expected a waveform [T] or a batch [B, T], got %s", SER_SHAPE(x));
  if (sr < 1 || sr > 1000000) return luaL_error(L, "augment.pitch_shift: sr must be in 1..1000000, got %d", (int)sr);
  int64_t B = x->ndim == 2 ? x->shape[0] : 1, n = x->shape[x->ndim - 1];
  ser_tensor *y = ser_tensor_clone_raw(x);
  ser_lua_pushtensor(L, y);
  if (ser_pitch_shift_batch(ser_tensor_data(y), B, n, (int)sr, st) < 0)
    return ser_lua_fail(L, "augment.pitch_shift");
  return 1;
}

/* mask(spec, {axis = "time"|"freq", count = 1, max_width = 16, value = 0, p = 1})
 * -> y, report: report[b] = {{start =, width =}, ...} (1-based start; width 0 if skipped). */
static int l_mask(lua_State *L) {
  const char *f = "augment.mask";
  ser_tensor *x = ser_lua_checktensor(L, 1);
  const char *axis = ser_lua_optstring(L, 2, "axis", "time", f);
  int ax;
  if (!strcmp(axis, "time")) ax = 1;
  else if (!strcmp(axis, "freq")) ax = 0;
  else return luaL_error(L, "%s: axis must be 'time' or 'freq', got '%s'", f, axis);
  lua_Integer count = ser_lua_optinteger(L, 2, "count", 1, f);
  lua_Integer maxw = ser_lua_optinteger(L, 2, "max_width", ax ? 16 : 8, f);
  float value = (float)ser_lua_optnumber(L, 2, "value", 0.0, f);
  float p = opt_prob(L, 2, f);
  ser_rng *parent = opt_generator(L, 2);
  if (count < 0 || count > 1000) return luaL_error(L, "%s: count must be in 0..1000, got %d", f, (int)count);
  if (maxw < 0) return luaL_error(L, "%s: max_width must be >= 0, got %d", f, (int)maxw);
  int64_t B, F, T;
  if (x->ndim == 2) B = 1, F = x->shape[0], T = x->shape[1];
  else if (x->ndim == 3) B = x->shape[0], F = x->shape[1], T = x->shape[2];
  else if (x->ndim == 4 && x->shape[1] == 1) B = x->shape[0], F = x->shape[2], T = x->shape[3];
  else return luaL_error(L, "%s: expected a spectrogram [F, T], [B, F, T] or [B, 1, F, T], got %s", f, SER_SHAPE(x));
  ser_tensor *y = ser_tensor_clone_raw(x);
  ser_lua_pushtensor(L, y);
  int64_t *st = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(2 * count + 1) * (size_t)B, 0);
  int64_t *wd = st + count * B;
  ser_aug_mask_batch(ser_tensor_data(y), B, F, T, ax, (int)count, (int)maxw, value, p, parent, st, wd);
  lua_createtable(L, (int)B, 0);
  for (int64_t b = 0; b < B; b++) {
    lua_createtable(L, (int)count, 0);
    for (lua_Integer c = 0; c < count; c++) {
      lua_createtable(L, 0, 3);
      lua_pushinteger(L, st[b * count + c] + 1);
      lua_setfield(L, -2, "start");
      lua_pushinteger(L, wd[b * count + c]);
      lua_setfield(L, -2, "width");
      lua_pushstring(L, axis);
      lua_setfield(L, -2, "axis");
      lua_rawseti(L, -2, c + 1);
    }
    lua_rawseti(L, -2, b + 1);
  }
  lua_remove(L, -2); /* the scratch userdata */
  return 2;
}

int ser_lua_open_augment(lua_State *L) {
  static const luaL_Reg fns[] = {{"generator", l_generator}, {"gain", l_gain},   {"noise", l_noise},
                                 {"pitch", l_pitch},         {"speed", l_speed}, {"time_shift", l_time_shift},
                                 {"pitch_shift", l_pitch_shift}, {"mask", l_mask}, {NULL, NULL}};
  if (luaL_newmetatable(L, GEN_MT)) {
    lua_pushcfunction(L, gen_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  return 1;
}
