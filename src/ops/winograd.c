#include "winograd.h"

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "../core/cpu.h"
#include "../core/error.h"
#include "gemm.h"
#include "gemm_rule.h"
#include "scratch.h"

int ser_winograd_supported(void) {
  return ser_cpu_has(SER_CPU_AVX512F);   /* detected once, in core/cpu.c */
}

typedef struct {
  int B, Ci, H, W, Co, ph, pw, OH, OW;
  int TH, TW;      /* tiles per image: ceil(OH/2) x ceil(OW/2) */
  int rows_blk;    /* tile rows per block */
  int VS;          /* tile stride of V and M rows: rows_blk * TW rounded up to 16 */
  /* Strides between the 16 tile positions' slabs of V, M, bf16 V and Z: one
   * cache line more than the slab, so that the 16 streams a transform reads or
   * writes do not all fall into the same L1 set (a slab is a multiple of 4 KB
   * in most layers; that conflict cost 2x in the transforms). */
  size_t vps, mps, vbps, zps;
  int OCC;         /* output channels per pass over M */
} wgeom;

static inline __mmask16 mask_of(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* U [16][Co][Ci] = G g G^T per channel pair, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 * 16 input channels per vector (the 3x3 kernels gathered), output channels
 * spread over threads. */
__attribute__((target("avx512f"))) static void transform_weight(float *U, const float *w, int Co, int Ci, int flip) {
  int par = (double)Co * Ci > 4096 && omp_get_max_threads() > 1 && !omp_in_parallel();
  const __m512 half = _mm512_set1_ps(0.5f);
  __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  /* lane stride between consecutive input channels: 9 floats, or Co*9 when flipped */
  __m512i vidx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(flip ? Co * 9 : 9));
#pragma omp parallel for schedule(static) if (par)
  for (int co = 0; co < Co; co++)
    for (int cb = 0; cb < Ci; cb += 16) {
      __mmask16 m = mask_of(Ci - cb);
      const float *base = flip ? w + ((size_t)cb * Co + co) * 9 : w + ((size_t)co * Ci + cb) * 9;
      __m512 g[3][3];
      for (int j = 0; j < 3; j++)
        for (int k = 0; k < 3; k++)
          g[j][k] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, vidx,
                                             base + (flip ? (2 - j) * 3 + (2 - k) : j * 3 + k), 4);
      __m512 t[4][3]; /* G g */
      for (int k = 0; k < 3; k++) {
        t[0][k] = g[0][k];
        t[1][k] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g[0][k], g[1][k]), g[2][k]));
        t[2][k] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g[0][k], g[1][k]), g[2][k]));
        t[3][k] = g[2][k];
      }
      for (int i = 0; i < 4; i++) { /* (G g) G^T */
        __m512 u[4] = {t[i][0], _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2])),
                       _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[i][0], t[i][1]), t[i][2])), t[i][2]};
        for (int l = 0; l < 4; l++) _mm512_mask_storeu_ps(U + ((size_t)(i * 4 + l) * Co + co) * Ci + cb, m, u[l]);
      }
    }
}

/* 16 floats of an input row starting at column o (may be negative), zero
 * outside [0, W): a masked load, or an expanding load at the left edge, so
 * nothing outside the row is touched. */
__attribute__((target("avx512f"))) static inline __m512 row_load(const float *row, int o, int W) {
  if (o >= 0) return _mm512_maskz_loadu_ps(mask_of(W - o), row + o);
  return _mm512_maskz_expandloadu_ps((__mmask16)(mask_of(W - o) & ~mask_of(-o)), row);
}

/* V[pos][ci][j] for the tiles of global tile rows [q0, q1): B^T d B of each 4x4
 * input patch (rows 2ty-ph.., cols 2tx-pw..), 16 tiles of a row per vector,
 * read straight from the image (rows outside it are zero). */
