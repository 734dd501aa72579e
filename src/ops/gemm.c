#include "gemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/cpu.h"
#include "../core/error.h"
#include "../core/threads.h"
#include "gemm_amx.h"
#include "gemm_rule.h"
#include "gemm_simd.h"
#include "scratch.h"

/* ---- precision switch -------------------------------------------------- */

static int amp_on;

int ser_bf16_supported(void) {
  return ser_cpu_has(SER_CPU_AVX512F | SER_CPU_AVX512BW | SER_CPU_AVX512VL | SER_CPU_AVX512BF16);   /* detected once, in core/cpu.c */
}

/* Why ser_bf16_supported() says no: the CPU, or a SER_ISA cap below avx512_bf16. */
static const char *no_bf16_why(void) {
  return ser_cpu_detected() & SER_CPU_AVX512BF16 ? "SER_ISA caps the kernels below avx512_bf16"
                                                 : "this CPU has no AVX512-BF16";
}

int ser_set_amp(int on) {
  static int warned;
  if (on && !ser_bf16_supported()) {
    /* The issue asks for one notice, not an error: the same script must run
     * (in fp32) on a machine without the instructions. */
    if (!warned) fprintf(stderr, "ser: amp requested but %s; using fp32\n", no_bf16_why());
    warned = 1;
    on = 0;
  }
  int prev = amp_on;
  amp_on = on ? 1 : 0;
  return prev;
}

int ser_amp_enabled(void) { return amp_on; }

/* ---- bf16 conversion --------------------------------------------------- */

/* ---- fp32 -------------------------------------------------------------- */

static void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- bf16: packed panels + vdpbf16ps micro-kernel -----------------------
 *
 * Layout (BLIS-style, adapted to the pairwise bf16 dot product): K is taken in
 * pairs (k even, k odd) and each pair of bf16 values lives in one 32-bit word,
 * even k in the low half, which is what vdpbf16ps multiplies lane-wise.
 *   Ap: [ceil(M/MR) panels][KP pairs][MR rows]  (a row's pair is broadcast)
 *   Bp: [ceil(N/NR) panels][KP pairs][NR cols]  (NR/16 zmm loads per pair)
 * Edges are zero-padded in the packs, so the kernel always runs a full tile
 * and masks only the stores. MR x NR = 8 x 48 keeps 24 accumulators plus 3 B
 * vectors in the 32 zmm registers; KCP pairs of B (24 KB) stay in L1 while the
 * kernel sweeps the M panels of a chunk. */
enum { MR = 8, NRV = 3, NR = NRV * 16, KCP = 128, NCH = 10, MCH = 16 };

__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
kernel_bf16(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc, int mr, int nr, float alpha,
            int add) {
  /* Fully unrolled so the 24 accumulators live in registers (-O2 alone
   * keeps them on the stack). */
  __m512 acc[MR][NRV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
    for (int v = 0; v < NRV; v++) acc[i][v] = _mm512_setzero_ps();
  for (int p = 0; p < kp; p++) {
    __m512bh bv[NRV];
#pragma GCC unroll 3
    for (int v = 0; v < NRV; v++) bv[v] = (__m512bh)_mm512_loadu_si512((const void *)(b + v * 16));
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i]);
#pragma GCC unroll 3
      for (int v = 0; v < NRV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
    }
    a += MR;
    b += NR;
  }
  __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    if (i >= mr) break;
    float *ci = c + (size_t)i * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < NRV; v++) {
      int left = nr - v * 16;
      if (left <= 0) break;
      __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
      __m512 r = _mm512_mul_ps(va, acc[i][v]);
      if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, ci + v * 16));
      _mm512_mask_storeu_ps(ci + v * 16, m, r);
    }
  }
}

