/* The Lua sources compiled into the binary by scripts/embed-lua.lua. */
#ifndef SERLUA_EMBEDDED_H
#define SERLUA_EMBEDDED_H

#include <lua.h>

/* require for one embedded module (e.g. "ser.repl"): pushes package.loaded[name], or
 * runs the source from build/gen/embedded_lua.c and stores what it returns there.
 * The REPL uses this for its own helpers so that it does not depend on how
 * luaopen_ser registers modules. Returns a Lua status; on failure the message is
 * on the stack. */
int serlua_require_embedded(lua_State *L, const char *name);

#endif
