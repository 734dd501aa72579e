#include "lua_harness.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int luaopen_ser(lua_State *L);

/* libFuzzer only sees coverage of instrumented C code, and the Lua VM is a
 * Debian library: without help every Lua branch looks the same and inputs
 * that reach new Lua code are thrown away. A line hook turns (previous line,
 * line) pairs of the Lua code into edges in libFuzzer's extra-counters section,
 * the same way compiled code reports its edges. */
#define N_LUA_EDGES (1 << 16)
__attribute__((section("__libfuzzer_extra_counters"))) static unsigned char lua_edges[N_LUA_EDGES];
static uintptr_t prev_loc;

static void line_hook(lua_State *L, lua_Debug *ar) {
  if (!lua_getinfo(L, "S", ar)) return;
  const uintptr_t loc = (uintptr_t)ar->source * 2654435761u + (uintptr_t)ar->currentline * 40503u;
  unsigned char *c = &lua_edges[(loc ^ (prev_loc >> 1)) % N_LUA_EDGES];
  if (*c < 255) (*c)++;
  prev_loc = loc;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "%s: %s\n", what, msg ? msg : "(no message)");
  abort();
}

lua_State *fuzz_lua_state(const char *setup) {
  static lua_State *L;
  if (L) return L;
  L = luaL_newstate();
  if (!L) die("fuzz_lua_state", "luaL_newstate failed");
  luaL_openlibs(L);
  luaL_requiref(L, "ser", luaopen_ser, 0);
  lua_pop(L, 1);
  if (luaL_dostring(L, setup) != LUA_OK) die("fuzz_lua_state: setup failed", lua_tostring(L, -1));
  lua_getglobal(L, "fuzz_one");
  if (!lua_isfunction(L, -1)) die("fuzz_lua_state", "setup did not define fuzz_one");
  lua_pop(L, 1);
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
  return L;
}

void fuzz_lua_run(lua_State *L, const char *what, const unsigned char *data, size_t size, int sel) {
  prev_loc = 0;
  lua_getglobal(L, "fuzz_one");
  lua_pushlstring(L, (const char *)data, size);
  lua_pushinteger(L, sel);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) die(what, lua_tostring(L, -1));
  if (!lua_isnil(L, -1)) die(what, lua_tostring(L, -1));
  lua_pop(L, 1);
  /* Keep the heap small and let ASan see freed memory early. */
  lua_gc(L, LUA_GCSTEP, 0);
}