/* One MR-row panel of op(A), vectorised both ways (the scalar conversion
 * was 10% of an amp training step: the weight-gradient GEMMs pack dout as A).
 * A not transposed: a row's pairs are adjacent, so 32 k of one row convert in
 * one step; the MR rows' 16 pair words are transposed in registers into 16
 * steps of MR words. A transposed ([K,M]): the MR rows of one k are adjacent,
 * so rows k and k+1 load as one vector and a permute interleaves them into the
 * MR pair words of step p. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
pack_a_panel(uint32_t *dst, int ta, const float *A, int lda, int M, int K, int i0) {
  int KP = (K + 1) / 2, rows = M - i0 < MR ? M - i0 : MR;
  if (!ta) {
    for (int k = 0; k < K; k += 32) {
      __m512i r[16];
      for (int i = 0; i < 16; i++)
        r[i] = i < rows ? row_pairs(A + (size_t)(i0 + i) * lda, k, K) : _mm512_setzero_si512();
      transpose16(r);
      int np = KP - k / 2 < 16 ? KP - k / 2 : 16;
      for (int q = 0; q < np; q++)
        _mm256_storeu_si256((__m256i *)(dst + (size_t)(k / 2 + q) * MR), _mm512_castsi512_si256(r[q]));
    }
    return;
  }
  /* halfword j of the converted pair of rows: row k in 0..7, row k+1 in 8..15 */
  static const short idx_s[16] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};
  __m256i idx = _mm256_loadu_si256((const __m256i *)idx_s);
  __mmask8 m = (__mmask8)((1u << rows) - 1);
  for (int p = 0; p < KP; p++) {
    int k0 = 2 * p, k1 = 2 * p + 1;
    __m256 r0 = _mm256_maskz_loadu_ps(m, A + (size_t)k0 * lda + i0);
    __m256 r1 = k1 < K ? _mm256_maskz_loadu_ps(m, A + (size_t)k1 * lda + i0) : _mm256_setzero_ps();
    __m512 both = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(r0)), _mm256_castps_pd(r1), 1));
    __m256i h = (__m256i)_mm512_cvtneps_pbh(both);
    _mm256_storeu_si256((__m256i *)(dst + (size_t)p * MR), _mm256_permutexvar_epi16(idx, h));
  }
}

/* One NR-column panel of op(B) with B not transposed: rows are contiguous in
 * n, so two rows convert at once and an in-register permute interleaves them. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
pack_b_panel_n(uint32_t *dst, const float *B, int ldb, int N, int K, int j0) {
  int KP = (K + 1) / 2;
  /* result word j = (row0[j], row1[j]); cvtne2ps puts row0 in halfwords 0..15 and row1 in 16..31 */
  static const short idx_s[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                  8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  __m512i idx = _mm512_loadu_si512((const void *)idx_s);
  for (int v = 0; v < NRV; v++) {
    int c0 = j0 + v * 16;
    int left = N - c0;
    __mmask16 m = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
    for (int p = 0; p < KP; p++) {
      int k0 = 2 * p, k1 = 2 * p + 1;
      __m512 r0 = _mm512_maskz_loadu_ps(m, B + (size_t)k0 * ldb + c0);
      __m512 r1 = k1 < K ? _mm512_maskz_loadu_ps(m, B + (size_t)k1 * ldb + c0) : _mm512_setzero_ps();
      __m512i both = (__m512i)_mm512_cvtne2ps_pbh(r1, r0);
      _mm512_storeu_si512((void *)(dst + (size_t)p * NR + v * 16), _mm512_permutexvar_epi16(idx, both));
    }
  }
}

