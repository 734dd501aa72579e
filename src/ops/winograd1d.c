#include "winograd1d.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../core/cpu.h"
#include "../core/error.h"
#include "gemm.h"
#include "scratch.h"

/* Tiles of TM = 4 outputs. Even phase F(4,5): NE = 8 points, odd phase F(4,4):
 * NO = 7 points (0, 1, -1, 2, -2, 1/2, [-1/2,] infinity); NP = 15 products,
 * run as NS = 8 GEMMs (below).
 * The matrices are the Toom-Cook ones (B^T = the transposed interpolation
 * matrix, A and G the evaluation matrices), each row of B^T scaled so that
 * its smallest entry is 1 (the scale moved into G); checked exactly in
 * rational arithmetic when they were generated. Tile t of the output reads
 *   even phase d_e[i] = x[8t - 4 + 2i], i < 8;  odd phase d_o[i] = x[8t - 3 + 2i], i < 7
 * and gives y[4t + i] = sum_p AT[i][p] (U[p] * V[p]) with V = B^T d, U = G g. */
#define TM 4
#define NE 8
#define NO 7
#define NP 15
/* The two phases share 7 of their points (all but -1/2), and A^T is the same
 * for a shared point, so their products are summed before the output
 * transform: slab s of V is [2C][tiles], the even phase's C channel rows then
 * the odd phase's, and U[s] is [OC][2C] (even | odd), one GEMM with K = 2C
 * per shared point (K = C for -1/2, slab 6). The same multiplications in
 * fewer, wider GEMMs, and M and Z have 8 slabs instead of 15: against 15
 * separate products, CNN1D's convolutions measured 1.12x faster under amp and
 * 1.04x in fp32 (bench/bench_conv1d, 1 thread, three interleaved runs). */
#define NS 8
static inline int odd_slab(int j) { return j < 6 ? j : 7; } /* odd point j -> its slab */

static const float BTE[8][8] = {
    {1.0f, 0.0f, -5.25f, 0.0f, 5.25f, 0.0f, -1.0f, 0.0f},
    {0.0f, -1.0f, -1.0f, 4.25f, 4.25f, -1.0f, -1.0f, 0.0f},
    {0.0f, 1.0f, -1.0f, -4.25f, 4.25f, 1.0f, -1.0f, 0.0f},
    {0.0f, 2.0f, 1.0f, -10.0f, -5.0f, 8.0f, 4.0f, 0.0f},
    {0.0f, -2.0f, 1.0f, 10.0f, -5.0f, -8.0f, 4.0f, 0.0f},
    {0.0f, 4.0f, 8.0f, -5.0f, -10.0f, 1.0f, 2.0f, 0.0f},
    {0.0f, -4.0f, 8.0f, 5.0f, -10.0f, -1.0f, 2.0f, 0.0f},
    {0.0f, -1.0f, 0.0f, 5.25f, 0.0f, -5.25f, 0.0f, 1.0f},
};
static const float BTO[7][7] = {
    {4.0f, -8.0f, -5.0f, 10.0f, 1.0f, -2.0f, 0.0f},
    {0.0f, -4.0f, 4.0f, 9.0f, -1.0f, -2.0f, 0.0f},
    {0.0f, -2.0f, 6.0f, -3.5f, -1.5f, 1.0f, 0.0f},
    {0.0f, 1.0f, -1.5f, -2.0f, 1.5f, 1.0f, 0.0f},
    {0.0f, 1.0f, -2.5f, 0.0f, 2.5f, -1.0f, 0.0f},
    {0.0f, 4.0f, 0.0f, -5.0f, 0.0f, 1.0f, 0.0f},
    {0.0f, -4.0f, 8.0f, 5.0f, -10.0f, -1.0f, 2.0f},
};
static const float GE[8][5] = {
    {1.0f, 0.0f, 0.0f, 0.0f, 0.0f},
    {(float)(2.0 / 9.0), (float)(2.0 / 9.0), (float)(2.0 / 9.0), (float)(2.0 / 9.0), (float)(2.0 / 9.0)},
    {(float)(2.0 / 9.0), (float)(-2.0 / 9.0), (float)(2.0 / 9.0), (float)(-2.0 / 9.0), (float)(2.0 / 9.0)},
    {(float)(1.0 / 360.0), (float)(1.0 / 180.0), (float)(1.0 / 90.0), (float)(1.0 / 45.0), (float)(2.0 / 45.0)},
    {(float)(1.0 / 360.0), (float)(-1.0 / 180.0), (float)(1.0 / 90.0), (float)(-1.0 / 45.0), (float)(2.0 / 45.0)},
    {(float)(16.0 / 45.0), (float)(8.0 / 45.0), (float)(4.0 / 45.0), (float)(2.0 / 45.0), (float)(1.0 / 45.0)},
    {(float)(16.0 / 45.0), (float)(-8.0 / 45.0), (float)(4.0 / 45.0), (float)(-2.0 / 45.0), (float)(1.0 / 45.0)},
    {0.0f, 0.0f, 0.0f, 0.0f, 1.0f},
};
static const float GO[7][4] = {
    {0.25f, 0.0f, 0.0f, 0.0f},
    {(float)(1.0 / 6.0), (float)(1.0 / 6.0), (float)(1.0 / 6.0), (float)(1.0 / 6.0)},
    {(float)(1.0 / 9.0), (float)(-1.0 / 9.0), (float)(1.0 / 9.0), (float)(-1.0 / 9.0)},
    {(float)(1.0 / 36.0), (float)(1.0 / 18.0), (float)(1.0 / 9.0), (float)(2.0 / 9.0)},
    {(float)(1.0 / 60.0), (float)(-1.0 / 30.0), (float)(1.0 / 15.0), (float)(-2.0 / 15.0)},
    {(float)(32.0 / 45.0), (float)(16.0 / 45.0), (float)(8.0 / 45.0), (float)(4.0 / 45.0)},
    {0.0f, 0.0f, 0.0f, 0.5f},
};
static const float AT[4][15] = {
    {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f},
    {0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, 0.0f, 0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, 0.0f},
    {0.0f, 1.0f, 1.0f, 4.0f, 4.0f, 0.25f, 0.25f, 0.0f, 0.0f, 1.0f, 1.0f, 4.0f, 4.0f, 0.25f, 0.0f},
    {0.0f, 1.0f, -1.0f, 8.0f, -8.0f, 0.125f, -0.125f, 1.0f, 0.0f, 1.0f, -1.0f, 8.0f, -8.0f, 0.125f, 1.0f},
};


