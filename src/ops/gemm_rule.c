/* amp's per-product choice between bf16 and fp32, from measured cost.
 *
 * Why measured: the bf16 kernels pay for packing and rounding A and B before
 * they save anything, and what they save depends on the CPU (on a Zen 4/5
 * vdpbf16ps runs at the FMA rate, so bf16 doubles the multiply-adds per
 * instruction; on Sapphire Rapids amp measured 13-22 % slower than fp32 for
 * whole training steps). A fixed size limit would be a guess for every CPU
 * but the one it was tuned on.
 *
 * The rule. A product op(A)[M,K] x op(B)[K,N] falls in a class: its
 * transpositions and each of M, N, K in one of six bands (16-31, 32-63,
 * 64-127, 128-255, 256-511, >= 512). The first time a class is met, both
 * kernels (the bf16 one amp would run: AMX or AVX512-BF16, packing included;
 * and the fp32 one: OpenBLAS or our AVX-512 kernel, whichever ser_gemm_f32
 * picks here) time one representative product of the class (each dimension
 * 1.5 x its band's lower end: 24, 48, ..., 768), on one thread, best of 5
 * alternating runs after a warm-up. bf16 is used for the class only when it
 * took at most 0.95 of fp32's time (a product that only ties stays fp32: the
 * margin keeps a noisy measurement from choosing the less exact precision
 * for nothing).
 *
 * Why cached per CPU kind: training must give the same numbers run after run
 * on one machine, so a class's decision is measured once and then read from a
 * file, never re-timed: $SER_AMP_TABLE, else $XDG_CACHE_HOME/serlua/ (or
 * ~/.cache/serlua/) amp-<hash>.tsv, keyed by the CPUID brand string and the
 * two kernels in use (AMX or AVX512-BF16; OpenBLAS's core type or our fp32
 * kernel): a different CPU or BLAS core measures its own table. Processes that
 * start together (mpirun) serialise on a lock file, re-read the table and
 * measure only what is still missing, so they agree. Decisions do not depend
 * on the thread count (measured on one thread). Without a writable cache the
 * table lives for the process only (ser_gemm_info says so).
 *
 * The 3x3 Winograd convolution (winograd.c, CNN2D's 3x3 layers) has its own
 * bf16 micro-kernel: its classes are the bands of Co and Ci, timed as one
 * 32x32 image (256 tiles) both ways, channels capped at 384.
 *
 * SER_AMP_GEMM=bf16 gives every eligible product to bf16 (the behaviour before
 * the rule), =fp32 none of these (amp then changes only the bf16 paths outside
 * the rule: the 1-d Winograd's packed weights still go through ser_gemm and
 * follow it), =auto (default) the measured rule; ser_gemm_set_amp_rule does
 * the same from code (tests). */
#include "gemm_rule.h"

#include <cblas.h>
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gemm.h"
#include "gemm_amx.h"
#include "winograd.h"

enum { BANDS = 6, GEMM_CLASSES = 4 * BANDS * BANDS * BANDS, CLASSES = SER_GEMM_RULE_CLASSES };
_Static_assert(SER_GEMM_RULE_CLASSES == GEMM_CLASSES + BANDS * BANDS,
               "classes: 4 transpositions x 6^3 bands of GEMMs, then 6^2 bands (Co, Ci) of Winograd convolutions");

static signed char decided[CLASSES]; /* 0 unknown, 1 fp32, 2 bf16 (read without the lock) */
static float t_f32[CLASSES], t_bf16[CLASSES]; /* microseconds, as measured or read */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int loaded, mode = -1, measured_here;
static char key[256], path[1024], where[1200];

static int band(int x) {
  int b = 0;
  for (int lo = 32; b < BANDS - 1 && x >= lo; lo *= 2) b++;
  return b;
}

static int class_of(int ta, int tb, int M, int N, int K) {
  return ((ta * 2 + tb) * BANDS + band(M)) * BANDS * BANDS + band(N) * BANDS + band(K);
}

static int rep_dim(int b) { return 24 << b; } /* 1.5 x the band's lower end (16 << b) */