__attribute__((target("avx512f"))) static void input_transform(float *V, const float *in, const wgeom *g, int q0,
                                                                 int q1) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  size_t plane = (size_t)g->H * g->W, cstride = g->vps;
  int W = g->W;
  for (int q = q0; q < q1; q++) {
    int b = q / g->TH, ty = q % g->TH, jrow = (q - q0) * g->TW;
    for (int ci = 0; ci < g->Ci; ci++) {
      const float *img = in + ((size_t)b * g->Ci + ci) * plane;
      float *vb = V + (size_t)ci * g->VS + jrow;
      for (int tx0 = 0; tx0 < g->TW; tx0 += 16) {
        __m512 d[4][4];
        int o = 2 * tx0 - g->pw;
#pragma GCC unroll 16
        for (int r = 0; r < 4; r++) {
          int ih = 2 * ty - g->ph + r;
          if (ih < 0 || ih >= g->H) {
            d[r][0] = d[r][1] = d[r][2] = d[r][3] = _mm512_setzero_ps();
            continue;
          }
          const float *row = img + (size_t)ih * W;
          __m512 a = row_load(row, o, W), bb = row_load(row, o + 16, W);
          __m512 a2 = row_load(row, o + 2, W), b2 = row_load(row, o + 18, W);
          d[r][0] = _mm512_permutex2var_ps(a, even, bb);
          d[r][1] = _mm512_permutex2var_ps(a, odd, bb);
          d[r][2] = _mm512_permutex2var_ps(a2, even, b2);
          d[r][3] = _mm512_permutex2var_ps(a2, odd, b2);
        }
        __m512 t[4][4]; /* B^T d */
#pragma GCC unroll 16
        for (int s = 0; s < 4; s++) {
          t[0][s] = _mm512_sub_ps(d[0][s], d[2][s]);
          t[1][s] = _mm512_add_ps(d[1][s], d[2][s]);
          t[2][s] = _mm512_sub_ps(d[2][s], d[1][s]);
          t[3][s] = _mm512_sub_ps(d[1][s], d[3][s]);
        }
        __mmask16 m = mask_of(g->TW - tx0);
        float *vt = vb + tx0;
#pragma GCC unroll 16
        for (int i = 0; i < 4; i++) { /* (B^T d) B */
          _mm512_mask_storeu_ps(vt + (size_t)(i * 4 + 0) * cstride, m, _mm512_sub_ps(t[i][0], t[i][2]));
          _mm512_mask_storeu_ps(vt + (size_t)(i * 4 + 1) * cstride, m, _mm512_add_ps(t[i][1], t[i][2]));
          _mm512_mask_storeu_ps(vt + (size_t)(i * 4 + 2) * cstride, m, _mm512_sub_ps(t[i][2], t[i][1]));
          _mm512_mask_storeu_ps(vt + (size_t)(i * 4 + 3) * cstride, m, _mm512_sub_ps(t[i][1], t[i][3]));
        }
      }
    }
  }
}

/* M[R rows][32 tiles] = U[R][K] V[K][32 tiles] (tiles past the mask are neither
 * read nor written). R is a constant at each call site, so the accumulators
 * stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void kern_body(const int R, const float *U, int ldu,
                                                                              const float *V, int ldv, int K,
                                                                              float *M, int ldm, __mmask16 k0,
                                                                              __mmask16 k1) {
  __m512 a0[8], a1[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; r++) a0[r] = a1[r] = _mm512_setzero_ps();
  for (int k = 0; k < K; k++) {
    __m512 v0 = _mm512_maskz_loadu_ps(k0, V + (size_t)k * ldv), v1 = _mm512_maskz_loadu_ps(k1, V + (size_t)k * ldv + 16);
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++)
      if (r < R) {
        __m512 u = _mm512_set1_ps(U[(size_t)r * ldu + k]);
        a0[r] = _mm512_fmadd_ps(u, v0, a0[r]);
        a1[r] = _mm512_fmadd_ps(u, v1, a1[r]);
      }
  }
#pragma GCC unroll 8
  for (int r = 0; r < 8; r++)
    if (r < R) {
      _mm512_mask_storeu_ps(M + (size_t)r * ldm, k0, a0[r]);
      _mm512_mask_storeu_ps(M + (size_t)r * ldm + 16, k1, a1[r]);
    }
}

__attribute__((target("avx512f"))) static void kern(int R, const float *U, int ldu, const float *V, int ldv, int K,
                                                    float *M, int ldm, __mmask16 k0, __mmask16 k1) {
  switch (R) {
  case 8: kern_body(8, U, ldu, V, ldv, K, M, ldm, k0, k1); break;
  case 7: kern_body(7, U, ldu, V, ldv, K, M, ldm, k0, k1); break;
  case 6: kern_body(6, U, ldu, V, ldv, K, M, ldm, k0, k1); break;
  case 5: kern_body(5, U, ldu, V, ldv, K, M, ldm, k0, k1); break;
  case 4: kern_body(4, U, ldu, V, ldv, K, M, ldm, k0, k1); break;
  case 3: kern_body(3, U, ldu, V, ldv, K, M, ldm, k0, k1); break;
  case 2: kern_body(2, U, ldu, V, ldv, K, M, ldm, k0, k1); break;
  default: kern_body(1, U, ldu, V, ldv, K, M, ldm, k0, k1); break;
  }
}

/* out for output channels [oc0, oc0+occ) of tile rows [q0, q1): A^T m A of each
 * tile, A^T = [1 1 1 0; 0 1 -1 -1], plus bias, interleaved back into rows. */
