/* The AMX bf16 GEMM on the hardware: the tile layer of gemm_amx_impl.h mapped
 * to the intrinsics, and the run-time decision whether AMX may be used.
 *
 * Never executed on the machines of the session that wrote it (AMD Zen 5, no
 * AMX): its correctness rests on the same kernel source run over the tile
 * emulator of tests/c/test_gemm_amx.c; test_amx_hardware there runs this file's
 * path where AMX exists and is skipped elsewhere. */
#include "gemm_amx.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/cpu.h"
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

/* The decision (CPUID, XCR0, SER_AMX, SER_ISA, the tile permission) is
 * src/core/cpu.c's, like every other kernel's. */
int ser_gemm_amx_available(void) { return ser_cpu_amx_ready(); }

const char *ser_gemm_amx_reason(void) { return ser_cpu_amx_reason(); }

size_t ser_gemm_amx_pack_a_bytes(int M, int K) { return amx_pack_a_bytes(M, K); }

void ser_gemm_amx_pack_a_into(void *dst, int ta, int M, int K, const float *A, int lda) {
  amx_pack_a(dst, ta, A, lda, M, K);
}

int ser_gemm_amx(const void *Ap, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
  if (!ser_gemm_amx_available())
    return ser_error(SER_EUNSUPPORTED, "gemm: AMX unavailable: %s", ser_gemm_amx_reason());
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