int ser_winograd1d_supported(void) {
  return ser_cpu_has(SER_CPU_AVX512F);   /* detected once, in core/cpu.c */
}

static inline __mmask16 mask_of(long n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

typedef struct {
  int B, C, W, OC, OW, T; /* T tiles per image: ceil(OW / 4) */
  int nb;                 /* tiles per block */
  int VS;                 /* row stride of V, M, Z: nb rounded up to 16 */
  size_t vps, mps;        /* point slab strides of V [C][VS] and M/Z [OC][VS], one cache line over */
} geom1;

/* 16 floats of a row from column o (may be negative), zero outside [0, W). */
__attribute__((target("avx512f"))) static inline __m512 row_load(const float *row, long o, int W) {
  if (o >= 0) return _mm512_maskz_loadu_ps(mask_of(W - o), row + o);
  return _mm512_maskz_expandloadu_ps((__mmask16)(mask_of(W - o) & ~mask_of(-o)), row);
}

/* row[o + l] += v[l] for the lanes with o + l in [0, W). */
__attribute__((target("avx512f"))) static inline void row_add(float *row, long o, int W, __m512 v) {
  if (o >= 0) {
    __mmask16 m = mask_of(W - o);
    _mm512_mask_storeu_ps(row + o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, row + o), v));
    return;
  }
  __mmask16 m = (__mmask16)(mask_of(W - o) & ~mask_of(-o));
  __m512 s = _mm512_maskz_compress_ps(m, _mm512_add_ps(_mm512_maskz_expandloadu_ps(m, row), v));
  _mm512_mask_storeu_ps(row, mask_of(__builtin_popcount(m)), s);
}

#define EVEN_IDX _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0)
#define ODD_IDX _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1)
#define ILO_IDX _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0)
#define IHI_IDX _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8)

/* (a, b) = 32 consecutive floats -> their even and odd elements */
#define DEINT(a, b, e, o)                          \
  do {                                             \
    e = _mm512_permutex2var_ps(a, EVEN_IDX, b);    \
    o = _mm512_permutex2var_ps(a, ODD_IDX, b);     \
  } while (0)
