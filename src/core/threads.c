#include "threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu.h"

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

/* OpenBLAS picks its kernels when it loads, from the CPU or from
 * OPENBLAS_CORETYPE. An environment that forces an older core (seen on our
 * machines: OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU) costs a lot: a
 * 1600x2048x512 sgemm ran at 50 GFLOP/s with the Haswell kernels and 343 with
 * the SkylakeX ones on a Zen 5. We respect the setting and say so. */
const char *ser_blas_better_core(void) {
  static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  const char *core = openblas_get_corename();
  if (!core) return NULL;
  for (size_t i = 0; i < sizeof avx512_cores / sizeof *avx512_cores; i++)
    if (strcasecmp(core, avx512_cores[i]) == 0) return NULL;
  /* OpenBLAS is not ours to cap (SER_ISA does not reach it): the CPU's own features. */
  const unsigned need = SER_CPU_AVX512F | SER_CPU_AVX512CD | SER_CPU_AVX512BW | SER_CPU_AVX512DQ | SER_CPU_AVX512VL;
  const int avx512 = (ser_cpu_detected() & need) == need;
  return avx512 ? "SkylakeX" : NULL;
}

const char *ser_blas_info(void) {
  static char info[384];
  ser_threads_init();
  const char *better = ser_blas_better_core();
  const char *forced = getenv("OPENBLAS_CORETYPE");
  char note[160] = "";
  if (better)
    snprintf(note, sizeof note, " (this CPU could run OpenBLAS's %s kernels%s%s%s)", better,
             forced ? ": OPENBLAS_CORETYPE=" : "", forced ? forced : "", forced ? " holds it back" : "");
  snprintf(info, sizeof info, "%s, core %s, %s, %d thread%s%s", openblas_get_config(),
           openblas_get_corename(), openblas_get_parallel() == 2 ? "OpenMP" : "pthreads",
           num_threads, num_threads == 1 ? "" : "s", note);
  return info;
}
