#include "repl.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banner.h"
#include "embedded.h"
#include "input.h"
#include "run.h"

#define EOF_MARK "<eof>"

int serlua_repl_helper(lua_State *L, const char *name) {
  if (serlua_require_embedded(L, "ser.repl") != LUA_OK || !lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return LUA_TNIL;
  }
  int type = lua_getfield(L, -1, name);
  lua_remove(L, -2);
  return type;
}

/* _PROMPT / _PROMPT2 as in lua.c, but only strings and numbers: calling a __tostring
 * here would run outside any protected call, and its error would end the session. */
static const char *prompt(lua_State *L, int first) {
  lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
  if (!lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushstring(L, first ? "> " : ">> ");
  }
  return lua_tostring(L, -1);
}

/* A syntax error whose message ends at <eof> means "the statement goes on". */
static int incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t n;
  const char *msg = lua_tolstring(L, -1, &n);
  size_t m = sizeof EOF_MARK - 1;
  return n >= m && strcmp(msg + n - m, EOF_MARK) == 0;
}

static int load(lua_State *L, const char *code, size_t len) {
  /* Text only: precompiled bytecode is not verified by Lua and could crash it. */
  return luaL_loadbufferx(L, code, len, "=stdin", "t");
}

static int load_return(lua_State *L, const char *expr, size_t len) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "return ");
  luaL_addlstring(&b, expr, len);
  luaL_pushresult(&b);
  size_t n;
  const char *code = lua_tolstring(L, -1, &n);
  int status = load(L, code, n);
  lua_remove(L, -2);
  return status;
}

/* Compiles the chunk on top of the stack, replacing it by a function (status OK) or
 * an error message. Sets *echo when the values should be shown and *more when the
 * chunk is an unfinished statement or expression. Compiling never runs anything, so
 * trying several forms cannot execute a statement twice. */
static int compile(lua_State *L, int *echo, int *more) {
  size_t len;
  const char *src = lua_tolstring(L, -1, &len);
  size_t end = len;
  while (end > 0 && strchr(" \t\r\n", src[end - 1])) end--;
  int quiet = end > 0 && src[end - 1] == ';';
  int status;
  *more = 0;
  if (len > 0 && src[0] == '=') {   /* Lua 5.1-5.3's "=expr" */
    *echo = 1;
    status = load_return(L, src + 1, len - 1);
    *more = incomplete(L, status);
  } else {
    status = load_return(L, src, quiet ? end - 1 : len);
    int expr_more = incomplete(L, status);
    if (status != LUA_OK) {
      lua_pop(L, 1);
      status = load(L, src, len);
      *more = incomplete(L, status) || expr_more;
    }
    *echo = !quiet;
  }
  lua_remove(L, -2);  /* the source */
  return status;
}

/* Reads lines until they form a chunk that compiles or fails for a reason other than
 * being unfinished. Returns LUA_OK with the function pushed, an error status with the
 * message pushed, -1 at end of input, or -2 when Ctrl-C abandoned the chunk. */
static int read_chunk(lua_State *L, int *echo) {
  char *line;
  size_t len;
  int r = serlua_input_read(prompt(L, 1), &line, &len);
  lua_pop(L, 1);
  if (r == SERLUA_LINE_EOF) return -1;
  if (r == SERLUA_LINE_INTERRUPTED) return -2;
  lua_pushlstring(L, line, len);
  free(line);
  for (;;) {
    lua_pushvalue(L, -1);
    int more;
    int status = compile(L, echo, &more);
    if (!more) {
      serlua_input_remember(lua_tostring(L, -2));
      lua_remove(L, -2);
      return status;
    }
    lua_pop(L, 1);  /* the "unfinished" message */
    r = serlua_input_read(prompt(L, 0), &line, &len);
    lua_pop(L, 1);
    if (r == SERLUA_LINE_INTERRUPTED) {
      lua_pop(L, 1);
      return -2;
    }
    if (r == SERLUA_LINE_EOF) {
      /* Input ended inside a statement: report why it does not compile. */
      lua_pushvalue(L, -1);
      status = compile(L, echo, &more);
      lua_remove(L, -2);
      return status;
    }
    lua_pushliteral(L, "\n");
    lua_pushlstring(L, line, len);
    free(line);
    lua_concat(L, 3);
  }
}

/* Shows the values left on the stack above base through repl.format, falling back
 * to Lua's print if the helpers could not be loaded. */
static void echo_values(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n == 0) return;
  if (serlua_repl_helper(L, "format") != LUA_TFUNCTION) {
    lua_pop(L, 1);
    lua_getglobal(L, "print");
  }
  lua_insert(L, base + 1);
  int status = serlua_docall(L, n, 1);
  if (status != LUA_OK) {
    serlua_message(serlua_progname,
                   lua_pushfstring(L, "error showing the values (%s)", lua_tostring(L, -1)));
    lua_pop(L, 2);
    return;
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    fwrite(s, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
  lua_pop(L, 1);
}

/* Like `th`, the REPL (and only the REPL) has ser as a global. */
static int preload_ser(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "ser");
  int status = serlua_docall(L, 1, 1);
  if (status != LUA_OK) {
    serlua_message("serlua", lua_pushfstring(L, "warning: require \"ser\" failed: %s",
                                             lua_tostring(L, -1)));
    lua_pop(L, 2);
    return 0;
  }
  lua_setglobal(L, "ser");
  return 1;
}

void serlua_repl(lua_State *L, int terminal) {
  const char *saved = serlua_progname;
  serlua_progname = NULL;  /* REPL errors are not prefixed by the program name */
  int have_ser = preload_ser(L);
  if (terminal) serlua_banner(have_ser);
  serlua_input_open(L, terminal);
  if (terminal) serlua_catch_sigint();
  for (;;) {
    int echo = 0;
    int status = read_chunk(L, &echo);
    if (status == -1) break;
    if (status == -2) continue;
    if (status == LUA_OK) {
      int base = lua_gettop(L) - 1;
      status = serlua_docall(L, 0, LUA_MULTRET);
      if (status == LUA_OK && echo) echo_values(L, base);
    }
    serlua_report(L, status);
    lua_settop(L, 0);
  }
  if (terminal) serlua_release_sigint();
  serlua_input_close();
  lua_settop(L, 0);
  serlua_progname = saved;
}