/* the inverse: even and odd elements -> 32 consecutive floats (a, b) */
#define INTER(e, o, a, b)                          \
  do {                                             \
    a = _mm512_permutex2var_ps(e, ILO_IDX, o);     \
    b = _mm512_permutex2var_ps(e, IHI_IDX, o);     \
  } while (0)

/* P[q][l] = row[base + 8l + q] (zero outside the row): the 8 phases of 128
 * samples, three rounds of even/odd splits. */
__attribute__((target("avx512f"))) static inline void phase8_load(__m512 P[8], const float *row, long base, int W) {
  __m512 v[8], E0, E1, E2, E3, O0, O1, O2, O3, EE0, EE1, EO0, EO1, OE0, OE1, OO0, OO1;
  for (int k = 0; k < 8; k++) v[k] = row_load(row, base + 16 * k, W);
  DEINT(v[0], v[1], E0, O0);
  DEINT(v[2], v[3], E1, O1);
  DEINT(v[4], v[5], E2, O2);
  DEINT(v[6], v[7], E3, O3);
  DEINT(E0, E1, EE0, EO0);
  DEINT(E2, E3, EE1, EO1);
  DEINT(O0, O1, OE0, OO0);
  DEINT(O2, O3, OE1, OO1);
  DEINT(EE0, EE1, P[0], P[4]);
  DEINT(EO0, EO1, P[2], P[6]);
  DEINT(OE0, OE1, P[1], P[5]);
  DEINT(OO0, OO1, P[3], P[7]);
}

/* The adjoint: row[base + 8l + q] += P[q][l] inside the row. */
__attribute__((target("avx512f"))) static inline void phase8_add(float *row, long base, int W, const __m512 P[8]) {
  __m512 v[8], E0, E1, E2, E3, O0, O1, O2, O3, EE0, EE1, EO0, EO1, OE0, OE1, OO0, OO1;
  INTER(P[0], P[4], EE0, EE1);
  INTER(P[2], P[6], EO0, EO1);
  INTER(P[1], P[5], OE0, OE1);
  INTER(P[3], P[7], OO0, OO1);
  INTER(EE0, EO0, E0, E1);
  INTER(EE1, EO1, E2, E3);
  INTER(OE0, OO0, O0, O1);
  INTER(OE1, OO1, O2, O3);
  INTER(E0, O0, v[0], v[1]);
  INTER(E1, O1, v[2], v[3]);
  INTER(E2, O2, v[4], v[5]);
  INTER(E3, O3, v[6], v[7]);
  for (int k = 0; k < 8; k++) row_add(row, base + 16 * k, W, v[k]);
}

/* lanes 0..14 of a shifted down by one, lane 15 = b[0]: the next tile's value */
__attribute__((target("avx512f"))) static inline __m512 next_tile(__m512 b, __m512 a) {
  return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(b), _mm512_castps_si512(a), 1));
}

/* V[p][c][j] = (B^T d)[p] of tiles t0 + j of channel row `row` (ng groups of 16). */
__attribute__((target("avx512f"))) static void input_transform(float *V, const float *row, int c, const geom1 *g,
                                                                 int t0, int ng) {
  __m512 Pc[8], Pn[8];
  phase8_load(Pn, row, 8L * t0 - 4, g->W);
  for (int gi = 0; gi < ng; gi++) {
    for (int q = 0; q < 8; q++) Pc[q] = Pn[q];
    phase8_load(Pn, row, 8L * (t0 + 16 * gi + 16) - 4, g->W);
    __m512 de[NE], dd[NO];
    for (int i = 0; i < 4; i++) {
      de[i] = Pc[2 * i];
      de[4 + i] = next_tile(Pn[2 * i], Pc[2 * i]);
      dd[i] = Pc[2 * i + 1];
      if (i < 3) dd[4 + i] = next_tile(Pn[2 * i + 1], Pc[2 * i + 1]);
    }
    float *vt = V + (size_t)c * g->VS + 16 * gi;
#pragma GCC unroll 8
    for (int j = 0; j < NE; j++) {
      __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 8
      for (int i = 0; i < NE; i++)
        if (BTE[j][i] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(BTE[j][i]), de[i], acc);
      _mm512_storeu_ps(vt + j * g->vps, acc);
    }
#pragma GCC unroll 7
    for (int j = 0; j < NO; j++) {
      __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 7
      for (int i = 0; i < NO; i++)
        if (BTO[j][i] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(BTO[j][i]), dd[i], acc);
      _mm512_storeu_ps(vt + odd_slab(j) * g->vps + (size_t)g->C * g->VS, acc);
    }
  }
}

