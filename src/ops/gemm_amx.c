/* The AMX bf16 GEMM on the hardware: the tile layer of gemm_amx_impl.h mapped
 * to the intrinsics, and the run-time decision whether AMX may be used.
 *
 * Never executed on the machines of the session that wrote it (AMD Zen 5, no
 * AMX): its correctness rests on the same kernel source run over the tile
 * emulator of tests/c/test_gemm_amx.c; test_amx_hardware there runs this file's
 * path where AMX exists and is skipped elsewhere. */
#include "gemm_amx.h"

#include <cpuid.h>
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../core/error.h"
#include "gemm.h"
#include "scratch.h"

#define AMX_FN __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16")))
#define AMX_CONFIG(p) _tile_loadconfig(p)
#define AMX_LOAD(t, p, s) _tile_loadd(t, p, s)
#define AMX_STORE(t, p, s) _tile_stored(t, p, s)
#define AMX_ZERO(t) _tile_zero(t)
#define AMX_DP(c, a, b) _tile_dpbf16ps(c, a, b)
#define AMX_RELEASE() _tile_release()
#include "gemm_amx_impl.h"

/* Linux (5.16+) hands out the 8 KB tile data state only on request, per process. */
#define SER_ARCH_REQ_XCOMP_PERM 0x1023
#define SER_XFEATURE_XTILEDATA 18

static int amx_ok;
static char amx_why[160];
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static uint64_t xgetbv0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

static void amx_detect(void) {
  unsigned a, b, c, d;
  const char *env = getenv("SER_AMX");
  if (env && strcmp(env, "0") == 0) {
    snprintf(amx_why, sizeof amx_why, "off (SER_AMX=0)");
    return;
  }
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d >> 24 & 1) || !(d >> 22 & 1)) {
    snprintf(amx_why, sizeof amx_why, "no AMX-TILE/AMX-BF16 in CPUID");
    return;
  }
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c >> 27 & 1) || (xgetbv0() & (3u << 17)) != (3u << 17)) {
    snprintf(amx_why, sizeof amx_why, "the OS does not enable the tile state (XCR0 bits 17/18)");
    return;
  }
  if (!ser_bf16_supported()) {
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

int ser_gemm_amx_available(void) {
  pthread_once(&amx_once, amx_detect);
  return amx_ok;
}

const char *ser_gemm_amx_reason(void) {
  pthread_once(&amx_once, amx_detect);
  return amx_why;
}

size_t ser_gemm_amx_pack_a_bytes(int M, int K) { return amx_pack_a_bytes(M, K); }

void ser_gemm_amx_pack_a_into(void *dst, int ta, int M, int K, const float *A, int lda) {
  amx_pack_a(dst, ta, A, lda, M, K);
}

int ser_gemm_amx(const void *Ap, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
  if (!ser_gemm_amx_available()) return ser_error(SER_EUNSUPPORTED, "gemm: AMX unavailable: %s", amx_why);
  if (M <= 0 || N <= 0) return 0;
  if (K <= 0) { /* C = beta C */
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
    return 0;
  }
  uint32_t *Bp = ser_scratch(SER_SCRATCH_GEMM_B, amx_pack_b_bytes(N, K));
  uint32_t *Apk = Ap ? (uint32_t *)Ap : ser_scratch(SER_SCRATCH_GEMM_A, amx_pack_a_bytes(M, K));
  if (!Bp || !Apk) return SER_ENOMEM;
  if (!Ap) amx_pack_a(Apk, ta, A, lda, M, K);
  amx_gemm_packed(Apk, Bp, tb, B, ldb, M, N, K, alpha, beta, C, ldc);
  return 0;
}
