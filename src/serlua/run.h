/* Running Lua code as lua.c does: errors get a traceback, Ctrl-C becomes the Lua
 * error "interrupted!" (through a hook set from the signal handler), and failures
 * are reported on stderr as "progname: message". */
#ifndef SERLUA_RUN_H
#define SERLUA_RUN_H

#include <lua.h>
#include <signal.h>

/* Prefix of error messages: argv[0] for scripts, NULL (no prefix) inside the REPL. */
extern const char *serlua_progname;

/* lua_pcall with a traceback handler; SIGINT interrupts the call. */
int serlua_docall(lua_State *L, int narg, int nres);

/* Set by SIGINT while no call runs (the REPL waiting for input, or compiling). */
extern volatile sig_atomic_t serlua_sigint_pending;
/* Installs serlua's SIGINT handler for a whole REPL session (so that no Ctrl-C, at
 * whatever moment, kills the session); restores the previous one. */
void serlua_catch_sigint(void);
void serlua_release_sigint(void);
/* Prints the message on top of the stack when status is not LUA_OK and pops it. */
int serlua_report(lua_State *L, int status);
void serlua_message(const char *pname, const char *msg);

/* Loads and runs a string / file (NULL = stdin) with no results kept. */
int serlua_dostring(lua_State *L, const char *s, const char *name);
int serlua_dofile(lua_State *L, const char *name);

#endif