/* The adjoint of input_transform: row += B dV of the tiles, dV in V's layout. */
__attribute__((target("avx512f"))) static void input_adjoint(float *row, const float *dV, int c, const geom1 *g,
                                                               int t0, int ng) {
  __m512 Sprev[8];
  for (int q = 0; q < 8; q++) Sprev[q] = _mm512_setzero_ps();
  for (int gi = 0; gi <= ng; gi++) {
    __m512 cur[8], S[8];
    if (gi < ng) {
      const float *vt = dV + (size_t)c * g->VS + 16 * gi;
      __m512 v[NP], de[NE], dd[NO];
#pragma GCC unroll 8
      for (int j = 0; j < NE; j++) v[j] = _mm512_loadu_ps(vt + j * g->vps);
#pragma GCC unroll 7
      for (int j = 0; j < NO; j++) v[NE + j] = _mm512_loadu_ps(vt + odd_slab(j) * g->vps + (size_t)g->C * g->VS);
#pragma GCC unroll 8
      for (int i = 0; i < NE; i++) {
        __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int j = 0; j < NE; j++)
          if (BTE[j][i] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(BTE[j][i]), v[j], acc);
        de[i] = acc;
      }
#pragma GCC unroll 7
      for (int i = 0; i < NO; i++) {
        __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 7
        for (int j = 0; j < NO; j++)
          if (BTO[j][i] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(BTO[j][i]), v[NE + j], acc);
        dd[i] = acc;
      }
      for (int i = 0; i < 4; i++) {
        cur[2 * i] = de[i];
        cur[2 * i + 1] = dd[i];
        S[2 * i] = de[4 + i];
        S[2 * i + 1] = i < 3 ? dd[4 + i] : _mm512_setzero_ps();
      }
    } else {
      for (int q = 0; q < 8; q++) cur[q] = S[q] = _mm512_setzero_ps();
    }
    /* S holds the contributions to the next tile: lane l goes to lane l + 1, lane 15 to the next group */
    for (int q = 0; q < 8; q++) {
      __m512 sh = _mm512_castsi512_ps(
          _mm512_alignr_epi32(_mm512_castps_si512(S[q]), _mm512_castps_si512(Sprev[q]), 15));
      cur[q] = _mm512_add_ps(cur[q], sh);
      Sprev[q] = S[q];
    }
    phase8_add(row, 8L * (t0 + 16 * gi) - 4, g->W, cur);
  }
}

/* out[oc][4t + i] (t in [t0, t1), positions below OW) = A^T M + bias. */
__attribute__((target("avx512f"))) static void output_transform(float *orow, const float *M, int oc, float bias,
                                                                  const geom1 *g, int t0, int t1) {
  long oend = 4L * t1 < g->OW ? 4L * t1 : g->OW;
  int ng = (t1 - t0 + 15) / 16;
  __m512 bv = _mm512_set1_ps(bias);
  for (int gi = 0; gi < ng; gi++) {
    const float *mo = M + (size_t)oc * g->VS + 16 * gi;
    __m512 m[NS], y[TM];
#pragma GCC unroll 8
    for (int p = 0; p < NS; p++) m[p] = _mm512_loadu_ps(mo + p * g->mps);
#pragma GCC unroll 4
    for (int i = 0; i < TM; i++) {
      __m512 acc = bv;
#pragma GCC unroll 8
      for (int p = 0; p < NS; p++)
        if (AT[i][p] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(AT[i][p]), m[p], acc);
      y[i] = acc;
    }
    __m512 E0, E1, O0, O1, v[4];
    INTER(y[0], y[2], E0, E1);
    INTER(y[1], y[3], O0, O1);
    INTER(E0, O0, v[0], v[1]);
    INTER(E1, O1, v[2], v[3]);
    long o0 = 4L * (t0 + 16 * gi);
    for (int k = 0; k < 4; k++) _mm512_mask_storeu_ps(orow + o0 + 16 * k, mask_of(oend - o0 - 16 * k), v[k]);
  }
}

