/* ser.core.pretrained: the Whisper encoder of src/pretrained/whisper.h as a
 * userdata (load, config, forward); lua/ser/pretrained.lua builds the
 * ser.pretrained surface on it. Conversion and checks only. */
#include <string.h>

#include "luat.h"

#define WHISPER_MT "ser.WhisperEncoder"

typedef struct {
  ser_whisper_encoder *enc;
} encoder_box;

static ser_whisper_encoder *check_encoder(lua_State *L, int idx) {
  encoder_box *b = luaL_checkudata(L, idx, WHISPER_MT);
  if (!b->enc) luaL_error(L, "pretrained: the encoder was already released");
  return b->enc;
}

static int enc_gc(lua_State *L) {
  encoder_box *b = luaL_checkudata(L, 1, WHISPER_MT);
  ser_whisper_encoder_free(b->enc);
  b->enc = NULL;
  return 0;
}

/* load(path) -> encoder userdata, or nil, message */
static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  encoder_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->enc = NULL;
  luaL_setmetatable(L, WHISPER_MT);
  if (ser_whisper_encoder_load(&b->enc, path) < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "pretrained.load: %s", ser_errmsg());
    return 2;
  }
  ser_lua_account(L);
  return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* config(enc) -> { family = "whisper", layers, d_model, heads, n_mels, ffn_dim, max_positions, params, source } */
static int l_config(lua_State *L) {
  const ser_whisper_encoder *e = check_encoder(L, 1);
  lua_createtable(L, 0, 10);
  lua_pushliteral(L, "whisper");
  lua_setfield(L, -2, "family");
  set_int(L, "layers", e->cfg.layers);
  set_int(L, "d_model", e->cfg.d_model);
  set_int(L, "heads", e->cfg.heads);
  set_int(L, "n_mels", e->cfg.n_mels);
  set_int(L, "ffn_dim", e->cfg.ffn);
  set_int(L, "max_positions", e->cfg.max_positions);
  set_int(L, "max_frames", 2 * (lua_Integer)e->cfg.max_positions);
  set_int(L, "params", e->n_params);
  set_int(L, "sample_rate", SER_WHISPER_SR);
  lua_pushstring(L, e->source);
  lua_setfield(L, -2, "source");
  lua_pushboolean(L, e->has_config);
  lua_setfield(L, -2, "has_config");
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
  if (luaL_newmetatable(L, WHISPER_MT)) {
    lua_pushcfunction(L, enc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, enc_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, enc_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"load", l_load}, {"config", l_config}, {"forward", l_forward},
                                 {"state_dict", l_state_dict}, {"weights", l_weights}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
