/* The AMX bf16 GEMM, written once over a thin layer of tile operations so that
 * the same source runs on the hardware (src/ops/gemm_amx.c maps the layer to
 * the _tile_* intrinsics) and on a software emulator of the tile instructions
 * (tests/c/test_gemm_amx.c maps it to arrays), on CPUs without AMX.
 *
 * The includer defines, before including this file:
 *   AMX_FN            function attributes of the functions that touch tiles
 *   AMX_CONFIG(p)     ldtilecfg from the 64-byte struct amx_cfg at p
 *   AMX_LOAD(t,p,s)   tileloadd tmm t from p, row stride s bytes
 *   AMX_STORE(t,p,s)  tilestored tmm t to p, row stride s bytes
 *   AMX_ZERO(t)       tilezero tmm t
 *   AMX_DP(c,a,b)     tdpbf16ps tmm c += tmm a . tmm b
 *   AMX_RELEASE()     tilerelease
 * Tile numbers are constants (the intrinsics take immediates).
 *
 * Layout. A tile is at most 16 rows x 64 bytes; tdpbf16ps multiplies an
 * A tile of 16 rows x 16 bf16 pair words (32 k) by a B tile of 16 pair rows
 * x 16 columns ("VNNI" layout: column n of pair row p holds op(B)[2p][n] in
 * its low half and op(B)[2p+1][n] in its high half) into a 16x16 fp32 tile.
 *   Ap: op(A) as pair words, row-major [M][KPP]: row i's 16 pairs for a k
 *       step are 64 contiguous bytes (stride KPP * 4 between rows).
 *   Bp: op(B) as pair words, row-major [KPP][NPP]: a B tile is 16 pair rows
 *       of 16 columns (stride NPP * 4).
 * KPP (pairs) is rounded up to 16 and the packs are zero-padded there: the K
 * edge costs nothing but padding. It cannot be a partial tile instead,
 * because changing the configuration mid-sum (ldtilecfg) zeroes every tile
 * register, accumulators included. The M and N edges are partial tiles: each
 * 32x32 block of C (2x2 accumulator tiles) is configured with the rows and
 * column bytes it really has, so no padded rows are loaded or computed.
 *
 * Tiles: 0-3 accumulators C00 C01 C10 C11, 4-5 A (rows 0-15, 16-31 of the
 * block), 6-7 B (columns 0-15, 16-31). C tiles are stored into a 32x32 fp32
 * buffer and combined with C there: C = alpha * AB + (beta ? C : 0) (beta
 * other than 0 and 1 is applied to C first, as in the AVX512-BF16 kernel).
 * Whole K runs in the tiles (no K blocking: a 32-column B strip of K = 4608 is
 * 288 KB, which the L2 holds), so each C element is rounded in one order
 * whatever the thread count. */
#ifndef SER_OPS_GEMM_AMX_IMPL_H
#define SER_OPS_GEMM_AMX_IMPL_H

#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "gemm_simd.h"

/* ldtilecfg's 64-byte operand, palette 1 */
struct amx_cfg {
  uint8_t palette, start_row, reserved0[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
_Static_assert(sizeof(struct amx_cfg) == 64, "tile configuration is 64 bytes");

enum { AMX_BM = 32, AMX_BN = 32, AMX_KS = 16 /* pairs per tile step */, AMX_NCH = 8 /* 32-column blocks per work item */ };

static inline int amx_kpp(int K) { return ((K + 1) / 2 + AMX_KS - 1) / AMX_KS * AMX_KS; }
static inline int amx_npp(int N) { return (N + 15) / 16 * 16; }
static inline size_t amx_pack_a_bytes(int M, int K) { return (size_t)M * amx_kpp(K) * 4; }
static inline size_t amx_pack_b_bytes(int N, int K) { return (size_t)amx_kpp(K) * amx_npp(N) * 4; }

/* Rows i0..i0+15 of op(A) (fewer at the M edge) into Ap: with A as stored
 * ([M,K]) a row's 32 k convert to its 16 pairs in one step; with A transposed
 * ([K,M]) two k rows convert together and interleave into the pair words of
 * 16 consecutive i, and 16 such pair steps are transposed in registers. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
amx_pack_a_rows(uint32_t *Ap, int ta, const float *A, int lda, int M, int K, int i0) {
  const int KPP = amx_kpp(K), KP = (K + 1) / 2, rows = M - i0 < 16 ? M - i0 : 16;
  if (!ta) {
    for (int i = 0; i < rows; i++) {
      const float *row = A + (size_t)(i0 + i) * lda;
      uint32_t *dst = Ap + (size_t)(i0 + i) * KPP;
      for (int p = 0; p < KPP; p += 16)
        _mm512_storeu_si512((void *)(dst + p), p < KP ? row_pairs(row, 2 * p, K) : _mm512_setzero_si512());
    }
    return;
  }
  static const short idx_s[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                  8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_loadu_si512((const void *)idx_s);
  const __mmask16 m = rows >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rows) - 1);
  for (int p0 = 0; p0 < KPP; p0 += 16) {
    __m512i r[16];
    for (int q = 0; q < 16; q++) { /* r[q] lane j: pair p0+q of row i0+j */
      const int k0 = 2 * (p0 + q), k1 = k0 + 1;
      const __m512 a0 = k0 < K ? _mm512_maskz_loadu_ps(m, A + (size_t)k0 * lda + i0) : _mm512_setzero_ps();
      const __m512 a1 = k1 < K ? _mm512_maskz_loadu_ps(m, A + (size_t)k1 * lda + i0) : _mm512_setzero_ps();
      r[q] = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(a1, a0));
    }
    transpose16(r); /* r[j] = row i0+j, pairs p0..p0+15 */
    for (int j = 0; j < rows; j++) _mm512_storeu_si512((void *)(Ap + (size_t)(i0 + j) * KPP + p0), r[j]);
  }
}

