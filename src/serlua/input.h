/* Reading REPL lines: readline (line editing, history, completion, Ctrl-C clears
 * the line) on a terminal, plain unprompted lines otherwise (so that piped sessions
 * can be scripted and tested). */
#ifndef SERLUA_INPUT_H
#define SERLUA_INPUT_H

#include <lua.h>
#include <stddef.h>

enum { SERLUA_LINE_OK, SERLUA_LINE_EOF, SERLUA_LINE_INTERRUPTED };

/* terminal: use readline. L is used for tab completion. */
void serlua_input_open(lua_State *L, int terminal);
/* *line: a malloc'ed line without its newline (caller frees) and *len its length
 * (a piped line may hold NUL bytes), set for SERLUA_LINE_OK. */
int serlua_input_read(const char *prompt, char **line, size_t *len);
/* Records a complete chunk (possibly several lines) in the history. */
void serlua_input_remember(const char *chunk);
void serlua_input_close(void);

#endif