/* Z[p][oc][j] = (A dY)[p] of the tiles t0 + j of dout row `drow`; tiles at or
 * past t1 (and outputs past OW) count as zero. With dbs, dbs[oc] += the sum of
 * those outputs of dout (the bias gradient, from values already in registers:
 * a separate pass over dout was 1.8% of an amp CNN1D step). */
__attribute__((target("avx512f"))) static void dout_transform(float *Z, const float *drow, int oc, const geom1 *g,
                                                                int t0, int t1, int ng, float *dbs) {
  long oend = 4L * t1 < g->OW ? 4L * t1 : g->OW;
  __m512 bsum = _mm512_setzero_ps();
  for (int gi = 0; gi < ng; gi++) {
    long o0 = 4L * (t0 + 16 * gi);
    __m512 v[4], E0, E1, O0, O1, y[TM];
    for (int k = 0; k < 4; k++) v[k] = _mm512_maskz_loadu_ps(mask_of(oend - o0 - 16 * k), drow + o0 + 16 * k);
    bsum = _mm512_add_ps(bsum, _mm512_add_ps(_mm512_add_ps(v[0], v[1]), _mm512_add_ps(v[2], v[3])));
    DEINT(v[0], v[1], E0, O0);
    DEINT(v[2], v[3], E1, O1);
    DEINT(E0, E1, y[0], y[2]);
    DEINT(O0, O1, y[1], y[3]);
    float *zt = Z + (size_t)oc * g->VS + 16 * gi;
#pragma GCC unroll 8
    for (int p = 0; p < NS; p++) {
      __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 4
      for (int i = 0; i < TM; i++)
        if (AT[i][p] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(AT[i][p]), y[i], acc);
      _mm512_storeu_ps(zt + p * g->mps, acc);
    }
  }
  if (dbs) dbs[oc] += _mm512_reduce_add_ps(bsum);
}

/* U [NS][OC][2C] = G g: the even taps in columns [0, C) of slabs 0..7, the
 * odd taps in columns [C, 2C) of slab odd_slab(j) (slab 6's are not used),
 * 16 input channels per vector (their 9 taps gathered). */
/* One output channel's row of U. The OpenMP loop over rows lives in a plain
 * function: clang outlines a parallel region into a function without this
 * target attribute, where __m512 values cannot cross calls. */
__attribute__((target("avx512f"))) static void transform_weight_row(float *U, const float *w, int oc, int OC, int C) {
  size_t pc = (size_t)OC * 2 * C;
  const __m512i vidx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(9));
  for (int c0 = 0; c0 < C; c0 += 16) {
    __mmask16 m = mask_of(C - c0);
    const float *base = w + ((size_t)oc * C + c0) * 9;
    __m512 t[9];
#pragma GCC unroll 9
    for (int k = 0; k < 9; k++) t[k] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, vidx, base + k, 4);
    float *u = U + (size_t)oc * 2 * C + c0;
#pragma GCC unroll 8
    for (int p = 0; p < NE; p++) {
      __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 5
      for (int k = 0; k < 5; k++)
        if (GE[p][k] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(GE[p][k]), t[2 * k], acc);
      _mm512_mask_storeu_ps(u + p * pc, m, acc);
    }
#pragma GCC unroll 7
    for (int p = 0; p < NO; p++) {
      __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 4
      for (int k = 0; k < 4; k++)
        if (GO[p][k] != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(GO[p][k]), t[2 * k + 1], acc);
      _mm512_mask_storeu_ps(u + odd_slab(p) * pc + C, m, acc);
    }
  }
}

static void transform_weight(float *U, const float *w, int OC, int C) {
#pragma omp parallel for schedule(static) if ((double)OC * C > 8192 && omp_get_max_threads() > 1 && !omp_in_parallel())
  for (int oc = 0; oc < OC; oc++) transform_weight_row(U, w, oc, OC, C);
}

/* Tiles per block: V and M (or Z) of a block in about SER_WINO1D_FLOATS
 * floats (3 MB), at least 16 tiles; 192 tiles for CNN1D's last layer. Wide
 * blocks matter under amp, where the bf16 GEMM packs V per call: with 15
 * separate products, CNN1D's convolutions (forward + backward, 1 thread) took
 * 0.47 s at 1.5 MB blocks, 0.42 s at 3 MB, 0.39 s at 6 MB and 0.46 s at
 * 24 MB; with the 8 shared-point slabs 0.35-0.36 s at 3 MB, 0.38 s at 6 MB
 * and 0.39-0.43 s at 12 MB (fp32 0.57-0.64 s for all, within the noise). */
