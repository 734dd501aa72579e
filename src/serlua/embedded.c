#include "embedded.h"

#include <lauxlib.h>
#include <string.h>

/* Mirrors the typedef written into the generated file by scripts/embed-lua.lua. */
typedef struct {
  const char *module, *chunkname;
  const unsigned char *src;
  size_t len;
} ser_embedded_lua;

extern const ser_embedded_lua ser_embedded_lua_modules[];

int serlua_require_embedded(lua_State *L, const char *name) {
  /* Shares package.loaded with require, so that require "ser.repl" in the session
   * returns the instance the REPL uses (and changing its options takes effect). */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, name) != LUA_TNIL) {
    lua_remove(L, -2);
    return LUA_OK;
  }
  lua_pop(L, 1);
  for (const ser_embedded_lua *m = ser_embedded_lua_modules; m->module; m++) {
    if (strcmp(m->module, name) != 0) continue;
    int status = luaL_loadbuffer(L, (const char *)m->src, m->len, m->chunkname);
    if (status == LUA_OK) {
      lua_pushstring(L, name);
      status = lua_pcall(L, 1, 1, 0);
    }
    if (status == LUA_OK) {
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, name);
    }
    lua_remove(L, -2);
    return status;
  }
  lua_pop(L, 1);
  lua_pushfstring(L, "module '%s' is not embedded in this serlua binary", name);
  return LUA_ERRRUN;
}
