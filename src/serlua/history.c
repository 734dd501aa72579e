#include "history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>

static char *path;   /* NULL: no history file (no $HOME) */
static int warned;

/* History problems never stop the REPL; they are reported once. */
static void warn(const char *what, int err) {
  if (warned) return;
  warned = 1;
  fprintf(stderr, "serlua: cannot %s history file %s: %s (history is not saved)\n", what, path,
          strerror(err));
}

void serlua_history_open(void) {
  const char *env = getenv("SERLUA_HISTORY");
  if (env && *env) {
    path = strdup(env);
  } else {
    const char *home = getenv("HOME");
    if (!home || !*home) return;
    size_t n = strlen(home) + sizeof "/.serlua_history";
    path = malloc(n);
    if (path) snprintf(path, n, "%s/.serlua_history", home);
  }
  if (!path) return;
  /* Timestamp lines ("#1700000000") mark where an entry begins; without a comment
   * character readline writes none, and a multi-line chunk would come back as
   * several entries. */
  history_comment_char = '#';
  history_write_timestamps = 1;
  history_multiline_entries = 1;
  stifle_history(SERLUA_HISTORY_MAX);
  int err = read_history(path);
  if (err && err != ENOENT) warn("read", err);
}

/* Writes the in-memory history to a temporary file and renames it over the old one,
 * so that a reader never sees a half-written file. */
static int write_atomically(void) {
  size_t n = strlen(path) + 32;
  char *tmp = malloc(n);
  if (!tmp) return ENOMEM;
  snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
  int err = write_history(tmp);
  if (!err && rename(tmp, path) != 0) err = errno;
  if (err) unlink(tmp);
  free(tmp);
  return err;
}

void serlua_history_add(const char *chunk) {
  if (chunk[strspn(chunk, " \t\r\n")] == '\0') return;
  HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (last && strcmp(last->line, chunk) == 0) return;
  add_history(chunk);
  if (!path) return;
  int err = access(path, F_OK) == 0 ? append_history(1, path) : write_atomically();
  if (err) warn("write", err);
}

void serlua_history_close(void) {
  if (!path) return;
  /* Other sessions may have appended since we started: compact what is in the file,
   * not what this session remembers. */
  if (access(path, F_OK) == 0) {
    clear_history();
    int err = read_history(path);
    if (!err) err = write_atomically();
    if (err) warn("compact", err);
  }
  free(path);
  path = NULL;
}
