/* ser.core.features (ser.features): logmel / mfcc / power / melpower / stft on
 * [T] or [B, T] waveforms, plus the filterbank, window, DCT and dB helpers.
 * Option names follow torchaudio where it has one. */
#include <math.h>
#include <string.h>

#include "audio/audio.h"
#include "luat.h"

static const char *const feat_keys[] = {"sr",   "n_fft",  "hop",   "n_mels",    "fmin",   "fmax",     "mel_scale",
                                        "norm", "power",  "top_db", "floor",    "normalize", "n_mfcc", "log_mels",
                                        "win_length", NULL};

/* A number, or false to switch the step off; nil keeps the default. */
static double opt_number_or_false(lua_State *L, int opts, const char *key, double def, const char *fname) {
  if (lua_isnoneornil(L, opts)) return def;
  lua_getfield(L, opts, key);
  double v = def;
  if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) v = NAN;
  else if (lua_isnumber(L, -1)) v = lua_tonumber(L, -1);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "%s: option '%s' must be a number (dB) or false, got %s", fname, key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static int opt_int(lua_State *L, int opts, const char *key, int def, int lo, const char *fname) {
  lua_Integer v = ser_lua_optinteger(L, opts, key, def, fname);
  if (v < lo || v > (1 << 24)) luaL_error(L, "%s: option '%s' must be an integer >= %d, got %d", fname, key, lo, (int)v);
  return (int)v;
}

/* The one parser of feature options (ser.features and the loader's prefetch worker):
 * unknown keys are refused, defaults come from ser_feat_opts_for(kind). */
ser_feat_opts ser_lua_checkfeatopts(lua_State *L, int idx, ser_feat_kind kind, const char *fname) {
  ser_lua_checkoptions(L, idx, feat_keys, fname);
  ser_feat_opts o = ser_feat_opts_for(kind);
  o.sr = opt_int(L, idx, "sr", o.sr, 1, fname);
  o.n_fft = opt_int(L, idx, "n_fft", o.n_fft, 2, fname);
  int win = opt_int(L, idx, "win_length", o.n_fft, 1, fname);
  if (win != o.n_fft)
    luaL_error(L, "%s: win_length %d differs from n_fft %d; only win_length == n_fft is implemented", fname, win, o.n_fft);
  o.hop = opt_int(L, idx, "hop", o.hop, 1, fname);
  o.n_mels = opt_int(L, idx, "n_mels", o.n_mels, 1, fname);
  o.fmin = ser_lua_optnumber(L, idx, "fmin", o.fmin, fname);
  o.fmax = ser_lua_optnumber(L, idx, "fmax", o.sr / 2.0 < o.fmax ? o.sr / 2.0 : o.fmax, fname);
  const char *scale = ser_lua_optstring(L, idx, "mel_scale", "htk", fname);
  if (!strcmp(scale, "htk")) o.htk = 1;
  else if (!strcmp(scale, "slaney")) o.htk = 0;
  else luaL_error(L, "%s: mel_scale must be 'htk' or 'slaney', got '%s'", fname, scale);
  const char *norm = ser_lua_optstring(L, idx, "norm", "none", fname);
  if (!strcmp(norm, "none")) o.slaney_norm = 0;
  else if (!strcmp(norm, "slaney")) o.slaney_norm = 1;
  else luaL_error(L, "%s: norm must be 'none' or 'slaney', got '%s'", fname, norm);
  o.power = ser_lua_optnumber(L, idx, "power", o.power, fname);
  o.top_db = opt_number_or_false(L, idx, "top_db", o.top_db, fname);
  o.floor_db = opt_number_or_false(L, idx, "floor", o.floor_db, fname);
  o.normalize = ser_lua_optboolean(L, idx, "normalize", o.normalize, fname);
  o.n_mfcc = opt_int(L, idx, "n_mfcc", o.n_mfcc, 1, fname);
  o.log_mels = ser_lua_optboolean(L, idx, "log_mels", o.log_mels, fname);
  return o;
}

static int run_kind(lua_State *L, ser_feat_kind kind, const char *fname) {
  ser_tensor *w = ser_lua_checktensor(L, 1);
  ser_feat_opts o = ser_lua_checkfeatopts(L, 2, kind, fname);
  ser_tensor *out;
  if (ser_features_tensor(&out, w, kind, &o) < 0) return ser_lua_fail(L, fname);
  ser_lua_pushtensor(L, out);
  return 1;
}

static int l_logmel(lua_State *L) { return run_kind(L, SER_FEAT_LOGMEL, "features.logmel"); }
static int l_mfcc(lua_State *L) { return run_kind(L, SER_FEAT_MFCC, "features.mfcc"); }
static int l_power(lua_State *L) { return run_kind(L, SER_FEAT_POWER, "features.power"); }
static int l_melpower(lua_State *L) { return run_kind(L, SER_FEAT_MELPOWER, "features.melpower"); }

static int l_stft(lua_State *L) {
  ser_tensor *w = ser_lua_checktensor(L, 1);
  ser_feat_opts o = ser_lua_checkfeatopts(L, 2, SER_FEAT_POWER, "features.stft");
  ser_tensor *out;
  if (ser_stft_tensor(&out, w, &o) < 0) return ser_lua_fail(L, "features.stft");
  ser_lua_pushtensor(L, out);
  return 1;
}

/* melbank([opts]) -> [n_mels, n_fft/2 + 1], so that mel = melbank @ power. */
static int l_melbank(lua_State *L) {
  ser_feat_opts o = ser_lua_checkfeatopts(L, 1, SER_FEAT_MELPOWER, "features.melbank");
  ser_tensor *out;
  if (ser_melbank_tensor(&out, &o) < 0) return ser_lua_fail(L, "features.melbank");
  ser_lua_pushtensor(L, out);
  return 1;
}