__attribute__((target("avx512f"))) static void output_transform(float *out, const float *Mb, const float *bias,
                                                                  const wgeom *g, int q0, int q1, int oc0, int occ,
                                                                  int accumulate) {
  const __m512i ilo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i ihi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  size_t pstride = g->mps, oplane = (size_t)g->OH * g->OW;
  for (int q = q0; q < q1; q++) {
    int b = q / g->TH, ty = q % g->TH, jrow = (q - q0) * g->TW;
    for (int o = 0; o < occ; o++) {
      int oc = oc0 + o;
      const float *mo = Mb + (size_t)o * g->VS + jrow;
      __m512 bv = _mm512_set1_ps(bias ? bias[oc] : 0.0f);
      float *dst_plane = out + ((size_t)b * g->Co + oc) * oplane;
      for (int tx0 = 0; tx0 < g->TW; tx0 += 16) {
        __mmask16 m = mask_of(g->TW - tx0);
        __m512 v[16];
#pragma GCC unroll 16
        for (int p = 0; p < 16; p++) v[p] = _mm512_maskz_loadu_ps(m, mo + p * pstride + tx0);
        __m512 s[2][4]; /* A^T m */
#pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
          s[0][j] = _mm512_add_ps(_mm512_add_ps(v[j], v[4 + j]), v[8 + j]);
          s[1][j] = _mm512_sub_ps(_mm512_sub_ps(v[4 + j], v[8 + j]), v[12 + j]);
        }
        int ncol = g->OW - 2 * tx0; /* output columns left in this row */
        __mmask16 mlo = mask_of(ncol), mhi = mask_of(ncol - 16);
#pragma GCC unroll 16
        for (int i = 0; i < 2; i++) {
          int oh = 2 * ty + i;
          if (oh >= g->OH) break;
          __m512 y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]), bv);
          __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]), bv);
          __m512 lo = _mm512_permutex2var_ps(y0, ilo, y1), hi = _mm512_permutex2var_ps(y0, ihi, y1);
          float *dst = dst_plane + (size_t)oh * g->OW + 2 * tx0;
          if (accumulate) {
            lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(mlo, dst));
            hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(mhi, dst + 16));
          }
          _mm512_mask_storeu_ps(dst, mlo, lo);
          _mm512_mask_storeu_ps(dst + 16, mhi, hi);
        }
      }
    }
  }
}

/* ---- bf16 (amp) --------------------------------------------------------
 * Under amp the 16 products run in bf16 with fp32 sums, as ser_gemm does:
 * U and V are rounded to bfloat16 (nearest even) and stored as pairs of
 * consecutive input channels in one 32-bit word, which vdpbf16ps multiplies
 * and adds lane-wise into fp32 accumulators. */

static int use_bf16(void) { return ser_amp_enabled() && ser_bf16_supported(); }

/* Ub [16][Co][ceil(Ci/2)] pair words from the fp32 U [16][Co][Ci]. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void pack_u_bf16(uint32_t *Ub, const float *U, int Co,
                                                                                  int Ci) {
  int CP = (Ci + 1) / 2;
  for (size_t r = 0; r < (size_t)16 * Co; r++) {
    const float *row = U + r * Ci;
    uint32_t *dst = Ub + r * CP;
    for (int k = 0; k < Ci; k += 32) {
      int left = Ci - k;
      __m512 lo = _mm512_maskz_loadu_ps(mask_of(left), row + k), hi = _mm512_maskz_loadu_ps(mask_of(left - 16), row + k + 16);
      __m512i w = (__m512i)_mm512_cvtne2ps_pbh(hi, lo); /* halfword i = element k + i: pairs already adjacent */
      _mm512_mask_storeu_epi32(dst + k / 2, mask_of((left + 1) / 2), w);
    }
  }
}

