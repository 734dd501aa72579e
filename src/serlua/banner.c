#include "banner.h"

#include <lua.h>
#include <stdio.h>

#include "ops/gemm.h"
#include "ser.h"

void serlua_print_version(void) {
  printf("serlua %s  (%s)\n", SER_VERSION, LUA_RELEASE);
  printf("BLAS: %s\n", ser_blas_info());
  printf("GEMM: %s\n", ser_gemm_info());
  const int plain = ser_cpu_cap() == SER_ISA_COUNT && !ser_cpu_env_error(); /* else the info says why */
  printf("ISA: %s%s\n", ser_cpu_info(), plain ? " (set SER_ISA to lower it)" : "");
  printf("threads: %d (set SER_NUM_THREADS or OMP_NUM_THREADS to change)\n", ser_num_threads());
  fflush(stdout);
}

void serlua_banner(int have_ser) {
  printf("serlua %s  (%s)  %s\n", SER_VERSION, LUA_RELEASE, ser_blas_info());
  printf("GEMM: %s; ISA: %s\n", ser_gemm_info(), ser_cpu_info());
  if (have_ser)
    printf("`ser` is loaded as a global here (scripts use `local ser = require \"ser\"`).\n");
  printf("Expressions echo their values (a trailing ';' hides them); Tab completes; "
         "Ctrl-C interrupts; Ctrl-D exits.\n");
  fflush(stdout);
}

void serlua_print_usage(FILE *out, const char *progname) {
  fprintf(out,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require 'mod' and assign it to global 'mod'\n"
          "  -l g=mod  require 'mod' and assign it to global 'g'\n"
          "  -v        show version information (serlua, Lua, BLAS, GEMM, ISA, threads)\n"
          "  -E        ignore environment variables (LUA_INIT, LUA_PATH, ...)\n"
          "  -W        turn warnings on\n"
          "  --help    show this help and exit\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n"
          "With no arguments: the REPL on a terminal, otherwise stdin runs as a script.\n"
          "`require \"ser\"` works without LUA_PATH/LUA_CPATH; the REPL also has `ser` as a "
          "global.\n",
          progname);
  fflush(out);
}
