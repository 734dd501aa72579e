#include "cpu.h"

#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"

static const char *const names[SER_ISA_COUNT] = {"generic", "avx2", "avx512", "avx512_bf16", "amx"};
_Static_assert(sizeof names / sizeof *names == SER_ISA_COUNT, "one name per level");

/* The features each level adds to the one below (what a CPU needs for it)... */
static const unsigned level_adds[SER_ISA_COUNT] = {
    0,
    SER_CPU_AVX2 | SER_CPU_FMA,
    SER_CPU_AVX512F | SER_CPU_AVX512CD | SER_CPU_AVX512BW | SER_CPU_AVX512DQ | SER_CPU_AVX512VL,
    SER_CPU_AVX512BF16,
    SER_CPU_AMX,
};
/* ...and the ones a cap at that level keeps besides (not needed for the level). */
static const unsigned level_also[SER_ISA_COUNT] = {0, SER_CPU_X86_64_V3, SER_CPU_X86_64_V4, 0, 0};

const char *ser_isa_name(ser_isa level) {
  return (unsigned)level < SER_ISA_COUNT ? names[level] : "?";
}

#define ALLOWED "expected generic, avx2, avx512, avx512_bf16 or amx"

static int find_level(const char *s) {
  for (int i = 0; i < SER_ISA_COUNT; i++)
    if (s && strcmp(s, names[i]) == 0) return i;
  return -1;
}

int ser_isa_parse(const char *s, ser_isa *out) {
  const int i = find_level(s);
  if (i < 0) return ser_error(SER_EINVAL, "SER_ISA='%s' is not a level (" ALLOWED ")", s ? s : "(null)");
  *out = (ser_isa)i;
  return 0;
}

unsigned ser_cpu_capped(unsigned detected, ser_isa cap) {
  unsigned allowed = 0;
  for (int i = 0; i <= (int)cap && i < SER_ISA_COUNT; i++) allowed |= level_adds[i] | level_also[i];
  return detected & allowed;
}

ser_isa ser_cpu_level_of(unsigned features) {
  ser_isa level = SER_ISA_GENERIC;
  unsigned need = 0;
  for (int i = 1; i < SER_ISA_COUNT; i++) {
    need |= level_adds[i];
    if ((features & need) != need) break;
    level = (ser_isa)i;
  }
  return level;
}

static uint64_t xgetbv0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

static int amx_in_cpuid; /* for ser_cpu_amx_reason: CPUID has AMX, XCR0 may not */

/* libgcc's __builtin_cpu_supports already checks that the OS saves the AVX and
 * AVX-512 registers (XCR0); AMX it does not know, so CPUID and XCR0 here. */
static unsigned detect(void) {
  __builtin_cpu_init();
  unsigned f = 0;
  if (__builtin_cpu_supports("avx2")) f |= SER_CPU_AVX2;
  if (__builtin_cpu_supports("fma")) f |= SER_CPU_FMA;
  if (__builtin_cpu_supports("avx512f")) f |= SER_CPU_AVX512F;
  if (__builtin_cpu_supports("avx512cd")) f |= SER_CPU_AVX512CD;
  if (__builtin_cpu_supports("avx512bw")) f |= SER_CPU_AVX512BW;
  if (__builtin_cpu_supports("avx512dq")) f |= SER_CPU_AVX512DQ;
  if (__builtin_cpu_supports("avx512vl")) f |= SER_CPU_AVX512VL;
  if (__builtin_cpu_supports("avx512bf16")) f |= SER_CPU_AVX512BF16;
  unsigned a, b, c, d;
  /* The psABI levels as GCC's __builtin_cpu_supports("x86-64-v3"/"v4") define
   * them (clang 14 does not know those names, nor f16c, lzcnt, movbe): v3 is
   * AVX2, FMA, BMI1, BMI2, F16C (CPUID.1:ECX.29), MOVBE (.22), LZCNT
   * (CPUID.80000001h:ECX.5) on top of v2, the build's baseline; v4 adds the
   * AVX-512 set. */
  const int f16c_movbe = __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1) && (c >> 22 & 1);
  const int lzcnt = __get_cpuid(0x80000001, &a, &b, &c, &d) && (c >> 5 & 1);
  const unsigned avx512 = SER_CPU_AVX512F | SER_CPU_AVX512CD | SER_CPU_AVX512BW | SER_CPU_AVX512DQ | SER_CPU_AVX512VL;
  if ((f & (SER_CPU_AVX2 | SER_CPU_FMA)) == (SER_CPU_AVX2 | SER_CPU_FMA) && __builtin_cpu_supports("bmi") &&
      __builtin_cpu_supports("bmi2") && f16c_movbe && lzcnt) {
    f |= SER_CPU_X86_64_V3;
    if ((f & avx512) == avx512) f |= SER_CPU_X86_64_V4;
  }
  amx_in_cpuid = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1) && (d >> 22 & 1);
  if (amx_in_cpuid && __get_cpuid(1, &a, &b, &c, &d) && (c >> 27 & 1) && (xgetbv0() & (3u << 17)) == (3u << 17))
    f |= SER_CPU_AMX;
  return f;
}

