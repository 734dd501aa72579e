#include "winograd.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "../core/error.h"
#include "gemm.h"
#include "scratch.h"

int ser_winograd_supported(void) {
  static int cached = -1;
  if (cached < 0) {
    __builtin_cpu_init();
    cached = __builtin_cpu_supports("avx512f");
  }
  return cached;
}

typedef struct {
  int B, Ci, H, W, Co, ph, pw, OH, OW;
  int TH, TW;      /* tiles per image: ceil(OH/2) x ceil(OW/2) */
  int rows_blk;    /* tile rows per block */
  int VS;          /* tile stride of V and M rows: rows_blk * TW rounded up to 16 */
  int OCC;         /* output channels per pass over M */
  int PL;          /* padded input row length */
} wgeom;

/* U [16][Co][Ci] = G g G^T per channel pair, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]. */
static void transform_weight(float *U, const float *w, int Co, int Ci, int flip) {
  for (int co = 0; co < Co; co++)
    for (int ci = 0; ci < Ci; ci++) {
      float g[3][3];
      for (int j = 0; j < 3; j++)
        for (int k = 0; k < 3; k++)
          g[j][k] = flip ? w[((size_t)ci * Co + co) * 9 + (2 - j) * 3 + (2 - k)] : w[((size_t)co * Ci + ci) * 9 + j * 3 + k];
      float t[4][3]; /* G g */
      for (int k = 0; k < 3; k++) {
        t[0][k] = g[0][k];
        t[1][k] = 0.5f * (g[0][k] + g[1][k] + g[2][k]);
        t[2][k] = 0.5f * (g[0][k] - g[1][k] + g[2][k]);
        t[3][k] = g[2][k];
      }
      for (int i = 0; i < 4; i++) {
        float u[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
        for (int l = 0; l < 4; l++) U[((size_t)(i * 4 + l) * Co + co) * Ci + ci] = u[l];
      }
    }
}

static inline __mmask16 mask_of(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* V[pos][ci][j] for the tiles of global tile rows [q0, q1): B^T d B of each 4x4
 * input patch (rows 2ty-ph.., cols 2tx-pw..), 16 tiles of a row per vector.
 * P holds 4 zero-padded input rows so that the patches need no bounds tests. */
__attribute__((target("avx512f"))) static void input_transform(float *V, float *P, const float *in, const wgeom *g,
                                                                 int q0, int q1) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  size_t plane = (size_t)g->H * g->W, cstride = (size_t)g->Ci * g->VS;
  int lo = g->pw, hi = g->pw + g->W; /* P[x] = row[x - pw] for x in [lo, hi), else 0 */
  if (hi > g->PL) hi = g->PL;
  for (int q = q0; q < q1; q++) {
    int b = q / g->TH, ty = q % g->TH, jrow = (q - q0) * g->TW;
    for (int ci = 0; ci < g->Ci; ci++) {
      const float *img = in + ((size_t)b * g->Ci + ci) * plane;
      for (int r = 0; r < 4; r++) {
        float *pr = P + (size_t)r * g->PL;
        int ih = 2 * ty - g->ph + r;
        if (ih < 0 || ih >= g->H) {
          memset(pr, 0, sizeof(float) * g->PL);
          continue;
        }
        memset(pr, 0, sizeof(float) * lo);
        memcpy(pr + lo, img + (size_t)ih * g->W, sizeof(float) * (hi - lo));
        memset(pr + hi, 0, sizeof(float) * (g->PL - hi));
      }
      float *vb = V + (size_t)ci * g->VS + jrow;
      for (int tx0 = 0; tx0 < g->TW; tx0 += 16) {
        __m512 d[4][4];
        for (int r = 0; r < 4; r++) {
          const float *pr = P + (size_t)r * g->PL + 2 * tx0;
          __m512 a = _mm512_loadu_ps(pr), bb = _mm512_loadu_ps(pr + 16);
          __m512 a2 = _mm512_loadu_ps(pr + 2), b2 = _mm512_loadu_ps(pr + 18);
          d[r][0] = _mm512_permutex2var_ps(a, even, bb);
          d[r][1] = _mm512_permutex2var_ps(a, odd, bb);
          d[r][2] = _mm512_permutex2var_ps(a2, even, b2);
          d[r][3] = _mm512_permutex2var_ps(a2, odd, b2);
        }
        __m512 t[4][4]; /* B^T d */
        for (int s = 0; s < 4; s++) {
          t[0][s] = _mm512_sub_ps(d[0][s], d[2][s]);
          t[1][s] = _mm512_add_ps(d[1][s], d[2][s]);
          t[2][s] = _mm512_sub_ps(d[2][s], d[1][s]);
          t[3][s] = _mm512_sub_ps(d[1][s], d[3][s]);
        }
        __mmask16 m = mask_of(g->TW - tx0);
        float *vt = vb + tx0;
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
  size_t pstride = (size_t)g->OCC * g->VS, oplane = (size_t)g->OH * g->OW;
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
        for (int p = 0; p < 16; p++) v[p] = _mm512_maskz_loadu_ps(m, mo + p * pstride + tx0);
        __m512 s[2][4]; /* A^T m */
        for (int j = 0; j < 4; j++) {
          s[0][j] = _mm512_add_ps(_mm512_add_ps(v[j], v[4 + j]), v[8 + j]);
          s[1][j] = _mm512_sub_ps(_mm512_sub_ps(v[4 + j], v[8 + j]), v[12 + j]);
        }
        int ncol = g->OW - 2 * tx0; /* output columns left in this row */
        __mmask16 mlo = mask_of(ncol), mhi = mask_of(ncol - 16);
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

/* One block of tile rows: transform, 16 products, inverse transform. */
__attribute__((target("avx512f"))) static void run_block(float *out, const float *in, const float *U, const float *bias,
                                                           float *P, float *V, float *Mb, const wgeom *g, int q0,
                                                           int q1, int accumulate) {
  int ntb = (q1 - q0) * g->TW;
  input_transform(V, P, in, g, q0, q1);
  for (int oc0 = 0; oc0 < g->Co; oc0 += g->OCC) {
    int occ = g->Co - oc0 < g->OCC ? g->Co - oc0 : g->OCC;
    for (int p = 0; p < 16; p++) {
      const float *Up = U + ((size_t)p * g->Co + oc0) * g->Ci, *Vp = V + (size_t)p * g->Ci * g->VS;
      float *Mp = Mb + (size_t)p * g->OCC * g->VS;
      for (int o = 0; o < occ; o += 8) {
        int R = occ - o < 8 ? occ - o : 8;
        for (int j0 = 0; j0 < ntb; j0 += 32)
          kern(R, Up + (size_t)o * g->Ci, g->Ci, Vp + j0, g->VS, g->Ci, Mp + (size_t)o * g->VS + j0, g->VS,
               mask_of(ntb - j0), mask_of(ntb - j0 - 16));
      }
    }
    output_transform(out, Mb, bias, g, q0, q1, oc0, occ, accumulate);
  }
}

int ser_conv3x3_winograd(float *out, const float *in, const float *weight, const float *bias, int B, int Ci,
                         int H, int W, int Co, int ph, int pw, int flip, int accumulate) {
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
  g.PL = 2 * ((g.TW + 15) / 16 * 16) + 16;
  int nblocks = (rows + rb - 1) / rb;
  par = par && nblocks > 1;

  float *U = ser_scratch(SER_SCRATCH_WINO_U, sizeof(float) * 16 * (size_t)Co * (Ci > 0 ? Ci : 1));
  if (!U) return SER_ENOMEM;
  transform_weight(U, weight, Co, Ci, flip);
  size_t pn = (size_t)4 * g.PL, vn = (size_t)16 * Ci * g.VS, mn = (size_t)16 * g.OCC * g.VS;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) if (par) reduction(| : failed)
  for (int blk = 0; blk < nblocks; blk++) {
    float *P = ser_scratch(SER_SCRATCH_WINO, sizeof(float) * (pn + vn + mn));
    if (!P) {
      failed = 1;
      continue;
    }
    int q0 = blk * rb, q1 = q0 + rb < rows ? q0 + rb : rows;
    run_block(out, in, U, bias, P, P + pn, P + pn + vn, &g, q0, q1, accumulate);
  }
  if (failed)
    return ser_error(SER_ENOMEM, "out of memory for the Winograd scratch (%zu bytes per thread)",
                     sizeof(float) * (pn + vn + mn));
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
  size_t oplane = (size_t)g->OH * g->OW, cstride = (size_t)g->Co * g->VS;
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
  g.PL = 2 * ((g.TW + 15) / 16 * 16) + 16;
  int nblocks = (rows + rb - 1) / rb;
  if (!par || nblocks < 2) nt = 1;
  size_t un = (size_t)16 * Co * Ci, pn = (size_t)4 * g.PL, vn = (size_t)16 * Ci * g.VS, zn = (size_t)16 * Co * g.VS;
  float *part[nt];
  memset(part, 0, sizeof part);
  int failed = 0;
  /* static schedule and partial sums added in thread order: deterministic for
   * a given thread count, like the im2col path */
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(| : failed)
  {
    int t = omp_get_thread_num();
    float *buf = ser_scratch(SER_SCRATCH_WINO, sizeof(float) * (un + pn + vn + zn));
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
      float *P = buf + un, *V = P + pn, *Z = V + vn;
      input_transform(V, P, in, &g, q0, q1);
      dout_transform(Z, dout, &g, q0, q1);
      for (int p = 0; p < 16; p++)
        ser_gemm_f32(0, 1, Co, Ci, ntb, 1.0f, Z + (size_t)p * Co * g.VS, g.VS, V + (size_t)p * Ci * g.VS, g.VS,
                     1.0f, buf + (size_t)p * Co * Ci, Ci);
    }
  }
  if (failed)
    return ser_error(SER_ENOMEM, "out of memory for the Winograd scratch (%zu bytes per thread)",
                     sizeof(float) * (un + pn + vn + zn));
  float *dU = part[0];
  for (int t = 1; t < nt; t++)
    for (size_t i = 0; i < un; i++) dU[i] += part[t][i];
  /* dW += G^T dU G, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
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
