/* Error state of the C core.
 *
 * Functions that can fail on user input return an int: 0 on success, a negative
 * SER_E* code on failure, and leave a message in thread-local storage that
 * ser_errmsg() returns. Messages say what was wrong, with the values, and what
 * was expected. Nothing in the core prints, aborts or exits on bad input; the
 * Lua bindings turn a failure into a Lua error carrying this message. */
#ifndef SER_CORE_ERROR_H
#define SER_CORE_ERROR_H

enum {
  SER_OK = 0,
  SER_EINVAL = -1,   /* bad argument: shape, type, range */
  SER_ENOMEM = -2,   /* allocation failed */
  SER_EIO = -3,      /* file system: open, read, write, rename */
  SER_EFORMAT = -4,  /* a file that is not what it claims: corrupt, truncated */
  SER_ESTATE = -5,   /* call not valid in the current state (e.g. backward twice) */
  SER_EUNSUPPORTED = -6
};

/* Sets the thread's message (printf format) and returns code, so that
 * `return ser_error(SER_EINVAL, "...", ...)` is one line. */
int ser_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "prefix: " (adds context on the way up). */
int ser_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ser_errmsg(void);
void ser_error_clear(void);

#endif