static unsigned detected, usable;
static ser_isa cap = SER_ISA_COUNT;
static char env_error[200];
static char info[320];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* SER_ISA is read here, once. A bad value cannot be returned to anyone (the
 * first caller is some kernel), so it is said once on stderr and ignored, as
 * threads.c does with a bad SER_NUM_THREADS; ser_cpu_env_error keeps it. */
static void init(void) {
  detected = detect();
  usable = detected;
  const char *env = getenv("SER_ISA");
  if (env && *env) {
    /* not ser_isa_parse: the calling thread's error message is not ours to overwrite */
    const int lv = find_level(env);
    if (lv >= 0) {
      cap = (ser_isa)lv;
      usable = ser_cpu_capped(detected, cap);
    } else {
      snprintf(env_error, sizeof env_error, "SER_ISA='%.80s' is not a level (" ALLOWED "); ignored", env);
      fprintf(stderr, "serlua: %s\n", env_error);
    }
  }
  const ser_isa have = ser_cpu_level_of(detected), run = ser_cpu_level_of(usable);
  if (cap < SER_ISA_COUNT)
    snprintf(info, sizeof info, "%s (SER_ISA=%s; the CPU has %s)", names[run], names[cap], names[have]);
  else if (env_error[0])
    snprintf(info, sizeof info, "%s (%s)", names[run], env_error);
  else
    snprintf(info, sizeof info, "%s", names[run]);
}

unsigned ser_cpu_features(void) {
  pthread_once(&once, init);
  return usable;
}

int ser_cpu_has(unsigned mask) { return (ser_cpu_features() & mask) == mask; }

unsigned ser_cpu_detected(void) {
  pthread_once(&once, init);
  return detected;
}

ser_isa ser_cpu_detected_level(void) { return ser_cpu_level_of(ser_cpu_detected()); }
ser_isa ser_cpu_level(void) { return ser_cpu_level_of(ser_cpu_features()); }

ser_isa ser_cpu_cap(void) {
  pthread_once(&once, init);
  return cap;
}

const char *ser_cpu_env_error(void) {
  pthread_once(&once, init);
  return env_error[0] ? env_error : NULL;
}

const char *ser_cpu_why_not(unsigned mask) {
  static const char *const capped[SER_ISA_COUNT] = {
    "above the SER_ISA=generic cap", "above the SER_ISA=avx2 cap", "above the SER_ISA=avx512 cap",
    "above the SER_ISA=avx512_bf16 cap", "above the SER_ISA=amx cap"};
  if (ser_cpu_has(mask)) return "usable";
  if ((ser_cpu_detected() & mask) != mask) return "not on this CPU";
  const ser_isa level = ser_cpu_cap();
  return level < SER_ISA_COUNT ? capped[level] : "not usable";
}

const char *ser_cpu_info(void) {
  pthread_once(&once, init);
  return info;
}

/* Linux (5.16+) hands out the 8 KB tile data state only on request, per process. */
#define SER_ARCH_REQ_XCOMP_PERM 0x1023
#define SER_XFEATURE_XTILEDATA 18

static int amx_ok;
static char amx_why[160];
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_init(void) {
  const char *env = getenv("SER_AMX");
  if (env && strcmp(env, "0") == 0) {
    snprintf(amx_why, sizeof amx_why, "off (SER_AMX=0)");
    return;
  }
  if (!(ser_cpu_detected() & SER_CPU_AMX)) {
    snprintf(amx_why, sizeof amx_why, "%s",
             amx_in_cpuid ? "the OS does not enable the tile state (XCR0 bits 17/18)" : "no AMX-TILE/AMX-BF16 in CPUID");
    return;
  }
  if (!ser_cpu_has(SER_CPU_AMX)) {
    snprintf(amx_why, sizeof amx_why, "off (SER_ISA=%s)", ser_isa_name(ser_cpu_cap()));
    return;
  }
  if (!ser_cpu_has(SER_CPU_AVX512F | SER_CPU_AVX512BW | SER_CPU_AVX512VL | SER_CPU_AVX512BF16)) {
    snprintf(amx_why, sizeof amx_why, "AMX without AVX512-BF16 (the packers need it)");
    return;
  }
  if (syscall(SYS_arch_prctl, SER_ARCH_REQ_XCOMP_PERM, SER_XFEATURE_XTILEDATA) != 0) {
    snprintf(amx_why, sizeof amx_why, "Linux refused the tile permission (arch_prctl ARCH_REQ_XCOMP_PERM: %s)",
             strerror(errno));
    return;
  }
  snprintf(amx_why, sizeof amx_why, "in use");
  amx_ok = 1;
}

int ser_cpu_amx_ready(void) {
  pthread_once(&amx_once, amx_init);
  return amx_ok;
}

const char *ser_cpu_amx_reason(void) {
  pthread_once(&amx_once, amx_init);
  return amx_why;
}