/* Vb [16][ceil(Ci/2)][VS] pair words (channel 2k low, 2k+1 high) from V [16][Ci][VS], ntb tiles
 * (position slabs vps / vbps apart). */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void pack_v_bf16(uint32_t *Vb, const float *V, int Ci,
                                                                                  int VS, size_t vps, size_t vbps,
                                                                                  int ntb) {
  static const short idx_s[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                  8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  __m512i idx = _mm512_loadu_si512((const void *)idx_s);
  int CP = (Ci + 1) / 2;
  for (int p = 0; p < 16; p++)
    for (int k = 0; k < CP; k++) {
      const float *r0 = V + p * vps + (size_t)2 * k * VS, *r1 = r0 + VS;
      int odd = 2 * k + 1 < Ci;
      uint32_t *dst = Vb + p * vbps + (size_t)k * VS;
      for (int j = 0; j < ntb; j += 16) {
        __mmask16 m = mask_of(ntb - j);
        __m512 a = _mm512_maskz_loadu_ps(m, r0 + j), b = odd ? _mm512_maskz_loadu_ps(m, r1 + j) : _mm512_setzero_ps();
        __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, a);
        _mm512_mask_storeu_epi32(dst + j, m, _mm512_permutexvar_epi16(idx, both));
      }
    }
}

/* M[R][32 tiles] = U[R][pairs] . V[pairs][32 tiles] in bf16 pairs, fp32 sums. */
__attribute__((target("avx512f,avx512bw,avx512bf16"), always_inline)) static inline void
kern_bf16_body(const int R, const uint32_t *U, int ldu, const uint32_t *V, int ldv, int KP, float *M, int ldm,
               __mmask16 k0, __mmask16 k1) {
  __m512 a0[8], a1[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; r++) a0[r] = a1[r] = _mm512_setzero_ps();
  for (int k = 0; k < KP; k++) {
    __m512bh v0 = (__m512bh)_mm512_maskz_loadu_epi32(k0, V + (size_t)k * ldv);
    __m512bh v1 = (__m512bh)_mm512_maskz_loadu_epi32(k1, V + (size_t)k * ldv + 16);
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++)
      if (r < R) {
        __m512bh u = (__m512bh)_mm512_set1_epi32((int)U[(size_t)r * ldu + k]);
        a0[r] = _mm512_dpbf16_ps(a0[r], u, v0);
        a1[r] = _mm512_dpbf16_ps(a1[r], u, v1);
      }
  }
#pragma GCC unroll 8
  for (int r = 0; r < 8; r++)
    if (r < R) {
      _mm512_mask_storeu_ps(M + (size_t)r * ldm, k0, a0[r]);
      _mm512_mask_storeu_ps(M + (size_t)r * ldm + 16, k1, a1[r]);
    }
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void kern_bf16(int R, const uint32_t *U, int ldu,
                                                                                const uint32_t *V, int ldv, int KP,
                                                                                float *M, int ldm, __mmask16 k0,
                                                                                __mmask16 k1) {
  switch (R) {
  case 8: kern_bf16_body(8, U, ldu, V, ldv, KP, M, ldm, k0, k1); break;
  case 7: kern_bf16_body(7, U, ldu, V, ldv, KP, M, ldm, k0, k1); break;
  case 6: kern_bf16_body(6, U, ldu, V, ldv, KP, M, ldm, k0, k1); break;
  case 5: kern_bf16_body(5, U, ldu, V, ldv, KP, M, ldm, k0, k1); break;
  case 4: kern_bf16_body(4, U, ldu, V, ldv, KP, M, ldm, k0, k1); break;
  case 3: kern_bf16_body(3, U, ldu, V, ldv, KP, M, ldm, k0, k1); break;
  case 2: kern_bf16_body(2, U, ldu, V, ldv, KP, M, ldm, k0, k1); break;
  default: kern_bf16_body(1, U, ldu, V, ldv, KP, M, ldm, k0, k1); break;
  }
}

