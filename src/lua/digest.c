/* ser.core.digest: SHA-256 content keys (src/io/sha256.h) for the embedding cache.
 *   sha256(string)    -> 64 hex digits
 *   sha256_file(path) -> 64 hex digits, or nil and a message (the path and why) */
#include "io/sha256.h"
#include "luat.h"

static int l_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[65];
  ser_sha256_hex(hex, s, len);
  lua_pushstring(L, hex);
  return 1;
}

static int l_sha256_file(lua_State *L) {
  char hex[65];
  if (ser_sha256_file(hex, luaL_checkstring(L, 1)) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  lua_pushstring(L, hex);
  return 1;
}

int ser_lua_open_digest(lua_State *L) {
  static const luaL_Reg fns[] = {{"sha256", l_sha256}, {"sha256_file", l_sha256_file}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
