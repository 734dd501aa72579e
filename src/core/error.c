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
  char prefix[SER_ERRMSG_MAX], old[SER_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, errmsg, sizeof old);
  snprintf(errmsg, sizeof errmsg, "%s: %s", prefix, old);
  return code;
}

const char *ser_errmsg(void) { return errmsg[0] ? errmsg : "no error"; }
void ser_error_clear(void) { errmsg[0] = 0; }
