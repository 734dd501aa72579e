/* Which precision amp gives one product: bf16 (AMX or AVX512-BF16) only where
 * it was measured faster than fp32 on this kind of CPU. Internal to src/ops;
 * the rule itself is described in gemm_rule.c and docs/engine.md. */
#ifndef SER_OPS_GEMM_RULE_H
#define SER_OPS_GEMM_RULE_H

#include <stddef.h>

/* 1: run op(A)[M,K] x op(B)[K,N] in bf16; 0: fp32. Called with amp on and
 * every dimension >= SER_GEMM_BF16_MIN; safe from any thread. The first call
 * for a shape class with no decision yet measures it (a few ms, once per CPU
 * kind: the result is cached). */
int ser_gemm_rule_bf16(int ta, int tb, int M, int N, int K);

/* The same for the 16 tile products of the 3x3 Winograd convolution
 * (winograd.c's own vdpbf16ps micro-kernel), by the bands of Ci and Co. */
int ser_gemm_rule_winograd_bf16(int Ci, int Co);

/* The bf16 product amp runs (AMX where present, else AVX512-BF16), with
 * op(A) prepacked for it in Ap or NULL (gemm.c). Nonzero: not done. */
int ser_gemm_amp_bf16(const void *Ap, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc);

/* Tests and the fuzz target: the table file's parser (classes 0..863 GEMMs,
 * 864..899 Winograd) (text of n bytes; fills
 * dec[class] = 1 fp32 / 2 bf16 and the two times for the lines whose header
 * names want_key; returns the classes read), forgetting the in-memory table
 * (the next use re-reads the file, as a new process would), and how many
 * classes this process has timed. */
enum { SER_GEMM_RULE_CLASSES = 4 * 6 * 6 * 6 + 6 * 6 };
int ser_gemm_rule_parse(const char *text, size_t n, const char *want_key, signed char *dec, float *t_f32,
                        float *t_bf16);
void ser_gemm_rule_forget(void);
int ser_gemm_rule_measured(void);

#endif