/* Columns j0..j0+15 of op(B) into Bp (zero past N and past K). B as stored
 * ([K,N]): two rows of k convert together and interleave into pair words.
 * B transposed ([N,K]): a column's 32 k convert in one step (pair order) and
 * 16 columns are transposed in registers into 16 pair rows. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
amx_pack_b_cols(uint32_t *Bp, int tb, const float *B, int ldb, int N, int K, int j0) {
  const int KPP = amx_kpp(K), NPP = amx_npp(N), KP = (K + 1) / 2, cols = N - j0 < 16 ? N - j0 : 16;
  if (!tb) {
    static const short idx_s[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i idx = _mm512_loadu_si512((const void *)idx_s);
    const __mmask16 m = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
    for (int p = 0; p < KPP; p++) {
      const int k0 = 2 * p, k1 = k0 + 1;
      const __m512 b0 = k0 < K ? _mm512_maskz_loadu_ps(m, B + (size_t)k0 * ldb + j0) : _mm512_setzero_ps();
      const __m512 b1 = k1 < K ? _mm512_maskz_loadu_ps(m, B + (size_t)k1 * ldb + j0) : _mm512_setzero_ps();
      _mm512_storeu_si512((void *)(Bp + (size_t)p * NPP + j0),
                          _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b1, b0)));
    }
    return;
  }
  for (int p0 = 0; p0 < KPP; p0 += 16) {
    __m512i r[16];
    for (int j = 0; j < 16; j++)
      r[j] = j < cols && p0 < KP ? row_pairs(B + (size_t)(j0 + j) * ldb, 2 * p0, K) : _mm512_setzero_si512();
    transpose16(r); /* r[q] = pair row p0+q, 16 columns */
    for (int q = 0; q < 16; q++) _mm512_storeu_si512((void *)(Bp + (size_t)(p0 + q) * NPP + j0), r[q]);
  }
}

/* Packs all of op(A) (callers that reuse one weight for many products). */
static void amx_pack_a(uint32_t *Ap, int ta, const float *A, int lda, int M, int K) {
  const int blocks = (M + 15) / 16;
#pragma omp parallel for schedule(static) if (blocks > 1 && (double)M * K > 65536 && !omp_in_parallel())
  for (int b = 0; b < blocks; b++) amx_pack_a_rows(Ap, ta, A, lda, M, K, b * 16);
}

/* The configuration of a block of mr x nr (1..32 each) C elements. Unused
 * tiles keep rows = colsb = 0 (the block then never touches them). */
static void amx_block_cfg(struct amx_cfg *cfg, int mr, int nr) {
  memset(cfg, 0, sizeof *cfg);
  cfg->palette = 1;
  const int m0 = mr < 16 ? mr : 16, m1 = mr - m0, n0 = nr < 16 ? nr : 16, n1 = nr - n0;
  const int rows[8] = {m0, n1 ? m0 : 0, m1 ? m1 : 0, m1 && n1 ? m1 : 0, m0, m1, AMX_KS, n1 ? AMX_KS : 0};
  const int colsb[8] = {4 * n0, 4 * n1, m1 ? 4 * n0 : 0, m1 ? 4 * n1 : 0, 64, m1 ? 64 : 0, 4 * n0, 4 * n1};
  for (int t = 0; t < 8; t++) {
    const int used = rows[t] > 0 && colsb[t] > 0;
    cfg->rows[t] = (uint8_t)(used ? rows[t] : 0);
    cfg->colsb[t] = (uint16_t)(used ? colsb[t] : 0);
  }
}

