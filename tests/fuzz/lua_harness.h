/* Shared part of the fuzz targets for Lua code (the CSV manifest reader and the
 * corpus name parser live in lua/ser/data/, in Lua): one lua_State for the whole run
 * with the ser modules loaded from the sources embedded in the build, and a
 * helper that calls a Lua function under pcall and classifies the outcome. */
#ifndef SER_FUZZ_LUA_HARNESS_H
#define SER_FUZZ_LUA_HARNESS_H

#include <lua.h>

/* The process-wide state with `ser` required; `setup` (Lua source) runs once
 * and must leave a function in the global `fuzz_one`. Aborts if setup fails:
 * a broken harness must not look like a clean fuzzing run. */
lua_State *fuzz_lua_state(const char *setup);

/* Calls fuzz_one(bytes, sel). It returns nothing on an accepted outcome and a
 * string describing a bug otherwise (an error that is not one of the module's own
 * messages, a result of the wrong type); a Lua error thrown out of fuzz_one
 * is a harness bug. Either of those aborts with the description, so libFuzzer
 * records the input as a crasher. */
void fuzz_lua_run(lua_State *L, const char *what, const unsigned char *data, size_t size, int sel);

#endif
