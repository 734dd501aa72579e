#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SER_ERRMSG_MAX 1024
static _Thread_local char errmsg[SER_ERRMSG_MAX];

int ser_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  va_end(ap);
  return code;
}

int ser_error_prefix(int code, const char *fmt, ...) {
  char joined[2 * SER_ERRMSG_MAX + 2];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(joined, SER_ERRMSG_MAX, fmt, ap);
  va_end(ap);
  if (len < 0) len = 0;
  if (len >= SER_ERRMSG_MAX) len = SER_ERRMSG_MAX - 1;
  joined[len++] = ':';
  joined[len++] = ' ';
  memcpy(joined + len, errmsg, SER_ERRMSG_MAX);
  /* the joined message may be longer than the buffer: keep its start */
  memcpy(errmsg, joined, SER_ERRMSG_MAX - 1);
  errmsg[SER_ERRMSG_MAX - 1] = 0;
  return code;
}

const char *ser_errmsg(void) { return errmsg[0] ? errmsg : "no error"; }
void ser_error_clear(void) { errmsg[0] = 0; }
