/* Tab completion for readline: globals, keywords, and fields after `.` and `:`
 * found through __index metatables (tensor methods included). The candidates come
 * from complete() in lua/ser/repl.lua, which serlua_repl_helpers leaves in the
 * registry. */
#ifndef SERLUA_COMPLETE_H
#define SERLUA_COMPLETE_H

#include <lua.h>

void serlua_complete_init(lua_State *L);

#endif
