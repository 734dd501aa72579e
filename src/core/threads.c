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

void ser_threads_init(void) {
  if (num_threads) return;
  const char *env = getenv("SER_NUM_THREADS");
  int n = env ? atoi(env) : 0;
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