/* The same with op(B) = B^T (B is [N,K]): a column's pairs are adjacent in
 * memory, so 32 k of one column convert in one step (already in pair order);
 * 16 columns at a time are transposed in registers into 16 pair steps. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
pack_b_panel_t(uint32_t *dst, const float *B, int ldb, int N, int K, int j0) {
  int KP = (K + 1) / 2;
  for (int v = 0; v < NRV; v++)
    for (int k = 0; k < K; k += 32) {
      __m512i r[16];
      for (int j = 0; j < 16; j++) {
        int n = j0 + v * 16 + j;
        r[j] = n < N ? row_pairs(B + (size_t)n * ldb, k, K) : _mm512_setzero_si512();
      }
      transpose16(r);
      int np = KP - k / 2 < 16 ? KP - k / 2 : 16;
      for (int q = 0; q < np; q++) _mm512_storeu_si512((void *)(dst + (size_t)(k / 2 + q) * NR + v * 16), r[q]);
    }
}

/* The bf16 product; Apre = op(A) already packed by ser_gemm_pack_a (then A is not read). */
static int gemm_bf16(const uint32_t *Apre, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
  if (!ser_bf16_supported())
    return ser_error(SER_EUNSUPPORTED, "gemm: bf16 needs AVX512-BF16, which this CPU lacks");
  if (M <= 0 || N <= 0) return 0;
  if (K <= 0) {
    blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return 0;
  }
  int KP = (K + 1) / 2;
  int MP = (M + MR - 1) / MR, NP = (N + NR - 1) / NR;
  uint32_t *Ap = Apre ? (uint32_t *)Apre : ser_scratch(SER_SCRATCH_GEMM_A, (size_t)MP * KP * MR * 4);
  uint32_t *Bp = ser_scratch(SER_SCRATCH_GEMM_B, (size_t)NP * KP * NR * 4);
  if (!Ap || !Bp) return SER_ENOMEM;
  /* beta other than 0/1 is folded in up front so that every k-block can add. */
  int add = beta != 0.0f;
  if (add && beta != 1.0f)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;

  /* Tiles of up to MCH x NCH panels; smaller when that leaves fewer than two
   * tiles per thread (the weight-gradient GEMMs have small M and N). */
  int mch = MCH, nch = NCH, want = 2 * omp_get_max_threads();
  while (((MP + mch - 1) / mch) * ((NP + nch - 1) / nch) < want && (mch > 1 || nch > 1)) {
    if (mch >= nch && mch > 1) mch = (mch + 1) / 2;
    else nch = (nch + 1) / 2;
  }
  int mchunks = (MP + mch - 1) / mch, nchunks = (NP + nch - 1) / nch;
  int items = mchunks * nchunks;
  /* Nested inside a caller's parallel region (conv over the batch) this runs
   * on the calling thread only: OpenMP nesting is off. */
  int par = (double)M * N * K > 1e6;
#pragma omp parallel if (par)
  {
    if (!Apre) {
#pragma omp for schedule(static) nowait
      for (int i = 0; i < MP; i++) pack_a_panel(Ap + (size_t)i * KP * MR, ta, A, lda, M, K, i * MR);
    }
#pragma omp for schedule(static)
    for (int j = 0; j < NP; j++) {
      if (tb)
        pack_b_panel_t(Bp + (size_t)j * KP * NR, B, ldb, N, K, j * NR);
      else
        pack_b_panel_n(Bp + (size_t)j * KP * NR, B, ldb, N, K, j * NR);
    }
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < items; it++) {
      int nc = it / mchunks, mc = it % mchunks;
      int j0 = nc * nch, j1 = j0 + nch < NP ? j0 + nch : NP;
      int i0 = mc * mch, i1 = i0 + mch < MP ? i0 + mch : MP;
      for (int p0 = 0; p0 < KP; p0 += KCP) {
        int kp = KP - p0 < KCP ? KP - p0 : KCP;
        int addk = add || p0 > 0;
        for (int j = j0; j < j1; j++) {
          const uint32_t *bp = Bp + (size_t)j * KP * NR + (size_t)p0 * NR;
          int nr = N - j * NR < NR ? N - j * NR : NR;
          for (int i = i0; i < i1; i++) {
            const uint32_t *ap = Ap + (size_t)i * KP * MR + (size_t)p0 * MR;
            int mr = M - i * MR < MR ? M - i * MR : MR;
            kernel_bf16(kp, ap, bp, C + (size_t)i * MR * ldc + (size_t)j * NR, ldc, mr, nr, alpha, addk);
          }
        }
      }
    }
  }
  return 0;
}