int ser_gemm_set_amp_rule(int m) {
  pthread_mutex_lock(&lock);
  if (mode < 0) {
    const char *e = getenv("SER_AMP_GEMM");
    const int m0 = e && strcmp(e, "bf16") == 0 ? SER_AMP_RULE_BF16 : e && strcmp(e, "fp32") == 0 ? SER_AMP_RULE_FP32 : SER_AMP_RULE_AUTO;
    __atomic_store_n(&mode, m0, __ATOMIC_RELEASE);
    if (e && strcmp(e, "bf16") && strcmp(e, "fp32") && strcmp(e, "auto"))
      fprintf(stderr, "ser: ignoring SER_AMP_GEMM='%s' (expected auto, bf16 or fp32)\n", e);
  }
  const int prev = mode;
  if (m >= SER_AMP_RULE_AUTO && m <= SER_AMP_RULE_FP32) __atomic_store_n(&mode, m, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&lock);
  return prev;
}

/* "AMD EPYC 9xx5 ...|avx512bf16|fp32 own" */
static void make_key(void) {
  unsigned r[12] = {0}, a, b, c, d;
  char brand[49] = "unknown CPU";
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    memcpy(brand, r, 48);
    brand[48] = 0;
  }
  char *s = brand;
  while (*s == ' ') s++;
  for (char *p = s; *p; p++)
    if (*p == '\t' || *p == '\n' || *p == '|') *p = ' ';
  for (size_t n = strlen(s); n > 0 && s[n - 1] == ' ';) s[--n] = 0;
  const int own = ser_gemm_f32_kernel();
  snprintf(key, sizeof key, "%s|%s|fp32 %s", s, ser_gemm_amx_available() ? "amx" : "avx512bf16",
           own ? "own avx512" : openblas_get_corename());
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static void make_path(void) {
  const char *env = getenv("SER_AMP_TABLE");
  if (env && *env) {
    snprintf(path, sizeof path, "%s", env);
    return;
  }
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  char dir[900];
  if (xdg && *xdg) snprintf(dir, sizeof dir, "%s", xdg);
  else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache", home);
  else {
    path[0] = 0;
    return;
  }
  mkdir(dir, 0755);
  size_t n = strlen(dir);
  snprintf(dir + n, sizeof dir - n, "/serlua");
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    path[0] = 0;
    return;
  }
  snprintf(path, sizeof path, "%s/amp-%016llx.tsv", dir, (unsigned long long)fnv1a(key));
}

int ser_gemm_rule_parse(const char *text, size_t n, const char *want_key, signed char *dec, float *tf, float *tb) {
  /* Line 1: "# serlua amp rule v1\t<key>"; then "class\tt_f32_us\tt_bf16_us\tfp32|bf16" per line.
   * Anything else (another key, a malformed or out-of-range line) is skipped:
   * the class is then measured again. Returns the classes read. */
  static const char head[] = "# serlua amp rule v1\t";
  const size_t hl = sizeof head - 1, kl = strlen(want_key);
  if (n < hl + kl + 1 || memcmp(text, head, hl) != 0 || memcmp(text + hl, want_key, kl) != 0 || text[hl + kl] != '\n')
    return 0;
  int got = 0;
  size_t i = hl + kl + 1;
  while (i < n) {
    size_t e = i;
    while (e < n && text[e] != '\n') e++;
    char line[128];
    if (e - i < sizeof line) {
      memcpy(line, text + i, e - i);
      line[e - i] = 0;
      int cls, used = 0;
      float f, b;
      char which[8];
      if (sscanf(line, "%d\t%f\t%f\t%7s%n", &cls, &f, &b, which, &used) == 4 && used == (int)(e - i) && cls >= 0 &&
          cls < CLASSES && (strcmp(which, "fp32") == 0 || strcmp(which, "bf16") == 0) && f >= 0 && b >= 0) {
        dec[cls] = which[0] == 'b' ? 2 : 1;
        tf[cls] = f, tb[cls] = b;
        got++;
      }
    }
    i = e + 1;
  }
  return got;
}

/* Reads the table file into the in-memory table (classes already decided here stay). */
static void read_table(void) {
  if (!path[0]) return;
  FILE *f = fopen(path, "rb");
  if (!f) return;
  static char buf[1 << 17];
  const size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  static signed char d[CLASSES];
  static float tf[CLASSES], tb[CLASSES];
  memset(d, 0, sizeof d);
  ser_gemm_rule_parse(buf, n, key, d, tf, tb);
  for (int c = 0; c < CLASSES; c++)
    if (d[c] && !decided[c]) t_f32[c] = tf[c], t_bf16[c] = tb[c], __atomic_store_n(&decided[c], d[c], __ATOMIC_RELEASE);
}

