/* ser.core.wav2vec2: the wav2vec 2.0 / HuBERT / WavLM encoders of
 * src/pretrained/wav2vec2.h as a userdata (detect, load, config, frontend,
 * forward, state_dict); lua/ser/pretrained.lua builds the ser.pretrained
 * surface on it. Conversion and checks only. */
#include <string.h>

#include "luat.h"

#define W2V_MT "ser.Wav2Vec2Encoder"

static ser_wav2vec2_encoder *check_encoder(lua_State *L, int idx) {
  return ser_lua_checkbox(L, idx, W2V_MT, "pretrained: the encoder");
}

static int enc_gc(lua_State *L) {
  ser_wav2vec2_encoder_free(ser_lua_takebox(L, 1, W2V_MT));
  return 0;
}

/* detect(path) -> true when the file (or folder) holds a wav2vec2-family model */
static int l_detect(lua_State *L) {
  lua_pushboolean(L, ser_wav2vec2_detect(luaL_checkstring(L, 1)));
  return 1;
}

/* load(path) -> encoder userdata, or nil, message */
static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  void **box = ser_lua_newbox(L, W2V_MT);
  ser_wav2vec2_encoder *e;
  if (ser_wav2vec2_encoder_load(&e, path) < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "pretrained.load: %s", ser_errmsg());
    return 2;
  }
  *box = e;
  ser_lua_account(L);
  return 1;
}

static void set_list(lua_State *L, const char *k, const int *v, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, k);
}

/* config(enc) -> { family, layers, d_model, heads, ffn_dim, conv_dim = {...}, ... } */
static int l_config(lua_State *L) {
  const ser_wav2vec2_encoder *e = check_encoder(L, 1);
  const ser_wav2vec2_config *c = &e->cfg;
  lua_createtable(L, 0, 24);
  lua_pushstring(L, ser_wav2vec2_family_name(c->family));
  lua_setfield(L, -2, "family");
  ser_lua_setint(L, "layers", c->layers);
  ser_lua_setint(L, "d_model", c->d_model);
  ser_lua_setint(L, "heads", c->heads);
  ser_lua_setint(L, "ffn_dim", c->ffn);
  set_list(L, "conv_dim", c->conv_dim, c->n_conv);
  set_list(L, "conv_kernel", c->conv_kernel, c->n_conv);
  set_list(L, "conv_stride", c->conv_stride, c->n_conv);
  lua_pushstring(L, c->layer_extractor ? "layer" : "group");
  lua_setfield(L, -2, "feat_extract_norm");
  ser_lua_setbool(L, "conv_bias", c->conv_bias);
  ser_lua_setbool(L, "feat_proj_layer_norm", c->proj_norm);
  ser_lua_setbool(L, "do_stable_layer_norm", c->stable_layer_norm);
  ser_lua_setbool(L, "do_normalize", c->do_normalize);
  ser_lua_setint(L, "pos_kernel", c->pos_kernel);
  ser_lua_setint(L, "pos_groups", c->pos_groups);
  if (c->family == SER_W2V_WAVLM) {
    ser_lua_setint(L, "num_buckets", c->num_buckets);
    ser_lua_setint(L, "max_bucket_distance", c->max_distance);
  }
  lua_pushnumber(L, c->eps);
  lua_setfield(L, -2, "layer_norm_eps");
  ser_lua_setint(L, "receptive_field", c->receptive_field);
  ser_lua_setint(L, "hop", c->hop);
  ser_lua_setint(L, "params", e->n_params);
  ser_lua_setint(L, "sample_rate", 16000);
  lua_pushstring(L, e->source);
  lua_setfield(L, -2, "source");
  ser_lua_setbool(L, "has_config", e->has_config);
  return 1;
}

/* frames(enc, n_samples) -> output frames */
static int l_frames(lua_State *L) {
  const ser_wav2vec2_encoder *e = check_encoder(L, 1);
  const lua_Integer n = luaL_checkinteger(L, 2);
  lua_pushinteger(L, n < 0 ? 0 : ser_wav2vec2_encoder_frames(e, n));
  return 1;
}

