/* Our one GEMM entry point: every conv/linear product goes through here so
 * that precision (fp32 / bf16 "amp") is chosen in one place.
 *
 * fp32: OpenBLAS cblas_sgemm (the OpenMP build, so inside our own parallel
 * regions it runs single-threaded instead of oversubscribing the cores).
 * bf16 (amp on and the CPU has AVX512-BF16): A and B are rounded to bfloat16
 * (round to nearest even) while being packed into panels, products are summed
 * in fp32 with vdpbf16ps, and C stays fp32 — the master weights and every
 * activation buffer remain fp32; only the GEMM inputs lose precision. Small
 * products (any of M, N, K below SER_GEMM_BF16_MIN) stay on fp32, where
 * packing would cost more than it saves, and so do products whose shape class
 * measured faster in fp32 on this CPU kind (gemm_rule.c). Where the CPU has
 * AMX, the bf16 products run on its tiles (gemm_amx.c) instead of vdpbf16ps. */
#ifndef SER_OPS_GEMM_H
#define SER_OPS_GEMM_H

#include <stddef.h>

#include "../core/half.h" /* ser_f32_to_bf16 / ser_bf16_to_f32: amp packs with them */

#define SER_GEMM_BF16_MIN 16

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major.
 * op(A) is [M,K]: A is [M,K] (lda >= K) or, with ta, [K,M] (lda >= M).
 * op(B) is [K,N]: B is [K,N] (ldb >= N) or, with tb, [N,K] (ldb >= K).
 * beta == 0 overwrites C (NaNs in C do not propagate). Dimensions are trusted
 * (callers check shapes); M, N or K == 0 is allowed. */
void ser_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* A conv multiplies the same weight by every column block of every image:
 * ser_gemm_pack_a packs op(A) [M,K] into bf16 panels once (in the calling
 * thread's scratch, so call it outside the parallel region and keep the
 * pointer only until that thread's next ser_gemm_pack_a), and
 * ser_gemm_packed then skips packing A. ser_gemm_pack_a returns NULL when
 * the product would not run in bf16 (amp off, M or K too small, no memory);
 * ser_gemm_packed with NULL, or with N too small, is plain ser_gemm. The
 * result is the same as ser_gemm's with the same arguments. */
const void *ser_gemm_pack_a(int ta, int M, int K, const float *A, int lda);
void ser_gemm_packed(const void *Ap, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);

/* For callers that keep several packed weights at once (the 15 transformed
 * weights of winograd1d.c): the bytes op(A) [M,K] takes packed, 0 when the
 * product would not run in bf16 (then use ser_gemm); and the packing itself
 * into dst (that many bytes, 64-byte aligned), for ser_gemm_packed. */
size_t ser_gemm_pack_a_bytes(int M, int K);
void ser_gemm_pack_a_into(void *dst, int ta, int M, int K, const float *A, int lda);

/* The same product forced to one precision (tests and benchmarks compare the two). */
void ser_gemm_f32(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc);
/* fp32 runs on OpenBLAS, or on our AVX-512 kernel when the CPU has AVX-512 and
 * OpenBLAS's kernels are narrower (its core is not SkylakeX/Cooperlake/
 * SapphireRapids, e.g. OPENBLAS_CORETYPE=Haswell), for products with every
 * dimension >= SER_GEMM_F32_MIN and M*N*K >= 2^21. SER_GEMM_F32=blas / =avx512
 * forces a side. ser_gemm_f32_kernel: 0 OpenBLAS, 1 ours for the products above
 * the limits, 2 ours for every product; ser_gemm_set_f32_kernel(0/1/2) forces
 * that (tests, benchmarks; -1 restores the automatic choice; ours is never
 * chosen on a CPU without AVX-512) and returns the previous value. */
#define SER_GEMM_F32_MIN 32
int ser_gemm_f32_kernel(void);
/* Which kernels ser_gemm uses here, e.g. "fp32 OpenBLAS; amp AVX512-BF16 kernel" (serlua -v, bench output). */
const char *ser_gemm_info(void);
int ser_gemm_set_f32_kernel(int own);
/* Returns SER_EUNSUPPORTED (with a message) when the CPU lacks AVX512-BF16. */
int ser_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc);

/* Mixed precision switch (global, default off). Returns the previous
 * setting (like ser_set_grad_enabled), so a caller can restore it. Turning it
 * on where the CPU has no AVX512-BF16 prints one notice on stderr and keeps
 * fp32; ser_amp_enabled() then stays 0. */
int ser_set_amp(int on);
int ser_amp_enabled(void);      /* 1 when bf16 GEMMs are in use */
int ser_bf16_supported(void);   /* the CPU has avx512_bf16 (and AVX512F/BW) */

/* Which products amp gives to bf16 (src/ops/gemm_rule.c, docs/engine.md):
 * AUTO (default) those whose shape class measured faster in bf16 than in
 * fp32 on this kind of CPU, timed once and cached in ~/.cache/serlua (or
 * $SER_AMP_TABLE); BF16 every product with all dimensions >= 16 (as before
 * the rule); FP32 none. SER_AMP_GEMM=auto|bf16|fp32 sets it at start-up.
 * Returns the previous mode; another value only queries. */
enum { SER_AMP_RULE_AUTO = 0, SER_AMP_RULE_BF16 = 1, SER_AMP_RULE_FP32 = 2 };
int ser_gemm_set_amp_rule(int mode);
/* The rule's state for ser_gemm_info, e.g. "bf16 per shape class where measured faster (...)". */
const char *ser_gemm_rule_info(void);
/* The decision for one product (measuring its class if new) and the class's
 * measured microseconds per kernel (bench/amp_rule.lua prints them). */
int ser_gemm_rule_lookup(int ta, int tb, int M, int N, int K, double *us_f32, double *us_bf16);


#endif