AMX_FN static void amx_load_cfg(const struct amx_cfg *cfg) { AMX_CONFIG(cfg); }
AMX_FN static void amx_release(void) { AMX_RELEASE(); }

/* One block: C[i0.., j0..] (mr x nr) from Ap rows i0.. and Bp columns j0..,
 * all KPP pairs; the caller has loaded the block's configuration. */
AMX_FN static void amx_block(const uint32_t *Ap, const uint32_t *Bp, int KPP, int NPP, int i0, int j0, int mr,
                             int nr, float alpha, int add, float *C, int ldc) {
  const int two_m = mr > 16, two_n = nr > 16;
  const uint32_t *a = Ap + (size_t)i0 * KPP, *b = Bp + j0;
  const size_t sa = (size_t)KPP * 4, sb = (size_t)NPP * 4;
  AMX_ZERO(0);
  if (two_n) AMX_ZERO(1);
  if (two_m) AMX_ZERO(2);
  if (two_m && two_n) AMX_ZERO(3);
  for (int p = 0; p < KPP; p += AMX_KS) {
    AMX_LOAD(4, a + p, sa);
    AMX_LOAD(6, b + (size_t)p * NPP, sb);
    AMX_DP(0, 4, 6);
    if (two_n) {
      AMX_LOAD(7, b + (size_t)p * NPP + 16, sb);
      AMX_DP(1, 4, 7);
    }
    if (two_m) {
      AMX_LOAD(5, a + (size_t)16 * KPP + p, sa);
      AMX_DP(2, 5, 6);
      if (two_n) AMX_DP(3, 5, 7);
    }
  }
  float acc[AMX_BM * AMX_BN] __attribute__((aligned(64)));
  const size_t sc = AMX_BN * sizeof(float);
  AMX_STORE(0, acc, sc);
  if (two_n) AMX_STORE(1, acc + 16, sc);
  if (two_m) AMX_STORE(2, acc + 16 * AMX_BN, sc);
  if (two_m && two_n) AMX_STORE(3, acc + 16 * AMX_BN + 16, sc);
  for (int i = 0; i < mr; i++) {
    float *c = C + (size_t)(i0 + i) * ldc + j0;
    const float *s = acc + i * AMX_BN;
    for (int j = 0; j < nr; j++) c[j] = add ? c[j] + alpha * s[j] : alpha * s[j];
  }
}

/* C = alpha op(A) op(B) + beta C with op(A) packed in Ap; op(B) is packed here
 * into Bp (amx_pack_b_bytes(N, K) bytes). Threads take items of one 32-row
 * block by up to AMX_NCH 32-column blocks. Each thread configures its own
 * tiles (tile state is per thread) and releases them. */
static void amx_gemm_packed(const uint32_t *Ap, uint32_t *Bp, int tb, const float *B, int ldb, int M, int N,
                                   int K, float alpha, float beta, float *C, int ldc) {
  const int KPP = amx_kpp(K), NPP = amx_npp(N);
  const int add = beta != 0.0f;
  if (add && beta != 1.0f)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
  const int MB = (M + AMX_BM - 1) / AMX_BM, NB = (N + AMX_BN - 1) / AMX_BN;
  const int nch = (NB + AMX_NCH - 1) / AMX_NCH, items = MB * nch;
  const int par = (double)M * N * K > 1e6;
#pragma omp parallel if (par)
  {
#pragma omp for schedule(static)
    for (int j = 0; j < NPP / 16; j++) amx_pack_b_cols(Bp, tb, B, ldb, N, K, j * 16);
    struct amx_cfg cfg;
    int cfg_m = -1, cfg_n = -1;
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < items; it++) {
      const int ib = it % MB, jc = it / MB;
      const int i0 = ib * AMX_BM, mr = M - i0 < AMX_BM ? M - i0 : AMX_BM;
      for (int jb = jc * AMX_NCH; jb < NB && jb < (jc + 1) * AMX_NCH; jb++) {
        const int j0 = jb * AMX_BN, nr = N - j0 < AMX_BN ? N - j0 : AMX_BN;
        if (mr != cfg_m || nr != cfg_n) { /* only edge blocks change it */
          amx_block_cfg(&cfg, mr, nr);
          amx_load_cfg(&cfg);
          cfg_m = mr, cfg_n = nr;
        }
        amx_block(Ap, Bp, KPP, NPP, i0, j0, mr, nr, alpha, add, C, ldc);
      }
    }
    if (cfg_m >= 0) amx_release();
  }
}

#endif
