/* Persistent REPL history: $SERLUA_HISTORY, else ~/.serlua_history.
 * Every entered chunk is appended at once (a crash loses nothing); on exit the file
 * is rewritten atomically, keeping the last SERLUA_HISTORY_MAX entries. Multi-line
 * chunks stay one entry (readline timestamps mark where entries begin). */
#ifndef SERLUA_HISTORY_H
#define SERLUA_HISTORY_H

#define SERLUA_HISTORY_MAX 1000

void serlua_history_open(void);
void serlua_history_add(const char *chunk);
void serlua_history_close(void);

#endif