/* Writes the whole table atomically (a temporary file renamed over it). */
static void write_table(void) {
  if (!path[0]) return;
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    path[0] = 0; /* unwritable: keep the table in memory only */
    return;
  }
  fprintf(f, "# serlua amp rule v1\t%s\n", key);
  for (int c = 0; c < CLASSES; c++)
    if (decided[c]) fprintf(f, "%d\t%.1f\t%.1f\t%s\n", c, t_f32[c], t_bf16[c], decided[c] == 2 ? "bf16" : "fp32");
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    remove(tmp);
    path[0] = 0;
  }
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

/* A Winograd class: one 32x32 image (256 tiles) with Ci -> Co channels at the
 * bands' representative counts, capped at 384 to bound the time. */
static void measure_winograd(int c, double *bf, double *bb) {
  const int w = c - GEMM_CLASSES, Co = rep_dim(w / BANDS) < 384 ? rep_dim(w / BANDS) : 384,
            Ci = rep_dim(w % BANDS) < 384 ? rep_dim(w % BANDS) : 384, H = 32;
  float *in = malloc(sizeof(float) * Ci * H * H), *wt = malloc(sizeof(float) * Co * Ci * 9),
        *out = malloc(sizeof(float) * Co * H * H);
  *bf = *bb = 1e30;
  if (in && wt && out) {
    unsigned s = 777u;
    for (int i = 0; i < Ci * H * H; i++) in[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 32768.0f - 0.5f;
    for (int i = 0; i < Co * Ci * 9; i++) wt[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 32768.0f - 0.5f;
    for (int r = 0; r < 6; r++) {
      const double t0 = now_us();
      const int e0 = ser_conv3x3_winograd_prec(out, in, wt, NULL, 1, Ci, H, H, Co, 1, 1, 0, 0, 0);
      const double t1 = now_us();
      const int e1 = ser_conv3x3_winograd_prec(out, in, wt, NULL, 1, Ci, H, H, Co, 1, 1, 0, 0, 1);
      const double t2 = now_us();
      if (e0 || e1) { /* no memory: fp32 */
        *bb = 1e30;
        break;
      }
      if (r > 0) {
        if (t1 - t0 < *bf) *bf = t1 - t0;
        if (t2 - t1 < *bb) *bb = t2 - t1;
      }
    }
  }
  free(in), free(wt), free(out);
}

/* Times the class's representative product both ways on this thread alone. */
static void measure(int c) {
  if (c >= GEMM_CLASSES) {
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    double bf, bb;
    measure_winograd(c, &bf, &bb);
    omp_set_num_threads(threads);
    if (bf >= 1e29) return; /* not measured: fp32 this time, asked again next time */
    t_f32[c] = (float)bf, t_bf16[c] = (float)(bb < 1e29 ? bb : 0);
    measured_here++;
    __atomic_store_n(&decided[c], bb <= 0.95 * bf ? 2 : 1, __ATOMIC_RELEASE);
    return;
  }
  const int ta = c / (BANDS * BANDS * BANDS) / 2, tb = c / (BANDS * BANDS * BANDS) % 2;
  const int M = rep_dim(c / (BANDS * BANDS) % BANDS), N = rep_dim(c / BANDS % BANDS), K = rep_dim(c % BANDS);
  float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *C = malloc(sizeof(float) * M * N);
  if (!A || !B || !C) { /* no memory to measure: fp32, not recorded, asked again next time */
    free(A), free(B), free(C);
    return;
  }
  unsigned s = 12345u;
  for (int i = 0; i < M * K; i++) A[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 32768.0f - 0.5f;
  for (int i = 0; i < K * N; i++) B[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 32768.0f - 0.5f;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  double best_f = 1e30, best_b = 1e30;
  for (int r = 0; r < 6; r++) { /* run 0 warms both (scratch buffers, caches) and is not counted */
    double t0 = now_us();
    ser_gemm_f32(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
    double t1 = now_us();
    int rc = ser_gemm_amp_bf16(NULL, ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
    double t2 = now_us();
    if (rc != 0) best_b = 1e30, r = 6; /* no bf16 kernel or memory: fp32 */
    else if (r > 0) {
      if (t1 - t0 < best_f) best_f = t1 - t0;
      if (t2 - t1 < best_b) best_b = t2 - t1;
    }
  }
  omp_set_num_threads(threads);
  free(A), free(B), free(C);
  t_f32[c] = (float)best_f, t_bf16[c] = (float)(best_b < 1e29 ? best_b : 0);
  measured_here++;
  __atomic_store_n(&decided[c], best_b <= 0.95 * best_f ? 2 : 1, __ATOMIC_RELEASE);
}

static int decide(int c);

int ser_gemm_rule_bf16(int ta, int tb, int M, int N, int K) {
  int m = __atomic_load_n(&mode, __ATOMIC_ACQUIRE);
  if (m < 0) m = ser_gemm_set_amp_rule(-1);
  if (m == SER_AMP_RULE_BF16) return 1;
  if (m == SER_AMP_RULE_FP32) return 0;
  return decide(class_of(ta ? 1 : 0, tb ? 1 : 0, M, N, K));
}

int ser_gemm_rule_winograd_bf16(int Ci, int Co) {
  int m = __atomic_load_n(&mode, __ATOMIC_ACQUIRE);
  if (m < 0) m = ser_gemm_set_amp_rule(-1);
  if (m == SER_AMP_RULE_BF16) return 1;
  if (m == SER_AMP_RULE_FP32) return 0;
  return decide(GEMM_CLASSES + band(Co) * BANDS + band(Ci));
}

/* The class's decision, measuring it (under the locks) when nobody has. */
static int decide(int c) {
  signed char d = __atomic_load_n(&decided[c], __ATOMIC_ACQUIRE);
  if (d) return d == 2;
  pthread_mutex_lock(&lock);
  if (!loaded) {
    make_key();
    make_path();
    read_table();
    loaded = 1;
  }
  if (!decided[c]) {
    /* Other processes of this CPU kind may be measuring too: take the file's
     * lock, re-read, and measure only when the class is still missing. */
    int fd = -1;
    if (path[0]) {
      char lk[1100];
      snprintf(lk, sizeof lk, "%s.lock", path);
      fd = open(lk, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd >= 0) flock(fd, LOCK_EX);
      read_table();
    }
    if (!decided[c]) {
      measure(c);
      if (decided[c]) write_table();
    }
    if (fd >= 0) {
      flock(fd, LOCK_UN);
      close(fd);
    }
  }
  d = decided[c];
  pthread_mutex_unlock(&lock);
  return d == 2;
}

const char *ser_gemm_rule_info(void) {
  if (mode < 0) ser_gemm_set_amp_rule(-1);
  pthread_mutex_lock(&lock);
  if (mode == SER_AMP_RULE_BF16) snprintf(where, sizeof where, "every product >= 16 in bf16 (SER_AMP_GEMM=bf16)");
  else if (mode == SER_AMP_RULE_FP32) snprintf(where, sizeof where, "GEMMs in fp32 (SER_AMP_GEMM=fp32)");
  else {
    int nb = 0, nf = 0;
    for (int c = 0; c < CLASSES; c++) nb += decided[c] == 2, nf += decided[c] == 1;
    snprintf(where, sizeof where, "bf16 per shape class where measured faster (%d bf16, %d fp32 so far; table %s)", nb, nf,
             !loaded ? "read on first use" : path[0] ? path : "in memory only");
  }
  pthread_mutex_unlock(&lock);
  return where;
}

int ser_gemm_rule_lookup(int ta, int tb, int M, int N, int K, double *us_f32, double *us_bf16) {
  const int bf16 = ser_gemm_rule_bf16(ta, tb, M, N, K);
  const int c = class_of(ta ? 1 : 0, tb ? 1 : 0, M, N, K);
  if (us_f32) *us_f32 = t_f32[c];
  if (us_bf16) *us_bf16 = t_bf16[c];
  return bf16;
}

void ser_gemm_rule_forget(void) {
  pthread_mutex_lock(&lock);
  memset(decided, 0, sizeof decided);
  loaded = 0, measured_here = 0;
  pthread_mutex_unlock(&lock);
}

int ser_gemm_rule_measured(void) { return measured_here; }
