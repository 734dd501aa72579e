#include "run.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

const char *serlua_progname = "serlua";

/* The state running a call, which the signal handler hooks into; NULL between calls. */
static lua_State *volatile running;
volatile sig_atomic_t serlua_sigint_pending;
static struct sigaction before_repl;

/* Raising from a hook, rather than from the handler itself, is what makes Ctrl-C
 * safe: the error unwinds from a point where the interpreter is consistent. */
static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void interrupt(lua_State *L) {
  lua_sethook(L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* lua_sethook is documented as safe to call from a signal handler. While a call runs
 * the handler is reset to the default first, so a second Ctrl-C still kills a process
 * stuck in C code that never returns to the interpreter. */
static void on_sigint(int sig) {
  lua_State *L = running;
  if (L) {
    signal(sig, SIG_DFL);
    interrupt(L);
  } else {
    serlua_sigint_pending = 1;
  }
}

static void set_handler(struct sigaction *old) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;  /* no SA_RESTART: a Ctrl-C must end a wait for input */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, old);
}

void serlua_catch_sigint(void) {
  serlua_sigint_pending = 0;
  set_handler(&before_repl);
}

void serlua_release_sigint(void) {
  sigaction(SIGINT, &before_repl, NULL);
}

static int traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int serlua_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, base);
  struct sigaction old;
  set_handler(&old);
  running = L;
  /* A Ctrl-C pressed while the chunk was being read or compiled stops it at once. */
  if (serlua_sigint_pending) {
    serlua_sigint_pending = 0;
    interrupt(L);
  }
  int status = lua_pcall(L, narg, nres, base);
  running = NULL;
  /* A Ctrl-C that arrived just as the call returned must not interrupt the next one. */
  lua_sethook(L, NULL, 0, 0);
  sigaction(SIGINT, &old, NULL);
  lua_remove(L, base);
  return status;
}

void serlua_message(const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

int serlua_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) msg = "(error object is not a string)";
    fflush(stdout);  /* so that output and the error appear in the order they happened */
    serlua_message(serlua_progname, msg);
    lua_pop(L, 1);
  }
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = serlua_docall(L, 0, 0);
  return serlua_report(L, status);
}

int serlua_dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

int serlua_dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}