/* hann(n) -> periodic Hann window [n] */
/* hz_to_mel(hz [, htk = true]) / mel_to_hz(mel [, htk = true]): the mel scale of the filterbanks
 * (HTK's 2595 log10(1 + f / 700), or Slaney's with htk = false). */
static int l_hz_to_mel(lua_State *L) {
  lua_pushnumber(L, ser_hz_to_mel(luaL_checknumber(L, 1), lua_isnoneornil(L, 2) || lua_toboolean(L, 2)));
  return 1;
}
static int l_mel_to_hz(lua_State *L) {
  lua_pushnumber(L, ser_mel_to_hz(luaL_checknumber(L, 1), lua_isnoneornil(L, 2) || lua_toboolean(L, 2)));
  return 1;
}

static int l_hann(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1 || n > (1 << 24)) return luaL_error(L, "features.hann: length must be in 1..16777216, got %d", (int)n);
  ser_tensor *t = ser_tensor_empty(1, SER_DIMS(n));
  if (t) ser_hann_window(ser_tensor_data(t), (int)n);
  ser_lua_pushtensor(L, t);
  return 1;
}

/* dct(n_mfcc, n_mels) -> [n_mfcc, n_mels] DCT-II ortho (torchaudio's create_dct transposed) */
static int l_dct(lua_State *L) {
  lua_Integer k = luaL_checkinteger(L, 1), m = luaL_checkinteger(L, 2);
  if (m < 1 || k < 1 || k > m || m > 65536)
    return luaL_error(L, "features.dct: need 1 <= n_mfcc <= n_mels <= 65536, got %d, %d", (int)k, (int)m);
  ser_tensor *t = ser_tensor_empty(2, SER_DIMS(k, m));
  if (t) ser_dct_matrix(ser_tensor_data(t), (int)k, (int)m);
  ser_lua_pushtensor(L, t);
  return 1;
}

/* amplitude_to_db(power [, {top_db =, floor =}]) -> new tensor; top_db over the whole tensor. */
static int l_amplitude_to_db(lua_State *L) {
  ser_tensor *x = ser_lua_checktensor(L, 1);
  const char *fname = "features.amplitude_to_db";
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  double top_db = opt_number_or_false(L, 2, "top_db", NAN, fname);
  double floor_db = opt_number_or_false(L, 2, "floor", NAN, fname);
  if (!isnan(top_db) && !(top_db >= 0)) return luaL_error(L, "%s: top_db must be >= 0, got %f", fname, top_db);
  ser_tensor *out = ser_tensor_clone_raw(x);
  ser_lua_pushtensor(L, out);
  ser_amplitude_to_db(ser_tensor_data(out), ser_tensor_numel(out), top_db, floor_db);
  return 1;
}

/* whisper_logmel(wav [, {n_mels = 80}]) -> [n_mels, T // 160] ([B, T] -> [B, n_mels, T // 160]):
 * Whisper's front end (src/audio/whisper_mel.h) on 16 kHz audio. */
static int l_whisper_logmel(lua_State *L) {
  static const char *const keys[] = {"n_mels", NULL};
  const char *fname = "features.whisper_logmel";
  ser_tensor *w = ser_lua_checktensor(L, 1);
  ser_lua_checkoptions(L, 2, keys, fname);
  const int n_mels = opt_int(L, 2, "n_mels", 80, 1, fname);
  ser_tensor *out;
  if (ser_whisper_logmel_tensor(&out, w, n_mels) < 0) return ser_lua_fail(L, fname);
  ser_lua_pushtensor(L, out);
  return 1;
}

/* frames(T [, hop]) -> 1 + T // hop, the frame count of the centred STFT */
static int l_frames(lua_State *L) {
  lua_Integer T = luaL_checkinteger(L, 1), hop = luaL_optinteger(L, 2, 256);
  if (hop < 1 || T < 0) return luaL_error(L, "features.frames: need T >= 0 and hop >= 1, got %d, %d", (int)T, (int)hop);
  lua_pushinteger(L, ser_stft_frames(T, (int)hop));
  return 1;
}

/* znorm(x [B, ...]) -> each x[b] with mean 0 and (unbiased) std 1, the
 * per-utterance normalisation the log-mel features end with, for inputs that
 * are not spectrograms (the CNN1D's waveform: without it, eval-mode BatchNorm
 * sees each speaker's loudness as a feature scale). */
static int l_znorm(lua_State *L) {
  ser_tensor *x = ser_lua_checktensor(L, 1);
  if (x->ndim < 2)
    return luaL_error(L, "features.znorm: expected [B, ...] with one row per clip, got %s", SER_SHAPE(x));
  ser_tensor *out = ser_tensor_clone_raw(x);
  ser_lua_pushtensor(L, out);
  int64_t rows = x->shape[0];
  ser_feat_normalize_rows(ser_tensor_data(out), rows, ser_tensor_numel(out) / (rows > 0 ? rows : 1));
  return 1;
}

int ser_lua_open_features(lua_State *L) {
  static const luaL_Reg fns[] = {{"logmel", l_logmel}, {"mfcc", l_mfcc},       {"power", l_power},
                                 {"melpower", l_melpower}, {"stft", l_stft},   {"melbank", l_melbank},
                                 {"hann", l_hann},     {"dct", l_dct},         {"amplitude_to_db", l_amplitude_to_db},
                                 {"frames", l_frames}, {"znorm", l_znorm}, {"whisper_logmel", l_whisper_logmel},
                                 {"hz_to_mel", l_hz_to_mel}, {"mel_to_hz", l_mel_to_hz},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushnumber(L, SER_SPEAKER_STD_FLOOR);
  lua_setfield(L, -2, "SPEAKER_STD_FLOOR");
  return 1;
}