/* ---- fp32 on AVX-512 where OpenBLAS runs narrower kernels ------------------
 *
 * OpenBLAS picks its kernels from the CPU or OPENBLAS_CORETYPE. When that is an
 * AVX2 core on a CPU with AVX-512 (OpenBLAS 0.3.21 does not know Zen 5 and an
 * environment may force Haswell), its sgemm runs at about half the rate the
 * CPU has: on a Zen 5, 1600x2048x512 at ~100 GFLOP/s with the Haswell kernels
 * (one thread), ~190 with Cooperlake's. Then fp32 products go to the same
 * blocking as the bf16 kernel above with fp32 panels: A in 8-row panels
 * (transposed in registers, 16x16 words at a time), B in 48-column panels, an
 * 8x48 tile of 24 zmm accumulators, one FMA per (row, 16 columns, k). Sums run
 * in k order per element whatever the threads, so a result does not depend on
 * the thread count. SER_GEMM_F32=blas or =avx512 forces a side
 * (ser_gemm_set_f32_kernel for tests and benchmarks). */
enum { KCF = 256 };

__attribute__((target("avx512f"))) static void kernel_f32(int kc, const float *a, const float *b, float *c, int ldc,
                                                          int mr, int nr, float alpha, int add) {
  __m512 acc[MR][NRV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
    for (int v = 0; v < NRV; v++) acc[i][v] = _mm512_setzero_ps();
  for (int p = 0; p < kc; p++) {
    __m512 bv[NRV];
#pragma GCC unroll 3
    for (int v = 0; v < NRV; v++) bv[v] = _mm512_loadu_ps(b + v * 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 3
      for (int v = 0; v < NRV; v++) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
    a += MR;
    b += NR;
  }
  const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    if (i >= mr) break;
    float *ci = c + (size_t)i * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < NRV; v++) {
      const int left = nr - v * 16;
      if (left <= 0) break;
      const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
      __m512 r = _mm512_mul_ps(va, acc[i][v]);
      if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, ci + v * 16));
      _mm512_mask_storeu_ps(ci + v * 16, m, r);
    }
  }
}

/* 16 consecutive floats of a row from k (zero past K), as 32-bit words. */
__attribute__((target("avx512f"))) static inline __m512i row16(const float *row, int k, int K) {
  const int left = K - k;
  const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
  return _mm512_castps_si512(_mm512_maskz_loadu_ps(m, row + k));
}

/* One MR-row panel of op(A): dst[k * MR + r] = op(A)[i0 + r, k], zero past M. */
__attribute__((target("avx512f,avx512vl"))) static void pack_a_f32(float *dst, int ta, const float *A, int lda, int M, int K,
                                                          int i0) {
  const int rows = M - i0 < MR ? M - i0 : MR;
  if (!ta) {
    for (int k = 0; k < K; k += 16) {
      __m512i r[16];
      for (int i = 0; i < 16; i++) r[i] = i < rows ? row16(A + (size_t)(i0 + i) * lda, k, K) : _mm512_setzero_si512();
      transpose16(r);
      const int nk = K - k < 16 ? K - k : 16;
      for (int q = 0; q < nk; q++) _mm256_storeu_si256((__m256i *)(dst + (size_t)(k + q) * MR), _mm512_castsi512_si256(r[q]));
    }
    return;
  }
  const __mmask8 m = (__mmask8)((1u << rows) - 1);
  for (int k = 0; k < K; k++) _mm256_storeu_ps(dst + (size_t)k * MR, _mm256_maskz_loadu_ps(m, A + (size_t)k * lda + i0));
}

/* One NR-column panel of op(B): dst[k * NR + j] = op(B)[k, j0 + j], zero past N. */
__attribute__((target("avx512f"))) static void pack_b_f32(float *dst, int tb, const float *B, int ldb, int N, int K,
                                                          int j0) {
  if (!tb) {
    for (int v = 0; v < NRV; v++) {
      const int left = N - j0 - v * 16;
      const __mmask16 m = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
      for (int k = 0; k < K; k++)
        _mm512_storeu_ps(dst + (size_t)k * NR + v * 16, _mm512_maskz_loadu_ps(m, B + (size_t)k * ldb + j0 + v * 16));
    }
    return;
  }
  for (int v = 0; v < NRV; v++)
    for (int k = 0; k < K; k += 16) {
      __m512i r[16];
      for (int j = 0; j < 16; j++) {
        const int n = j0 + v * 16 + j;
        r[j] = n < N ? row16(B + (size_t)n * ldb, k, K) : _mm512_setzero_si512();
      }
      transpose16(r);
      const int nk = K - k < 16 ? K - k : 16;
      for (int q = 0; q < nk; q++) _mm512_storeu_si512((void *)(dst + (size_t)(k + q) * NR + v * 16), r[q]);
    }
}

