/* Tab completion for readline: globals, keywords, and fields after `.` and `:`
 * found through __index metatables (tensor methods included). The candidates come
 * from complete() in lua/ser/repl.lua (see serlua_repl_helper). */
#ifndef SERLUA_COMPLETE_H
#define SERLUA_COMPLETE_H

#include <lua.h>

void serlua_complete_init(lua_State *L);

#endif