/* One block of tile rows: transform, 16 products, inverse transform. */
__attribute__((target("avx512f"))) static void run_block(float *out, const float *in, const float *U,
                                                           const uint32_t *Ub, const float *bias, float *V,
                                                           uint32_t *Vb, float *Mb, const wgeom *g, int q0, int q1,
                                                           int accumulate) {
  int ntb = (q1 - q0) * g->TW, CP = (g->Ci + 1) / 2;
  input_transform(V, in, g, q0, q1);
  if (Ub) pack_v_bf16(Vb, V, g->Ci, g->VS, g->vps, g->vbps, ntb);
  for (int oc0 = 0; oc0 < g->Co; oc0 += g->OCC) {
    int occ = g->Co - oc0 < g->OCC ? g->Co - oc0 : g->OCC;
    for (int p = 0; p < 16; p++) {
      float *Mp = Mb + p * g->mps;
      for (int o = 0; o < occ; o += 8) {
        int R = occ - o < 8 ? occ - o : 8;
        for (int j0 = 0; j0 < ntb; j0 += 32) {
          __mmask16 k0 = mask_of(ntb - j0), k1 = mask_of(ntb - j0 - 16);
          float *Mo = Mp + (size_t)o * g->VS + j0;
          if (Ub)
            kern_bf16(R, Ub + ((size_t)p * g->Co + oc0 + o) * CP, CP, Vb + p * g->vbps + j0, g->VS, CP, Mo,
                      g->VS, k0, k1);
          else
            kern(R, U + ((size_t)p * g->Co + oc0 + o) * g->Ci, g->Ci, V + p * g->vps + j0, g->VS,
                 g->Ci, Mo, g->VS, k0, k1);
        }
      }
    }
    output_transform(out, Mb, bias, g, q0, q1, oc0, occ, accumulate);
  }
}

/* Under amp the 16 products run in bf16 only where amp's measured rule says
 * bf16 pays for this layer's channel counts (src/ops/gemm_rule.c). */
int ser_conv3x3_winograd(float *out, const float *in, const float *weight, const float *bias, int B, int Ci,
                         int H, int W, int Co, int ph, int pw, int flip, int accumulate) {
  const int bf = use_bf16() && ser_gemm_rule_winograd_bf16(Ci, Co);
  return ser_conv3x3_winograd_prec(out, in, weight, bias, B, Ci, H, W, Co, ph, pw, flip, accumulate, bf);
}

int ser_conv3x3_winograd_prec(float *out, const float *in, const float *weight, const float *bias, int B, int Ci,
                              int H, int W, int Co, int ph, int pw, int flip, int accumulate, int bf) {
  bf = bf && ser_bf16_supported();
  wgeom g = {.B = B, .Ci = Ci, .H = H, .W = W, .Co = Co, .ph = ph, .pw = pw, .OH = H + 2 * ph - 2, .OW = W + 2 * pw - 2};
  if (B <= 0 || Co <= 0 || g.OH <= 0 || g.OW <= 0) return 0;
  g.TH = (g.OH + 1) / 2;
  g.TW = (g.OW + 1) / 2;
  /* About 512 KB of V per block (half of Zen 4's L2), at most 128 tiles. */
  int target = Ci > 0 ? 8192 / Ci : 128;
  if (target > 128) target = 128;
  if (target < 32) target = 32;
  int rows = g.B * g.TH, nt = omp_get_max_threads(), par = nt > 1 && !omp_in_parallel();
  int rb = target / g.TW;
  if (rb < 1) rb = 1;
  if (par && rows / rb < 2 * nt) rb = rows / (2 * nt) > 0 ? rows / (2 * nt) : 1; /* every thread gets work */
  g.rows_blk = rb;
  g.VS = (rb * g.TW + 15) / 16 * 16;
  g.OCC = Co < 64 ? Co : 64;
  int nblocks = (rows + rb - 1) / rb;
  par = par && nblocks > 1;

  const int CP = (Ci + 1) / 2;
  size_t un = (size_t)16 * Co * (Ci > 0 ? Ci : 1), ubn = bf ? (size_t)16 * Co * CP : 0;
  float *U = ser_scratch(SER_SCRATCH_WINO_U, sizeof(float) * (un + ubn));
  if (!U) return SER_ENOMEM;
  transform_weight(U, weight, Co, Ci, flip);
  uint32_t *Ub = bf ? (uint32_t *)(U + un) : NULL;
  if (bf) pack_u_bf16(Ub, U, Co, Ci);
  g.vps = (size_t)Ci * g.VS + 16;
  g.mps = (size_t)g.OCC * g.VS + 16;
  g.vbps = (size_t)CP * g.VS + 16;
  size_t vn = 16 * g.vps, mn = 16 * g.mps, vbn = bf ? 16 * g.vbps : 0;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) if (par) reduction(| : failed)
  for (int blk = 0; blk < nblocks; blk++) {
    float *V = ser_scratch(SER_SCRATCH_WINO, sizeof(float) * (vn + mn + vbn));
    if (!V) {
      failed = 1;
      continue;
    }
    int q0 = blk * rb, q1 = q0 + rb < rows ? q0 + rb : rows;
    run_block(out, in, U, Ub, bias, V, bf ? (uint32_t *)(V + vn + mn) : NULL, V + vn, &g, q0, q1, accumulate);
  }
  if (failed)
    return ser_error(SER_ENOMEM, "out of memory for the Winograd scratch (%zu bytes per thread)",
                     sizeof(float) * (vn + mn + vbn));
  return 0;
}