static int f32_kernel = -1; /* -1 undecided, 0 OpenBLAS, 1 ours above the size limits, 2 ours always */

int ser_gemm_set_f32_kernel(int own) {
  const int prev = ser_gemm_f32_kernel();
  const int avx512 = ser_cpu_has(SER_CPU_AVX512F | SER_CPU_AVX512VL);
  f32_kernel = own < 0 ? -1 : avx512 ? (own > 2 ? 2 : own) : 0;
  return prev;
}

int ser_gemm_f32_kernel(void) {
  if (f32_kernel < 0) {
    const int avx512 = ser_cpu_has(SER_CPU_AVX512F | SER_CPU_AVX512VL);
    const char *e = getenv("SER_GEMM_F32");
    if (e && strcmp(e, "blas") == 0) f32_kernel = 0;
    else if (e && strcmp(e, "avx512") == 0) f32_kernel = avx512;
    else f32_kernel = avx512 && ser_blas_better_core() != NULL;
  }
  return f32_kernel;
}

/* Our fp32 product; returns nonzero (nothing done) when the panels cannot be had. */
static int gemm_f32_own(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc) {
  const int MP = (M + MR - 1) / MR, NP = (N + NR - 1) / NR;
  float *Ap = ser_scratch(SER_SCRATCH_GEMM_A, (size_t)MP * K * MR * sizeof(float));
  float *Bp = ser_scratch(SER_SCRATCH_GEMM_B, (size_t)NP * K * NR * sizeof(float));
  if (!Ap || !Bp) return 1;
  const int add = beta != 0.0f;
  if (add && beta != 1.0f)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
  int mch = MCH, nch = NCH;
  const int want = 2 * omp_get_max_threads();
  while (((MP + mch - 1) / mch) * ((NP + nch - 1) / nch) < want && (mch > 1 || nch > 1)) {
    if (mch >= nch && mch > 1) mch = (mch + 1) / 2;
    else nch = (nch + 1) / 2;
  }
  const int mchunks = (MP + mch - 1) / mch, nchunks = (NP + nch - 1) / nch, items = mchunks * nchunks;
  const int par = (double)M * N * K > 1e6;
#pragma omp parallel if (par)
  {
#pragma omp for schedule(static) nowait
    for (int i = 0; i < MP; i++) pack_a_f32(Ap + (size_t)i * K * MR, ta, A, lda, M, K, i * MR);
#pragma omp for schedule(static)
    for (int j = 0; j < NP; j++) pack_b_f32(Bp + (size_t)j * K * NR, tb, B, ldb, N, K, j * NR);
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < items; it++) {
      const int nc = it / mchunks, mc = it % mchunks;
      const int j0 = nc * nch, j1 = j0 + nch < NP ? j0 + nch : NP;
      const int i0 = mc * mch, i1 = i0 + mch < MP ? i0 + mch : MP;
      for (int p0 = 0; p0 < K; p0 += KCF) {
        const int kc = K - p0 < KCF ? K - p0 : KCF;
        const int addk = add || p0 > 0;
        for (int j = j0; j < j1; j++) {
          const float *bp = Bp + (size_t)j * K * NR + (size_t)p0 * NR;
          const int nr = N - j * NR < NR ? N - j * NR : NR;
          for (int i = i0; i < i1; i++) {
            const int mr = M - i * MR < MR ? M - i * MR : MR;
            kernel_f32(kc, Ap + (size_t)i * K * MR + (size_t)p0 * MR, bp, C + (size_t)i * MR * ldc + (size_t)j * NR,
                       ldc, mr, nr, alpha, addk);
          }
        }
      }
    }
  }
  return 0;
}

