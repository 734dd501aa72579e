/* AVX-512 helpers shared by the bf16 packers of gemm.c and gemm_amx_impl.h:
 * an in-register 16x16 transpose of 32-bit words and the conversion of 32 k
 * of one row into 16 bf16 pair words. Internal to src/ops. */
#ifndef SER_OPS_GEMM_SIMD_H
#define SER_OPS_GEMM_SIMD_H

#include <immintrin.h>

/* In-register transpose of a 16x16 block of 32-bit words: r[i] word j moves
 * to r[j] word i (unpack 32, unpack 64, then two rounds of 128-bit lane
 * shuffles; 64 shuffles, where 16 scatters cost several times more on Zen 4). */
__attribute__((target("avx512f"))) static inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int k = 0; k < 8; k++) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; k++) { /* u[4k + c], lane L: column 4L + c of rows 4k..4k+3 */
    u[4 * k + 0] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
    u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
  }
  for (int c = 0; c < 4; c++) {
    __m512i v = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), w = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
    __m512i v2 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xee), w2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xee);
    r[c] = _mm512_shuffle_i32x4(v, w, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(v, w, 0xdd);
    r[8 + c] = _mm512_shuffle_i32x4(v2, w2, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(v2, w2, 0xdd);
  }
}

/* 32 k of one row (from k, zero past K) as 16 bf16 pair words, pair order. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static inline __m512i row_pairs(const float *row, int k, int K) {
  int left = K - k;
  __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
  __mmask16 m1 = left >= 32 ? (__mmask16)0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
  return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, row + k + 16), _mm512_maskz_loadu_ps(m0, row + k));
}

#endif