/* ---- weight gradient ----------------------------------------------------
 * The adjoint of the forward transform: with Z = A dY A^T (dY the 2x2 output
 * gradient of a tile, zero past the edge) and V = B^T d B as in the forward
 * pass, dU[pos] = sum over tiles of Z[pos] V[pos]^T (16 GEMMs [Co,tiles] x
 * [tiles,Ci]) and dW = G^T dU G. */

/* Z[pos][co][j] for tile rows [q0, q1) of dout [B,Co,OH,OW]. */
__attribute__((target("avx512f"))) static void dout_transform(float *Z, const float *dout, const wgeom *g, int q0,
                                                                int q1) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  size_t oplane = (size_t)g->OH * g->OW, cstride = g->zps;
  for (int q = q0; q < q1; q++) {
    int b = q / g->TH, ty = q % g->TH, jrow = (q - q0) * g->TW;
    int two = 2 * ty + 1 < g->OH;
    for (int co = 0; co < g->Co; co++) {
      const float *r0 = dout + ((size_t)b * g->Co + co) * oplane + (size_t)2 * ty * g->OW, *r1 = r0 + g->OW;
      float *zb = Z + (size_t)co * g->VS + jrow;
      for (int tx0 = 0; tx0 < g->TW; tx0 += 16) {
        int ncol = g->OW - 2 * tx0;
        __mmask16 mlo = mask_of(ncol), mhi = mask_of(ncol - 16);
        __m512 a = _mm512_maskz_loadu_ps(mlo, r0 + 2 * tx0), c = _mm512_maskz_loadu_ps(mhi, r0 + 2 * tx0 + 16);
        __m512 y00 = _mm512_permutex2var_ps(a, even, c), y01 = _mm512_permutex2var_ps(a, odd, c);
        __m512 y10 = _mm512_setzero_ps(), y11 = _mm512_setzero_ps();
        if (two) {
          a = _mm512_maskz_loadu_ps(mlo, r1 + 2 * tx0);
          c = _mm512_maskz_loadu_ps(mhi, r1 + 2 * tx0 + 16);
          y10 = _mm512_permutex2var_ps(a, even, c);
          y11 = _mm512_permutex2var_ps(a, odd, c);
        }
        __m512 t[4][2] = {/* A dY, A = [1 0; 1 1; 1 -1; 0 -1] */
                          {y00, y01},
                          {_mm512_add_ps(y00, y10), _mm512_add_ps(y01, y11)},
                          {_mm512_sub_ps(y00, y10), _mm512_sub_ps(y01, y11)},
                          {_mm512_sub_ps(_mm512_setzero_ps(), y10), _mm512_sub_ps(_mm512_setzero_ps(), y11)}};
        __mmask16 m = mask_of(g->TW - tx0);
        float *zt = zb + tx0;
#pragma GCC unroll 16
        for (int i = 0; i < 4; i++) { /* (A dY) A^T */
          _mm512_mask_storeu_ps(zt + (size_t)(i * 4 + 0) * cstride, m, t[i][0]);
          _mm512_mask_storeu_ps(zt + (size_t)(i * 4 + 1) * cstride, m, _mm512_add_ps(t[i][0], t[i][1]));
          _mm512_mask_storeu_ps(zt + (size_t)(i * 4 + 2) * cstride, m, _mm512_sub_ps(t[i][0], t[i][1]));
          _mm512_mask_storeu_ps(zt + (size_t)(i * 4 + 3) * cstride, m, _mm512_sub_ps(_mm512_setzero_ps(), t[i][1]));
        }
      }
    }
  }
}

