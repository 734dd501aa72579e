/* The AMX bf16 GEMM (Intel Sapphire Rapids and later): tdpbf16ps on 16x16
 * fp32 tiles. Internal to src/ops: ser_gemm (gemm.c) dispatches to it when
 * amp is on and ser_gemm_amx_available() says yes. The kernel source is
 * gemm_amx_impl.h (also built over a tile emulator by tests/c/test_gemm_amx.c). */
#ifndef SER_OPS_GEMM_AMX_H
#define SER_OPS_GEMM_AMX_H

#include <stddef.h>

/* 1 when the CPU has AMX-TILE and AMX-BF16 (CPUID.7.0:EDX bits 24 and 22),
 * the OS enables the tile state (XCR0 bits 17 and 18), Linux granted the
 * permission (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), the CPU
 * has AVX512-BF16 (the packers use it), SER_AMX is not 0 and SER_ISA does not
 * cap below amx. Decided once, by ser_cpu_amx_ready (src/core/cpu.c). */
int ser_gemm_amx_available(void);
/* Why not (or "in use"): e.g. "no AMX-TILE/AMX-BF16 in CPUID", "off (SER_AMX=0)". */
const char *ser_gemm_amx_reason(void);

/* op(A) [M,K] packed for the AMX kernel (the bytes, then the packing). */
size_t ser_gemm_amx_pack_a_bytes(int M, int K);
void ser_gemm_amx_pack_a_into(void *dst, int ta, int M, int K, const float *A, int lda);
/* C = alpha op(A) op(B) + beta C on AMX tiles; Ap = op(A) packed by the
 * above, or NULL (then A is packed here). Returns SER_EUNSUPPORTED without
 * AMX, SER_ENOMEM without scratch memory (C untouched in both cases). */
int ser_gemm_amx(const void *Ap, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);

#endif