const char *ser_gemm_info(void) {
  static char info[1800];
  const int own = ser_gemm_f32_kernel();
  char amp[240];
  if (!ser_bf16_supported())
    snprintf(amp, sizeof amp, "unavailable (%s; fp32)", no_bf16_why());
  else if (ser_gemm_amx_available())
    snprintf(amp, sizeof amp, "AMX tiles (tdpbf16ps)");
  else
    snprintf(amp, sizeof amp, "AVX512-BF16 kernel (AMX: %s)", ser_gemm_amx_reason());
  snprintf(info, sizeof info, "fp32 %s; amp %s; amp rule: %s",
           own == 0   ? "OpenBLAS"
           : own == 1 ? "our AVX-512 kernel (OpenBLAS's kernels are narrower than this CPU's), OpenBLAS below 128^3"
                      : "our AVX-512 kernel for every product",
           amp, ser_bf16_supported() ? ser_gemm_rule_info() : "-");
  return info;
}

void ser_gemm_f32(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
  /* Below about 128^3 multiply-adds OpenBLAS's lower fixed cost wins (64x64x64:
   * ours 0.75x of its Haswell kernels; 128x128x128: 1.33x). */
  const int use = ser_gemm_f32_kernel();
  if (use && M > 0 && N > 0 && K > 0 &&
      (use == 2 || (M >= SER_GEMM_F32_MIN && N >= SER_GEMM_F32_MIN && K >= SER_GEMM_F32_MIN &&
                    (double)M * N * K >= 2097152.0)) &&
      gemm_f32_own(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
    return;
  blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int ser_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
  return gemm_bf16(NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* The bf16 product amp runs: AMX tiles where the CPU has them, else the
 * AVX512-BF16 kernel. Ap is op(A) packed for that same kernel, or NULL.
 * Whether amp gives a product to it at all is gemm_rule.c's measured rule. */
int ser_gemm_amp_bf16(const void *Ap, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
  if (ser_gemm_amx_available()) return ser_gemm_amx(Ap, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  return gemm_bf16(Ap, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

size_t ser_gemm_pack_a_bytes(int M, int K) {
  if (!amp_on || M < SER_GEMM_BF16_MIN || K < SER_GEMM_BF16_MIN || !ser_bf16_supported()) return 0;
  if (ser_gemm_amx_available()) return ser_gemm_amx_pack_a_bytes(M, K);
  return (size_t)((M + MR - 1) / MR) * ((K + 1) / 2) * MR * 4;
}

void ser_gemm_pack_a_into(void *dst, int ta, int M, int K, const float *A, int lda) {
  if (ser_gemm_amx_available()) {
    ser_gemm_amx_pack_a_into(dst, ta, M, K, A, lda);
    return;
  }
  int KP = (K + 1) / 2, MP = (M + MR - 1) / MR;
  uint32_t *Ap = dst;
#pragma omp parallel for schedule(static) if (MP > 1 && (double)M * K > 65536 && !omp_in_parallel())
  for (int i = 0; i < MP; i++) pack_a_panel(Ap + (size_t)i * KP * MR, ta, A, lda, M, K, i * MR);
}

const void *ser_gemm_pack_a(int ta, int M, int K, const float *A, int lda) {
  size_t bytes = ser_gemm_pack_a_bytes(M, K);
  if (!bytes) return NULL;
  void *Ap = ser_scratch(SER_SCRATCH_GEMM_PRE, bytes);
  if (!Ap) return NULL; /* ser_gemm_packed then packs per call */
  ser_gemm_pack_a_into(Ap, ta, M, K, A, lda);
  return Ap;
}

void ser_gemm_packed(const void *Ap, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
  if (Ap && amp_on && N >= SER_GEMM_BF16_MIN && ser_gemm_rule_bf16(ta, tb, M, N, K) &&
      ser_gemm_amp_bf16(Ap, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
    return;
  ser_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ser_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
  if (amp_on && M >= SER_GEMM_BF16_MIN && N >= SER_GEMM_BF16_MIN && K >= SER_GEMM_BF16_MIN &&
      ser_gemm_rule_bf16(ta, tb, M, N, K) && ser_gemm_amp_bf16(NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
    return;
  /* amp off, a small product, or no scratch memory for the packs: fp32 is
   * always a correct answer. */
  ser_gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