int ser_conv3x3_winograd_dweight(float *dweight, const float *in, const float *dout, int B, int Ci, int H, int W,
                                 int Co, int ph, int pw) {
  wgeom g = {.B = B, .Ci = Ci, .H = H, .W = W, .Co = Co, .ph = ph, .pw = pw, .OH = H + 2 * ph - 2, .OW = W + 2 * pw - 2};
  if (B <= 0 || Co <= 0 || Ci <= 0 || g.OH <= 0 || g.OW <= 0) return 0;
  g.TH = (g.OH + 1) / 2;
  g.TW = (g.OW + 1) / 2;
  /* V and Z of a block in about 1 MB; the GEMMs run over the block's tiles */
  int target = 16384 / (Ci + Co);
  if (target > 128) target = 128;
  if (target < 32) target = 32;
  int rows = g.B * g.TH, nt = omp_get_max_threads(), par = nt > 1 && !omp_in_parallel();
  int rb = target / g.TW;
  if (rb < 1) rb = 1;
  if (par && rows / rb < nt) rb = rows / nt > 0 ? rows / nt : 1;
  g.rows_blk = rb;
  g.VS = (rb * g.TW + 15) / 16 * 16;
  g.OCC = Co;
  int nblocks = (rows + rb - 1) / rb;
  if (!par || nblocks < 2) nt = 1;
  g.vps = (size_t)Ci * g.VS + 16;
  g.zps = (size_t)Co * g.VS + 16;
  size_t un = (size_t)16 * Co * Ci, vn = 16 * g.vps, zn = 16 * g.zps;
  float *part[nt];
  memset(part, 0, sizeof part);
  int failed = 0;
  /* static schedule and partial sums added in thread order: deterministic for
   * a given thread count, like the im2col path */
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(| : failed)
  {
    int t = omp_get_thread_num();
    float *buf = ser_scratch(SER_SCRATCH_WINO, sizeof(float) * (un + vn + zn));
    if (buf) {
      memset(buf, 0, sizeof(float) * un);
      part[t] = buf;
    } else {
      failed = 1;
    }
#pragma omp for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
      if (!buf) continue;
      int q0 = blk * rb, q1 = q0 + rb < rows ? q0 + rb : rows, ntb = (q1 - q0) * g.TW;
      float *V = buf + un, *Z = V + vn;
      input_transform(V, in, &g, q0, q1);
      dout_transform(Z, dout, &g, q0, q1);
      for (int p = 0; p < 16; p++)
        ser_gemm_f32(0, 1, Co, Ci, ntb, 1.0f, Z + p * g.zps, g.VS, V + p * g.vps, g.VS,
                     1.0f, buf + (size_t)p * Co * Ci, Ci);
    }
  }
  if (failed)
    return ser_error(SER_ENOMEM, "out of memory for the Winograd scratch (%zu bytes per thread)",
                     sizeof(float) * (un + vn + zn));
  float *dU = part[0];
  for (int t = 1; t < nt; t++)
    for (size_t i = 0; i < un; i++) dU[i] += part[t][i];
  /* dW += G^T dU G, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
#pragma omp parallel for schedule(static) if (nt > 1)
  for (int co = 0; co < Co; co++)
    for (int ci = 0; ci < Ci; ci++) {
      float u[4][4], t[3][4];
      for (int p = 0; p < 16; p++) u[p / 4][p % 4] = dU[((size_t)p * Co + co) * Ci + ci];
      for (int l = 0; l < 4; l++) {
        t[0][l] = u[0][l] + 0.5f * (u[1][l] + u[2][l]);
        t[1][l] = 0.5f * (u[1][l] - u[2][l]);
        t[2][l] = 0.5f * (u[1][l] + u[2][l]) + u[3][l];
      }
      float *dw = dweight + ((size_t)co * Ci + ci) * 9;
      for (int j = 0; j < 3; j++) {
        dw[j * 3 + 0] += t[j][0] + 0.5f * (t[j][1] + t[j][2]);
        dw[j * 3 + 1] += 0.5f * (t[j][1] - t[j][2]);
        dw[j * 3 + 2] += 0.5f * (t[j][1] + t[j][2]) + t[j][3];
      }
    }
  return 0;
}