#ifndef SER_WINO1D_FLOATS
#define SER_WINO1D_FLOATS 786432
#endif
static long block_floats = -1;

static long block_budget(void) {
  if (block_floats < 0) {
    const char *env = getenv("SER_WINO1D_FLOATS"); /* tuning only */
    block_floats = env && atol(env) > 0 ? atol(env) : SER_WINO1D_FLOATS;
  }
  return block_floats;
}

long ser_winograd1d_set_block_floats(long floats) {
  long prev = block_budget();
  block_floats = floats > 0 ? floats : -1;
  return prev;
}

static int block_tiles(int C, int OC, int T) {
  long budget = block_budget();
  long nb = budget / ((long)NS * (2 * C + OC)) / 16 * 16;
  if (nb < 16) nb = 16;
  return nb < T ? (int)nb : T;
}

static void geom_init(geom1 *g, int B, int C, int W, int OC, int nb) {
  g->B = B, g->C = C, g->W = W, g->OC = OC;
  g->OW = (W - 1) / 2 + 1;
  g->T = (g->OW + TM - 1) / TM;
  g->nb = nb;
  g->VS = (nb + 15) / 16 * 16;
  g->vps = (size_t)2 * C * g->VS + 16;
  g->mps = (size_t)OC * g->VS + 16;
}

/* rows of slab s of V (the K of its product): both phases, or the even one alone at -1/2 */
static inline int slab_k(int s, int C) { return s == 6 ? C : 2 * C; }

/* Under amp the 8 transformed weights are packed to bf16 once per call
 * (op(U[s]) = U[s], or U[s]^T with ta), not once per block and product: that
 * was a quarter of the packing work of an amp step. Up[s] is NULL where the
 * product runs in fp32 (amp off, a dimension below 16, no memory: ser_gemm
 * then decides, and packs per call). */
static void pack_weights(const char *Up[NS], const float *U, int ta, int OC, int C) {
  size_t us = (size_t)OC * 2 * C, pk = ta ? ser_gemm_pack_a_bytes(2 * C, OC) : ser_gemm_pack_a_bytes(OC, 2 * C);
  for (int s = 0; s < NS; s++) Up[s] = NULL;
  if (!pk) return;
  pk = (pk + 63) / 64 * 64;
  char *buf = ser_scratch(SER_SCRATCH_WINO_UPACK, NS * pk);
  if (!buf) return;
  for (int s = 0; s < NS; s++) {
    int K = slab_k(s, C);
    if (ta ? ser_gemm_pack_a_bytes(K, OC) : ser_gemm_pack_a_bytes(OC, K)) Up[s] = buf + s * pk;
  }
#pragma omp parallel for schedule(static) if (omp_get_max_threads() > 1 && !omp_in_parallel())
  for (int s = 0; s < NS; s++)
    if (Up[s])
      ser_gemm_pack_a_into((char *)Up[s], ta, ta ? slab_k(s, C) : OC, ta ? OC : slab_k(s, C), U + s * us, 2 * C);
}

static int scratch_failed(size_t bytes) {
  return ser_error(SER_ENOMEM, "out of memory for the 1-d Winograd scratch (%zu bytes per thread)", bytes);
}

