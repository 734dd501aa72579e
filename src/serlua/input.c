#include "input.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/readline.h>

#include "complete.h"
#include "history.h"
#include "run.h"

static int use_readline;
static char *got_line;
static int got_eof;

static int getc_interruptible(FILE *stream);

static void on_line(char *line) {
  if (line) got_line = line;
  else got_eof = 1;
  /* Removing the handler here keeps readline from printing a new prompt while the
   * chunk runs; serlua_input_read installs it again with the right prompt. */
  rl_callback_handler_remove();
}

void serlua_input_open(lua_State *L, int terminal) {
  use_readline = terminal;
  if (!terminal) return;
  rl_readline_name = "serlua";  /* for $if serlua in ~/.inputrc */
  /* SIGINT is serlua's (src/serlua/run.c: it clears the line); readline's handler
   * would re-raise it. */
  rl_catch_signals = 0;
  rl_getc_function = getc_interruptible;
  serlua_complete_init(L);
  serlua_history_open();
}

/* Reads one key for readline. Unlike readline's own, it gives up when Ctrl-C is
 * pressed: the terminal discards pending input on Ctrl-C, so a read that started
 * just before could otherwise block until the next key. READERR makes readline end
 * the line as at end of input; read_terminal then sees the interrupt flag. */
static int getc_interruptible(FILE *stream) {
  for (;;) {
    if (serlua_sigint_pending) return RL_ISSTATE(RL_STATE_READCMD) ? READERR : EOF;
    unsigned char c;
    ssize_t n = read(fileno(stream), &c, 1);
    if (n == 1) return c;
    if (n == 0 || errno != EINTR) return RL_ISSTATE(RL_STATE_READCMD) ? READERR : EOF;
    if (rl_pending_signal()) rl_check_signals();  /* e.g. a window resize */
  }
}

/* The callback interface lets a Ctrl-C interrupt the wait for input: poll returns
 * EINTR, and the half-typed line is thrown away instead of killing the process. */
static int read_terminal(const char *prompt, char **line) {
  serlua_sigint_pending = 0;  /* a Ctrl-C before the prompt appeared is not for it */
  got_line = NULL;
  got_eof = 0;
  rl_callback_handler_install(prompt, on_line);
  int status = SERLUA_LINE_OK;
  while (!got_line && !got_eof && !serlua_sigint_pending) {
    struct pollfd pfd = { .fd = fileno(rl_instream), .events = POLLIN };
    int r = poll(&pfd, 1, -1);
    if (r < 0 && errno != EINTR) {
      rl_callback_handler_remove();
      got_eof = 1;
    } else if (r > 0 && !serlua_sigint_pending) {
      rl_callback_read_char();
    }
  }
  if (serlua_sigint_pending) {
    serlua_sigint_pending = 0;
    rl_echo_signal_char(SIGINT);
    if (!got_line && !got_eof) {  /* otherwise on_line already tore the line down */
      rl_replace_line("", 0);
      rl_callback_sigcleanup();
      rl_callback_handler_remove();
    }
    free(got_line);  /* a line finished in the same instant goes with the Ctrl-C */
    got_line = NULL;
    fputc('\n', rl_outstream);
    fflush(rl_outstream);
    status = SERLUA_LINE_INTERRUPTED;
  } else if (got_eof) {
    fputc('\n', rl_outstream);  /* Ctrl-D leaves the cursor after the prompt */
    status = SERLUA_LINE_EOF;
  }
  *line = got_line;
  return status;
}

static int read_plain(char **line, size_t *len) {
  char *buf = NULL;
  size_t cap = 0;
  ssize_t n = getline(&buf, &cap, stdin);
  if (n < 0) {
    free(buf);
    return SERLUA_LINE_EOF;
  }
  if (n > 0 && buf[n - 1] == '\n') buf[--n] = '\0';
  if (n > 0 && buf[n - 1] == '\r') buf[--n] = '\0';
  *line = buf;
  *len = (size_t)n;
  return SERLUA_LINE_OK;
}

int serlua_input_read(const char *prompt, char **line, size_t *len) {
  *line = NULL;
  *len = 0;
  fflush(stdout);
  if (!use_readline) return read_plain(line, len);
  int status = read_terminal(prompt, line);
  if (*line) *len = strlen(*line);
  return status;
}

void serlua_input_remember(const char *chunk) {
  if (use_readline) serlua_history_add(chunk);
}

void serlua_input_close(void) {
  if (use_readline) serlua_history_close();
}
