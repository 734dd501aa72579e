/* The Lua sources compiled into the binary by scripts/embed-lua.lua. */
#ifndef SERLUA_EMBEDDED_H
#define SERLUA_EMBEDDED_H

#include <lua.h>

/* Loads the embedded module `name` (e.g. "ser.repl") directly from the table in
 * build/gen/embedded_lua.c and pushes what it returns. The REPL uses this for its
 * own helpers so that it does not depend on how luaopen_ser registers modules.
 * Returns a Lua status; on failure the message is on the stack. */
int serlua_require_embedded(lua_State *L, const char *name);

#endif
