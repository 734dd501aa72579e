/* What serlua says about itself: `serlua -v` and the REPL greeting. */
#ifndef SERLUA_BANNER_H
#define SERLUA_BANNER_H

#include <stdio.h>

/* serlua and Lua versions, BLAS build and thread count (llm.c#691: always say which
 * BLAS and how many threads a number was measured with). */
void serlua_print_version(void);
/* The REPL greeting; have_ser: whether `ser` could be made a global. */
void serlua_banner(int have_ser);
void serlua_print_usage(FILE *out, const char *progname);

#endif