int ser_conv1d_k9s2_winograd(float *out, const float *in, const float *weight, const float *bias, int B, int C,
                             int W, int OC) {
  if (B <= 0 || OC <= 0 || W <= 0) return 0;
  geom1 g;
  geom_init(&g, B, C, W, OC, 16);
  int nt = omp_get_max_threads(), par = nt > 1 && !omp_in_parallel();
  int nb = block_tiles(C, OC, g.T);
  if (par && B < nt) { /* fewer images than threads: smaller blocks, one at least per thread */
    int per = (nt + B - 1) / B, s = ((g.T + per - 1) / per + 15) / 16 * 16;
    if (s < nb) nb = s;
  }
  geom_init(&g, B, C, W, OC, nb);
  int nblocks = (g.T + nb - 1) / nb;
  long items = (long)B * nblocks;
  par = par && items >= nt;
  size_t us = (size_t)OC * 2 * C;
  float *U = ser_scratch(SER_SCRATCH_WINO_U, sizeof(float) * (NS * us + 1));
  if (!U) return scratch_failed(sizeof(float) * NS * us);
  transform_weight(U, weight, OC, C);
  const char *Up[NS];
  pack_weights(Up, U, 0, OC, C);
  size_t bytes = sizeof(float) * NS * (g.vps + g.mps);
  int failed = 0;
#pragma omp parallel for schedule(static) if (par) reduction(| : failed)
  for (long it = 0; it < items; it++) {
    float *V = ser_scratch(SER_SCRATCH_WINO, bytes);
    if (!V) {
      failed = 1;
      continue;
    }
    float *M = V + NS * g.vps;
    int b = (int)(it / nblocks), t0 = (int)(it % nblocks) * nb, t1 = t0 + nb < g.T ? t0 + nb : g.T;
    int ng = (t1 - t0 + 15) / 16;
    const float *img = in + (size_t)b * C * W;
    for (int c = 0; c < C; c++) input_transform(V, img + (size_t)c * W, c, &g, t0, ng);
    for (int s = 0; s < NS; s++)
      ser_gemm_packed(Up[s], 0, 0, OC, t1 - t0, slab_k(s, C), 1.0f, U + s * us, 2 * C, V + s * g.vps, g.VS, 0.0f,
                      M + s * g.mps, g.VS);
    float *o = out + (size_t)b * OC * g.OW;
    for (int oc = 0; oc < OC; oc++)
      output_transform(o + (size_t)oc * g.OW, M, oc, bias ? bias[oc] : 0.0f, &g, t0, t1);
  }
  return failed ? scratch_failed(bytes) : 0;
}

/* One image's gradients, block by block: Z = A dY; dU += Z V^T; dV = U^T Z; din += B dV.
 * overwrite: din_b holds garbage and is written. Its rows are zeroed stretch by
 * stretch just before the first block that adds into them, while the lines are
 * about to be used, instead of in a separate pass over all of din first (that
 * memset, and reading the zeros back from memory, were 3% of a CNN1D step).
 * dbs: this image's bias-gradient sums [OC] (added to), or NULL. */
static void backward_image(float *din_b, float *dU, float *dbs, const float *dout_b, const float *in_b,
                           const float *U, const char *const *Up, float *V, float *Z, const geom1 *g, int overwrite) {
  int C = g->C, OC = g->OC, nb = g->nb;
  size_t us = (size_t)OC * 2 * C;
  long zeroed = overwrite ? 0 : g->W; /* samples [0, zeroed) of every row of din_b are zeroed */
  for (int t0 = 0; t0 < g->T; t0 += nb) {
    int t1 = t0 + nb < g->T ? t0 + nb : g->T, ng = (t1 - t0 + 15) / 16;
    for (int oc = 0; oc < OC; oc++) dout_transform(Z, dout_b + (size_t)oc * g->OW, oc, g, t0, t1, ng, dbs);
    if (dU)
      for (int c = 0; c < C; c++) input_transform(V, in_b + (size_t)c * g->W, c, g, t0, ng);
    for (int s = 0; s < NS; s++) {
      int K = slab_k(s, C);
      if (dU)
        ser_gemm(0, 1, OC, K, t1 - t0, 1.0f, Z + s * g->mps, g->VS, V + s * g->vps, g->VS, 1.0f, dU + s * us, 2 * C);
      if (din_b) /* all 16 * ng columns: Z is zero past t1, so dV is too */
        ser_gemm_packed(Up ? Up[s] : NULL, 1, 0, K, 16 * ng, OC, 1.0f, U + s * us, 2 * C, Z + s * g->mps, g->VS,
                        0.0f, V + s * g->vps, g->VS);
    }
    if (din_b) {
      /* input_adjoint adds into samples [8 t0 - 4, 8 t0 + 128 ng + 124): below `zeroed` (the
       * previous block's reach, which covers 8 t0 - 4) they hold sums already */
      long reach = 8L * t0 + 128L * ng + 124;
      if (reach > g->W) reach = g->W;
      for (int c = 0; c < C; c++) {
        if (reach > zeroed) memset(din_b + (size_t)c * g->W + zeroed, 0, sizeof(float) * (size_t)(reach - zeroed));
        input_adjoint(din_b + (size_t)c * g->W, V, c, g, t0, ng);
      }
      if (reach > zeroed) zeroed = reach;
    }
  }
  if (din_b && zeroed < g->W) /* samples no tile reaches (none for a whole row of tiles; kept for safety) */
    for (int c = 0; c < C; c++) memset(din_b + (size_t)c * g->W + zeroed, 0, sizeof(float) * (size_t)(g->W - zeroed));
}

