/* The read-eval-print loop, with lua.c's rules: a chunk is compiled once and run
 * once; an incomplete statement (error at <eof>) reads another line; an expression
 * (or `=expr`) echoes its values, pretty-printed by lua/ser/repl.lua, unless the
 * line ends with `;`. Errors are reported and the session goes on. */
#ifndef SERLUA_REPL_H
#define SERLUA_REPL_H

#include <lua.h>

/* terminal: stdin is a terminal (readline, prompts, banner). */
void serlua_repl(lua_State *L, int terminal);

/* Pushes field `name` of the ser.repl helper module (loaded on first use) and
 * returns its Lua type; pushes nil if the helpers are unavailable. */
int serlua_repl_helper(lua_State *L, const char *name);

#endif
