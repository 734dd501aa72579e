/* luaopen_ser: the entry point of ser.so and of serlua's preloaded library.
 * Registers the C modules and the embedded Lua sources in package.preload,
 * then runs lua/ser/init.lua, which assembles the `ser` table. */
#include <string.h>

#include "luat.h"

typedef struct {
  const char *module, *chunkname;
  const unsigned char *src;
  size_t len;
} ser_embedded_lua;
extern const ser_embedded_lua ser_embedded_lua_modules[];

/* One line per binding file: package.preload["ser.core.<area>"]. */
static const struct {
  const char *name;
  lua_CFunction open;
} c_modules[] = {
    {"ser.core.base", ser_lua_open_base},
    {"ser.core.tensor", ser_lua_open_tensor},
    {"ser.core.data", ser_lua_open_data},
    {"ser.core.audio", ser_lua_open_audio},
    {"ser.core.features", ser_lua_open_features},
    {"ser.core.augment", ser_lua_open_augment},
    {"ser.core.eval", ser_lua_open_eval},
    {"ser.core.nn_cnn", ser_lua_open_nn_functional_cnn},
    {"ser.core.nn_rnn", ser_lua_open_nn_rnn},
    {"ser.core.nn_transformer", ser_lua_open_nn_transformer},
    {"ser.core.optim", ser_lua_open_optim},
    {"ser.core.checkpoint", ser_lua_open_checkpoint},
    {"ser.core.pretrained", ser_lua_open_pretrained},
    {"ser.core.wav2vec2", ser_lua_open_wav2vec2},
    {"ser.core.fs", ser_lua_open_fs},
    {"ser.core.digest", ser_lua_open_digest},
    {"ser.core.dist", ser_lua_open_dist},
    {"ser.core.onnx", ser_lua_open_onnx},
    {"ser.core.http", ser_lua_open_http},
    {"ser.core.stream", ser_lua_open_stream},
    {NULL, NULL},
};

static const ser_embedded_lua *find_embedded(const char *name) {
  for (const ser_embedded_lua *m = ser_embedded_lua_modules; m->module; m++)
    if (strcmp(m->module, name) == 0) return m;
  return NULL;
}

/* package.preload loader for an embedded Lua module: upvalue 1 = its index. */
static int load_embedded(lua_State *L) {
  const ser_embedded_lua *m = &ser_embedded_lua_modules[lua_tointeger(L, lua_upvalueindex(1))];
  if (luaL_loadbuffer(L, (const char *)m->src, m->len, m->chunkname) != LUA_OK) return lua_error(L);
  lua_pushstring(L, m->module);
  lua_call(L, 1, 1);
  return 1;
}

int luaopen_ser(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (int i = 0; c_modules[i].name; i++) {
    lua_pushcfunction(L, c_modules[i].open);
    lua_setfield(L, -2, c_modules[i].name);
  }
  for (int i = 0; ser_embedded_lua_modules[i].module; i++) {
    if (strcmp(ser_embedded_lua_modules[i].module, "ser") == 0) continue; /* that is us */
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, ser_embedded_lua_modules[i].module);
  }
  lua_pop(L, 1);

  /* package.loaded.ser is set before init.lua runs, so a submodule that
   * requires "ser" while loading gets the (filling) table, not a loop. */
  lua_newtable(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "ser");
  lua_pop(L, 1);
  const ser_embedded_lua *init = find_embedded("ser");
  if (!init) return luaL_error(L, "ser: lua/ser/init.lua is missing from the build");
  if (luaL_loadbuffer(L, (const char *)init->src, init->len, init->chunkname) != LUA_OK) return lua_error(L);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 1);
  return 1;
}