int ser_conv1d_k9s2_winograd_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                                      const float *weight, int B, int C, int W, int OC, int din_overwrite) {
  if (B <= 0 || W <= 0 || (!din && !dweight && !dbias)) return 0;
  if (OC <= 0 || C <= 0) {
    if (din && din_overwrite) memset(din, 0, sizeof(float) * (size_t)B * C * W);
    return 0;
  }
  geom1 g;
  geom_init(&g, B, C, W, OC, 16);
  geom_init(&g, B, C, W, OC, block_tiles(C, OC, g.T));
  size_t us = (size_t)OC * 2 * C, un = NS * us, nu = din ? un : 0, nbias = dbias ? (size_t)B * OC : 0;
  /* the calling thread's scratch: U (din) and then the bias sums of each image [B][OC] (dbias) */
  float *U = NULL, *bsum = NULL;
  const char *Up[NS];
  if (din || dbias) {
    U = ser_scratch(SER_SCRATCH_WINO_U, sizeof(float) * (nu + nbias));
    if (!U) return scratch_failed(sizeof(float) * (nu + nbias));
    bsum = dbias ? U + nu : NULL;
    if (bsum) memset(bsum, 0, sizeof(float) * nbias);
  }
  if (din) {
    transform_weight(U, weight, OC, C);
    pack_weights(Up, U, 1, OC, C);
  }
  int nt = omp_get_max_threads();
  if (!(nt > 1 && B >= nt && !omp_in_parallel())) nt = 1; /* otherwise image by image, threaded GEMMs */
  float *part[nt];
  memset(part, 0, sizeof part);
  size_t bytes = sizeof(float) * NS * (g.vps + g.mps);
  int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(| : failed)
  {
    int t = omp_get_thread_num();
    float *V = ser_scratch(SER_SCRATCH_WINO, bytes);
    float *dU = dweight ? ser_scratch(SER_SCRATCH_PARTIAL, sizeof(float) * un) : NULL;
    if (!V || (dweight && !dU)) failed = 1;
    if (dU) memset(dU, 0, sizeof(float) * un);
    part[t] = dU;
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++) {
      if (!V || (dweight && !dU)) continue;
      backward_image(din ? din + (size_t)b * C * W : NULL, dU, bsum ? bsum + (size_t)b * OC : NULL,
                     dout + (size_t)b * OC * g.OW, in + (size_t)b * C * W, U, din ? Up : NULL, V, V + NS * g.vps,
                     &g, din_overwrite);
    }
  }
  if (failed) return scratch_failed(bytes + (dweight ? sizeof(float) * un : 0));
  if (dbias) /* images in order: the same sums whatever the thread count */
    for (int b = 0; b < B; b++)
      for (int oc = 0; oc < OC; oc++) dbias[oc] += bsum[(size_t)b * OC + oc];
  if (!dweight) return 0;
  /* partial sums in thread order (deterministic for a thread count), then dW += G^T dU */
  float *dU = part[0];
  for (int t = 1; t < nt; t++)
    for (size_t i = 0; i < un; i++) dU[i] += part[t][i];
#pragma omp parallel for schedule(static) if ((double)OC * C > 8192 && omp_get_max_threads() > 1 && !omp_in_parallel())
  for (int oc = 0; oc < OC; oc++)
    for (int c = 0; c < C; c++) {
      float *dw = dweight + ((size_t)oc * C + c) * 9;
      const float *de = dU + (size_t)oc * 2 * C + c, *dd = de + C;
      for (int k = 0; k < 5; k++) {
        float sum = 0.0f;
        for (int p = 0; p < NE; p++) sum += GE[p][k] * de[p * us];
        dw[2 * k] += sum;
      }
      for (int k = 0; k < 4; k++) {
        float sum = 0.0f;
        for (int p = 0; p < NO; p++) sum += GO[p][k] * dd[odd_slab(p) * us];
        dw[2 * k + 1] += sum;
      }
    }
  return 0;
}
