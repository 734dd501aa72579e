/* ser.core.pretrained: the Whisper encoder of src/pretrained/whisper.h as a
 * userdata (load, config, forward); lua/ser/pretrained.lua builds the
 * ser.pretrained surface on it. Conversion and checks only. */
#include <string.h>

#include "luat.h"

#define WHISPER_MT "ser.WhisperEncoder"

static ser_whisper_encoder *check_encoder(lua_State *L, int idx) {
  return ser_lua_checkbox(L, idx, WHISPER_MT, "pretrained: the encoder");
}

static int enc_gc(lua_State *L) {
  ser_whisper_encoder_free(ser_lua_takebox(L, 1, WHISPER_MT));
  return 0;
}

/* load(path) -> encoder userdata, or nil, message */
static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  void **box = ser_lua_newbox(L, WHISPER_MT);
  ser_whisper_encoder *e;
  if (ser_whisper_encoder_load(&e, path) < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "pretrained.load: %s", ser_errmsg());
    return 2;
  }
  *box = e;
  ser_lua_account(L);
  return 1;
}

/* config(enc) -> { family = "whisper", layers, d_model, heads, n_mels, ffn_dim, max_positions, params, source } */
static int l_config(lua_State *L) {
  const ser_whisper_encoder *e = check_encoder(L, 1);
  lua_createtable(L, 0, 10);
  lua_pushliteral(L, "whisper");
  lua_setfield(L, -2, "family");
  ser_lua_setint(L, "layers", e->cfg.layers);
  ser_lua_setint(L, "d_model", e->cfg.d_model);
  ser_lua_setint(L, "heads", e->cfg.heads);
  ser_lua_setint(L, "n_mels", e->cfg.n_mels);
  ser_lua_setint(L, "ffn_dim", e->cfg.ffn);
  ser_lua_setint(L, "max_positions", e->cfg.max_positions);
  ser_lua_setint(L, "max_frames", 2 * (lua_Integer)e->cfg.max_positions);
  ser_lua_setint(L, "params", e->n_params);
  ser_lua_setint(L, "sample_rate", SER_WHISPER_SR);
  lua_pushstring(L, e->source);
  lua_setfield(L, -2, "source");
  ser_lua_setbool(L, "has_config", e->has_config);
  return 1;
}

/* forward(enc, x [B, n_mels, T] [, { lengths = {...} }] [, want_hidden [, n_blocks]]) -> out [, { hidden... }];
 * with n_blocks (0..layers): nil, { the embeddings and the outputs of blocks 1..n_blocks }
 * (whisper_blocks.h: the frozen bottom of a fine-tuned encoder) */
static int l_forward(lua_State *L) {
  const ser_whisper_encoder *e = check_encoder(L, 1);
  ser_tensor *x = ser_lua_checktensor(L, 2);
  const lua_Integer n_blocks = luaL_optinteger(L, 5, -1);
  const int want_hidden = lua_toboolean(L, 4) || n_blocks >= 0;
  const char *fname = "whisper encoder";
  int32_t *lengths = ser_lua_checklengths(L, 3, x, fname, "frame", 1 << 24);
  ser_tensor *out = NULL;
  ser_tensor **hidden = NULL;
  if (n_blocks >= 0) {
    if (n_blocks > e->cfg.layers)
      return luaL_error(L, "%s: %d blocks asked for, the encoder has %d", fname, (int)n_blocks, e->cfg.layers);
    hidden = lua_newuserdatauv(L, sizeof(ser_tensor *) * (size_t)(n_blocks + 1), 0);
    if (ser_whisper_encoder_forward_blocks_tensor(e, hidden, x, lengths, (int)n_blocks) < 0)
      return ser_lua_fail(L, fname);
    lua_pushnil(L);
  } else {
    if (want_hidden) hidden = lua_newuserdatauv(L, sizeof(ser_tensor *) * (size_t)(e->cfg.layers + 1), 0);
    if (ser_whisper_encoder_forward_tensor(e, &out, hidden, x, lengths) < 0) return ser_lua_fail(L, fname);
    ser_lua_pushtensor(L, out);
    if (!want_hidden) return 1;
  }
  ser_lua_pushtensorlist(L, hidden, (n_blocks >= 0 ? (int)n_blocks : e->cfg.layers) + 1);
  return 2;
}

static ser_tensor *encoder_tensor(const void *e, int i, const char **name) {
  return ser_whisper_encoder_tensor(e, i, name);
}

/* state_dict(enc) -> { ["model.encoder.conv1.weight"] = tensor, ... }: copies of the
 * weights (float32) under their Hugging Face names, so writing into them leaves the
 * encoder as it was. */
static int l_state_dict(lua_State *L) {
  const ser_whisper_encoder *e = check_encoder(L, 1);
  ser_lua_pushnamedtensors(L, e, ser_whisper_encoder_n_tensors(e), encoder_tensor, 1);
  return 1;
}

/* weights(enc) -> { ["model.encoder.conv1.weight"] = tensor, ... }: the encoder's own
 * weights, not copies (the fine-tuning module keeps its frozen part as these, so
 * the frozen weights are in memory once). Writing into them changes the encoder. */
static int l_weights(lua_State *L) {
  const ser_whisper_encoder *e = check_encoder(L, 1);
  ser_lua_pushnamedtensors(L, e, ser_whisper_encoder_n_tensors(e), encoder_tensor, 0);
  return 1;
}

static int enc_tostring(lua_State *L) {
  const ser_whisper_encoder *e = check_encoder(L, 1);
  lua_pushfstring(L, "WhisperEncoder(%d layers, d_model %d, %d heads, %d mels, '%s')", e->cfg.layers,
                  e->cfg.d_model, e->cfg.heads, e->cfg.n_mels, e->source);
  return 1;
}

int ser_lua_open_pretrained(lua_State *L) {
  ser_lua_newclass(L, WHISPER_MT, NULL, enc_gc, enc_tostring);
  static const luaL_Reg fns[] = {{"load", l_load}, {"config", l_config}, {"forward", l_forward},
                                 {"state_dict", l_state_dict}, {"weights", l_weights}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushnumber(L, SER_POOLED_STD_FLOOR);
  lua_setfield(L, -2, "POOLED_STD_FLOOR");
  return 1;
}
