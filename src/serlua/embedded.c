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
  for (const ser_embedded_lua *m = ser_embedded_lua_modules; m->module; m++) {
    if (strcmp(m->module, name) != 0) continue;
    int status = luaL_loadbuffer(L, (const char *)m->src, m->len, m->chunkname);
    if (status != LUA_OK) return status;
    lua_pushstring(L, name);
    return lua_pcall(L, 1, 1, 0);
  }
  lua_pushfstring(L, "module '%s' is not embedded in this serlua binary", name);
  return LUA_ERRRUN;
}