/* frontend(enc, wav [N]) -> [N]: the clip z-scored when the config says do_normalize, else a copy */
static int l_frontend(lua_State *L) {
  const ser_wav2vec2_encoder *e = check_encoder(L, 1);
  ser_tensor *x = ser_lua_checktensor(L, 2);
  if (x->ndim != 1)
    return luaL_error(L, "%s frontend: expected one 16 kHz waveform [N], got %s", ser_wav2vec2_family_name(e->cfg.family),
                      SER_SHAPE(x));
  ser_tensor *xc = ser_tensor_contiguous_raw(x);
  ser_tensor *y = xc ? ser_tensor_empty(1, x->shape) : NULL;
  if (!y) {
    ser_tensor_release(xc);
    return luaL_error(L, "frontend: out of memory");
  }
  ser_wav2vec2_frontend(e, ser_tensor_data(y), ser_tensor_data(xc), x->shape[0]);
  ser_tensor_release(xc);
  ser_lua_pushtensor(L, y);
  return 1;
}

/* forward(enc, x [B, N] [, { lengths = {...} }] [, want_hidden]) -> out [, { hidden... }] */
static int l_forward(lua_State *L) {
  const ser_wav2vec2_encoder *e = check_encoder(L, 1);
  ser_tensor *x = ser_lua_checktensor(L, 2);
  const int want_hidden = lua_toboolean(L, 4);
  char fname[64];
  snprintf(fname, sizeof fname, "%s encoder", ser_wav2vec2_family_name(e->cfg.family));
  int32_t *lengths = ser_lua_checklengths(L, 3, x, fname, "sample", 1 << 26);
  ser_tensor *out = NULL;
  ser_tensor **hidden = NULL;
  if (want_hidden) hidden = lua_newuserdatauv(L, sizeof(ser_tensor *) * (size_t)(e->cfg.layers + 1), 0);
  if (ser_wav2vec2_encoder_forward_tensor(e, &out, hidden, x, lengths) < 0) return ser_lua_fail(L, fname);
  ser_lua_pushtensor(L, out);
  if (!want_hidden) return 1;
  ser_lua_pushtensorlist(L, hidden, e->cfg.layers + 1);
  return 2;
}

static ser_tensor *encoder_tensor(const void *e, int i, const char **name) {
  return ser_wav2vec2_encoder_tensor(e, i, name);
}

/* state_dict(enc) -> { ["encoder.layers.0.attention.q_proj.weight"] = tensor, ... }: copies,
 * Hugging Face names without the family prefix (the positional conv's weight folded). */
static int l_state_dict(lua_State *L) {
  const ser_wav2vec2_encoder *e = check_encoder(L, 1);
  ser_lua_pushnamedtensors(L, e, ser_wav2vec2_encoder_n_tensors(e), encoder_tensor, 1);
  return 1;
}

static int enc_tostring(lua_State *L) {
  const ser_wav2vec2_encoder *e = check_encoder(L, 1);
  const ser_wav2vec2_config *c = &e->cfg;
  lua_pushfstring(L, "%sEncoder(%d layers, d_model %d, %d heads, %s extractor, %s, '%s')",
                  c->family == SER_W2V_WAVLM ? "WavLM" : c->family == SER_W2V_HUBERT ? "Hubert" : "Wav2Vec2",
                  c->layers, c->d_model, c->heads, c->layer_extractor ? "layer" : "group",
                  c->stable_layer_norm ? "pre-LN" : "post-LN", e->source);
  return 1;
}

int ser_lua_open_wav2vec2(lua_State *L) {
  ser_lua_newclass(L, W2V_MT, NULL, enc_gc, enc_tostring);
  static const luaL_Reg fns[] = {{"detect", l_detect},     {"load", l_load},       {"config", l_config},
                                 {"frames", l_frames},     {"frontend", l_frontend}, {"forward", l_forward},
                                 {"state_dict", l_state_dict}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
