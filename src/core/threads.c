#include "threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS extensions (declared in its cblas.h, repeated here so that this file
 * does not depend on which cblas.h the include path finds first). */
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);
extern int openblas_get_parallel(void);

static int num_threads;

static int all_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

void ser_set_num_threads(int n) {
  if (n < 1) n = all_cores();
  num_threads = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  openblas_set_num_threads(n);
}

/* The thread count an environment variable asks for, or 0 when it is unset.
 * OMP_NUM_THREADS may be a list ("4,2" = 4 at the outer level); its first entry
 * is the count, as OpenMP reads it. A value that is not a positive count is
 * reported on stderr and ignored rather than silently meaning "all cores". */
static int threads_from_env(const char *name) {
  const char *env = getenv(name);
  if (!env || !*env) return 0;
  char *end;
  long n = strtol(env, &end, 10);
  if (n < 1 || n > 4096 || end == env || (*end && *end != ',')) {
    fprintf(stderr, "serlua: ignoring %s='%s' (expected a positive thread count)\n", name, env);
    return 0;
  }
  return (int)n;
}

/* SER_NUM_THREADS first; else OMP_NUM_THREADS, so that the usual way of giving
 * each of several processes one core works (without it our default of all cores
 * would override the variable: omp_set_num_threads wins over the environment);
 * else all cores. */
void ser_threads_init(void) {
  if (num_threads) return;
  int n = threads_from_env("SER_NUM_THREADS");
  if (n == 0) n = threads_from_env("OMP_NUM_THREADS");
  ser_set_num_threads(n);
}

int ser_num_threads(void) {
  ser_threads_init();
  return num_threads;
}

const char *ser_blas_info(void) {
  static char info[256];
  ser_threads_init();
  snprintf(info, sizeof info, "%s, core %s, %s, %d thread%s", openblas_get_config(),
           openblas_get_corename(), openblas_get_parallel() == 2 ? "OpenMP" : "pthreads",
           num_threads, num_threads == 1 ? "" : "s");
  return info;
}
