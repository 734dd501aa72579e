/* ser.core.fs: folder and terminal checks for the Lua library (src/io/fs.h), so no
 * script needs a shell for them.
 *   is_dir(path)   -> boolean
 *   mkdir_p(path)  -> true, or nil and a message (the folder and why it failed)
 *   isatty(fd)     -> boolean (fd 0, 1, 2: stdin, stdout, stderr) */
#include "io/fs.h"
#include "luat.h"

static int l_is_dir(lua_State *L) {
  lua_pushboolean(L, ser_fs_is_dir(luaL_checkstring(L, 1)));
  return 1;
}

static int l_mkdir_p(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (ser_fs_mkdir_p(path) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, ser_errmsg());
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 1024, 1, "expected a file descriptor (0, 1 or 2)");
  lua_pushboolean(L, ser_fs_isatty((int)fd));
  return 1;
}

int ser_lua_open_fs(lua_State *L) {
  static const luaL_Reg fns[] = {{"is_dir", l_is_dir}, {"mkdir_p", l_mkdir_p}, {"isatty", l_isatty}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
