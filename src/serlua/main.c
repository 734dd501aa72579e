/* serlua: the Lua 5.4 interpreter with the ser library linked in.
 *
 * The command line behaves as lua.c's (same options, same `arg` table, same order
 * of LUA_INIT, -e/-l, script, -i) so that anything written for `lua` runs here;
 * serlua adds --help, a -v that reports BLAS and threads, and `require "ser"`
 * without any LUA_CPATH. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "banner.h"
#include "repl.h"
#include "run.h"

int luaopen_ser(lua_State *L);  /* src/lua/module.c */

/* lua.c's names for these, which liblua's public headers do not export. */
#define INIT_VAR "LUA_INIT"
#define INIT_VAR_VERSION INIT_VAR "_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR
#define IGNORE_MARK '-'  /* "-l mod-v2" sets global mod */

enum { HAS_ERROR = 1, HAS_I = 2, HAS_V = 4, HAS_E = 8, HAS_BIG_E = 16, HAS_HELP = 32 };

/* Scans the options before the script name. *first: index of the script (0 if
 * none), or of the bad option when HAS_ERROR is returned. */
static int collect_args(char **argv, int *first) {
  int args = 0;
  *first = 0;
  if (argv[0] == NULL) return 0;  /* execve with an empty argv */
  for (int i = 1; argv[i] != NULL; i++) {
    *first = i;
    const char *a = argv[i];
    if (a[0] != '-') return args;
    switch (a[1]) {
      case '-':
        if (strcmp(a, "--help") == 0) return args | HAS_HELP;
        if (a[2] != '\0') return HAS_ERROR;
        *first = i + 1;
        return args;
      case '\0':
        return args;  /* "-": the script is stdin */
      case 'E':
        if (a[2] != '\0') return HAS_ERROR;
        args |= HAS_BIG_E;
        break;
      case 'W':
        if (a[2] != '\0') return HAS_ERROR;
        break;
      case 'i':
        if (a[2] != '\0') return HAS_ERROR;
        args |= HAS_I;
        break;
      case 'v':
        if (a[2] != '\0') return HAS_ERROR;
        args |= HAS_V;
        break;
      case 'e':
        args |= HAS_E;
        __attribute__((fallthrough));  /* both need an argument */
      case 'l':
        if (a[2] == '\0') {
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') return HAS_ERROR;
        }
        break;
      default:
        return HAS_ERROR;
    }
  }
  *first = 0;
  return args;
}

static void bad_option(const char *progname, const char *opt) {
  if (opt[1] == 'e' || opt[1] == 'l')
    fprintf(stderr, "%s: '%s' needs argument\n", progname, opt);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, opt);
  serlua_print_usage(stderr, progname);
}

/* arg[0] is the script, arg[1..] its arguments, negative indices the interpreter
 * and options before it (lua.c's layout). */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  if (script == argc) script = 0;
  int narg = argc - (script + 1);
  lua_createtable(L, narg > 0 ? narg : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* `-l mod` sets global mod (without a "-suffix"); `-l g=mod` sets global g. */
static int do_library(lua_State *L, char *spec) {
  char *globname = spec, *modname = strchr(spec, '='), *suffix = NULL;
  if (modname == NULL) {
    modname = globname;
    suffix = strchr(modname, IGNORE_MARK);
  } else {
    *modname++ = '\0';
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  int status = serlua_docall(L, 1, 1);
  if (status == LUA_OK) {
    if (suffix) *suffix = '\0';
    lua_setglobal(L, globname);
  }
  return serlua_report(L, status);
}

/* Runs -e, -l and -W in command-line order, stopping at the first failure. */
static int run_args(lua_State *L, char **argv, int n) {
  for (int i = 1; i < n; i++) {
    int option = argv[i][1];
    if (option == 'e' || option == 'l') {
      char *extra = argv[i] + 2;
      if (*extra == '\0') extra = argv[++i];
      int status = option == 'e' ? serlua_dostring(L, extra, "=(command line)")
                                 : do_library(L, extra);
      if (status != LUA_OK) return 0;
    } else if (option == 'W') {
      lua_warning(L, "@on", 0);
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=" INIT_VAR_VERSION;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=" INIT_VAR;
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return serlua_dofile(L, init + 1);
  return serlua_dostring(L, init, name);
}

static int push_script_args(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  int i;
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL;
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = push_script_args(L);
    status = serlua_docall(L, n, LUA_MULTRET);
  }
  return serlua_report(L, status);
}

static void preload_ser(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_ser);
  lua_setfield(L, -2, "ser");
  lua_pop(L, 1);
}

/* Runs in protected mode so that even out-of-memory during start-up is reported. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script = 0;
  int args = collect_args(argv, &script);
  int optlim = script > 0 ? script : argc;
  luaL_checkversion(L);
  if (args & HAS_HELP) {
    serlua_print_usage(stdout, argv[0]);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (args == HAS_ERROR) {
    bad_option(serlua_progname, argv[script]);
    return 0;
  }
  if (args & HAS_V) serlua_print_version();
  if (args & HAS_BIG_E) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  preload_ser(L);
  create_arg_table(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!(args & HAS_BIG_E) && handle_luainit(L) != LUA_OK) return 0;
  if (!run_args(L, argv, optlim)) return 0;
  if (script > 0 && handle_script(L, argv + script) != LUA_OK) return 0;
  if (args & HAS_I) {
    serlua_repl(L, isatty(STDIN_FILENO));
  } else if (script < 1 && !(args & (HAS_E | HAS_V))) {
    if (isatty(STDIN_FILENO)) serlua_repl(L, 1);
    else if (serlua_dofile(L, NULL) != LUA_OK) return 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argv[0] && argv[0][0]) serlua_progname = argv[0];
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    serlua_message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP);  /* no collection while the libraries load */
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int ok = lua_toboolean(L, -1);
  serlua_report(L, status);
  lua_close(L);
  return ok && status == LUA_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
