#include "pool.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/cpu.h"
#include "../core/error.h"

int ser_pool_geom_init(ser_pool_geom *g, const char *op) {
  if (g->KH < 1 || g->KW < 1)
    return ser_error(SER_EINVAL, "%s: kernel size must be >= 1, got %dx%d", op, g->KH, g->KW);
  if (g->sh < 1 || g->sw < 1) return ser_error(SER_EINVAL, "%s: stride must be >= 1, got %dx%d", op, g->sh, g->sw);
  if (g->ph < 0 || g->pw < 0 || g->ph > g->KH / 2 || g->pw > g->KW / 2)
    return ser_error(SER_EINVAL, "%s: padding must be in [0, kernel/2], got %dx%d for kernel %dx%d", op, g->ph,
                     g->pw, g->KH, g->KW);
  if (g->H + 2 * g->ph < g->KH || g->W + 2 * g->pw < g->KW)
    return ser_error(SER_EINVAL, "%s: window %dx%d does not fit the input %dx%d with padding %dx%d", op, g->KH,
                     g->KW, g->H, g->W, g->ph, g->pw);
  g->OH = (g->H + 2 * g->ph - g->KH) / g->sh + 1;
  g->OW = (g->W + 2 * g->pw - g->KW) / g->sw + 1;
  return 0;
}

#define PAR_IF(n) if ((double)(n) > 32768)

/* ---- MaxPool2d(2): 2x2 windows, stride 2, no padding ----------------------
 * The models' case gets kernels without the general loop's bounds and
 * branches: a first-wins max of four in the order (0,0), (0,1), (1,0), (1,1),
 * a NaN winning over a number and the first NaN staying. Rows and columns
 * beyond 2*OH, 2*OW (odd sizes) are in no window. The vector kernels exist
 * because on random data the scalar comparisons are unpredictable branches
 * (~7% of a CRNN step on a CPU without AVX-512); masks do not care. */

static int isa_choice = -1; /* SER_POOL_*; -1 until first use: the widest the CPU runs */

int ser_pool_best_isa(void) {
  static int cached = -1;
  if (cached < 0) {
    cached = ser_cpu_has(SER_CPU_AVX512F) ? SER_POOL_AVX512
             : ser_cpu_has(SER_CPU_AVX2)  ? SER_POOL_AVX2
                                          : SER_POOL_SCALAR;
  }
  return cached;
}

static int pool_isa(void) {
  if (isa_choice < 0) isa_choice = ser_pool_best_isa();
  return isa_choice;
}

int ser_pool_set_isa(int isa) {
  int prev = pool_isa(), best = ser_pool_best_isa();
  isa_choice = isa < SER_POOL_SCALAR ? SER_POOL_SCALAR : isa > best ? best : isa;
  return prev;
}

static int is_2x2(const ser_pool_geom *g) {
  return g->KH == 2 && g->KW == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0;
}

/* One window, columns c, c+1 of rows r0, r1 (flat index of r0[c]: i): the
 * scalar rule the vector kernels reproduce, and their tail. */
static inline void window_2x2(float *y, int32_t *ix, const float *r0, const float *r1, int c, int i, int W) {
  float m = r0[c], v;
  int at = i;
  v = r0[c + 1];
  if (v > m || (v != v && m == m)) m = v, at = i + 1;
  v = r1[c];
  if (v > m || (v != v && m == m)) m = v, at = i + W;
  v = r1[c + 1];
  if (v > m || (v != v && m == m)) m = v, at = i + W + 1;
  *y = m;
  *ix = at;
}

static void maxpool_2x2(float *out, int32_t *idx, const float *in, const ser_pool_geom *g) {
  int planes = g->B * g->C, W = g->W, OW = g->OW;
#pragma omp parallel for schedule(static) PAR_IF((double)planes * g->H * g->W)
  for (int p = 0; p < planes; p++) {
    const float *x = in + (size_t)p * g->H * W;
    float *y = out + (size_t)p * g->OH * OW;
    int32_t *ix = idx + (size_t)p * g->OH * OW;
    for (int oh = 0; oh < g->OH; oh++) {
      const float *r0 = x + (size_t)2 * oh * W;
      for (int ow = 0; ow < OW; ow++)
        window_2x2(y + oh * OW + ow, ix + oh * OW + ow, r0, r0 + W, 2 * ow, 2 * oh * W + 2 * ow, W);
    }
  }
}

/* AVX-512, 16 windows at a time. */
__attribute__((target("avx512f"))) static void maxpool_2x2_avx512(float *out, int32_t *idx, const float *in,
                                                                 const ser_pool_geom *g) {
  int planes = g->B * g->C, W = g->W, OW = g->OW;
  int OW16 = OW & ~15;
#pragma omp parallel for schedule(static) PAR_IF((double)planes * g->H * g->W)
  for (int p = 0; p < planes; p++) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const float *x = in + (size_t)p * g->H * W;
    float *y = out + (size_t)p * g->OH * OW;
    int32_t *ix = idx + (size_t)p * g->OH * OW;
    for (int oh = 0; oh < g->OH; oh++) {
      const float *r0 = x + (size_t)2 * oh * W, *r1 = r0 + W;
      int base = 2 * oh * W;
      for (int ow = 0; ow < OW16; ow += 16) {
        int c = 2 * ow;
        __m512 lo0 = _mm512_loadu_ps(r0 + c), hi0 = _mm512_loadu_ps(r0 + c + 16);
        __m512 lo1 = _mm512_loadu_ps(r1 + c), hi1 = _mm512_loadu_ps(r1 + c + 16);
        __m512 cand[3] = {_mm512_permutex2var_ps(lo0, odd, hi0), _mm512_permutex2var_ps(lo1, even, hi1),
                          _mm512_permutex2var_ps(lo1, odd, hi1)};
        __m512 m = _mm512_permutex2var_ps(lo0, even, hi0);
        __m512i i0 = _mm512_add_epi32(_mm512_set1_epi32(base + c), _mm512_slli_epi32(
                                          _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 1));
        __m512i at = i0;
        const int off[3] = {1, W, W + 1};
        for (int k = 0; k < 3; k++) {
          __mmask16 take = _mm512_cmp_ps_mask(cand[k], m, _CMP_GT_OQ) |
                           (_mm512_cmp_ps_mask(cand[k], cand[k], _CMP_UNORD_Q) & _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q));
          m = _mm512_mask_blend_ps(take, m, cand[k]);
          at = _mm512_mask_blend_epi32(take, at, _mm512_add_epi32(i0, _mm512_set1_epi32(off[k])));
        }
        _mm512_storeu_ps(y + oh * OW + ow, m);
        _mm512_storeu_si512((void *)(ix + oh * OW + ow), at);
      }
      for (int ow = OW16; ow < OW; ow++)
        window_2x2(y + oh * OW + ow, ix + oh * OW + ow, r0, r1, 2 * ow, base + 2 * ow, W);
    }
  }
}

/* Columns of the even elements of 16 floats as _mm256_shuffle_ps leaves them
 * in a deinterleave: it works within 128-bit lanes, so 8 windows come out in
 * the order 0,1,4,5,2,3,6,7. */
#define LANE_COLS 0, 2, 8, 10, 4, 6, 12, 14
#define UNLANE _MM_SHUFFLE(3, 1, 2, 0) /* 64-bit chunks 0,2,1,3: that order <-> 0..7 (its own inverse) */

/* Windows ow..ow+7 of one output row (r0, r1: its two input rows; i: flat
 * index of r0[0]). The comparisons run in the shuffled order (the indices are
 * built in it too), and only the results are put back in order: one permute
 * for each of max and index instead of one per candidate. */
__attribute__((target("avx2"))) static inline void max8_avx2(float *y, int32_t *ix, const float *r0, const float *r1,
                                                             int ow, int i, int W) {
  int c = 2 * ow;
  __m256 a0 = _mm256_loadu_ps(r0 + c), b0 = _mm256_loadu_ps(r0 + c + 8);
  __m256 a1 = _mm256_loadu_ps(r1 + c), b1 = _mm256_loadu_ps(r1 + c + 8);
  __m256 m = _mm256_shuffle_ps(a0, b0, _MM_SHUFFLE(2, 0, 2, 0));
  __m256 cand[3] = {_mm256_shuffle_ps(a0, b0, _MM_SHUFFLE(3, 1, 3, 1)),
                    _mm256_shuffle_ps(a1, b1, _MM_SHUFFLE(2, 0, 2, 0)),
                    _mm256_shuffle_ps(a1, b1, _MM_SHUFFLE(3, 1, 3, 1))};
  __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32(i + c), _mm256_setr_epi32(LANE_COLS)), at = i0;
  const int off[3] = {1, W, W + 1};
  for (int k = 0; k < 3; k++) {
    /* !(cand <= m) is cand > m or either one NaN; m == m then keeps a NaN max */
    __m256 take = _mm256_and_ps(_mm256_cmp_ps(cand[k], m, _CMP_NLE_UQ), _mm256_cmp_ps(m, m, _CMP_ORD_Q));
    m = _mm256_blendv_ps(m, cand[k], take);
    __m256 ik = _mm256_castsi256_ps(_mm256_add_epi32(i0, _mm256_set1_epi32(off[k])));
    at = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(at), ik, take));
  }
  _mm256_storeu_ps(y + ow, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), UNLANE)));
  _mm256_storeu_si256((__m256i *)(ix + ow), _mm256_permute4x64_epi64(at, UNLANE));
}

/* AVX2, 8 windows at a time. A row's last OW % 8 windows are one more step
 * over the last 8 (those before them are recomputed to the same results):
 * left to the scalar loop they cost 3x the vector part at OW = 31 (CRNN's
 * last pooling). Only rows narrower than 8 windows go scalar. */
__attribute__((target("avx2"))) static void maxpool_2x2_avx2(float *out, int32_t *idx, const float *in,
                                                             const ser_pool_geom *g) {
  int planes = g->B * g->C, W = g->W, OW = g->OW;
#pragma omp parallel for schedule(static) PAR_IF((double)planes * g->H * g->W)
  for (int p = 0; p < planes; p++) {
    const float *x = in + (size_t)p * g->H * W;
    for (int oh = 0; oh < g->OH; oh++) {
      const float *r0 = x + (size_t)2 * oh * W, *r1 = r0 + W;
      float *y = out + ((size_t)p * g->OH + oh) * OW;
      int32_t *ix = idx + ((size_t)p * g->OH + oh) * OW;
      int base = 2 * oh * W, ow = 0;
      for (; ow + 8 <= OW; ow += 8) max8_avx2(y, ix, r0, r1, ow, base, W);
      if (ow < OW && OW >= 8) max8_avx2(y, ix, r0, r1, OW - 8, base, W);
      else
        for (; ow < OW; ow++) window_2x2(y + ow, ix + ow, r0, r1, 2 * ow, base + 2 * ow, W);
    }
  }
}

void ser_maxpool2d_forward(float *out, int32_t *idx, const float *in, const ser_pool_geom *g) {
  if (is_2x2(g)) {
    int isa = pool_isa();
    if (isa == SER_POOL_AVX512)
      maxpool_2x2_avx512(out, idx, in, g);
    else if (isa == SER_POOL_AVX2)
      maxpool_2x2_avx2(out, idx, in, g);
    else
      maxpool_2x2(out, idx, in, g);
    return;
  }
  int planes = g->B * g->C;
#pragma omp parallel for schedule(static) PAR_IF((double)planes * g->H * g->W)
  for (int p = 0; p < planes; p++) {
    const float *x = in + (size_t)p * g->H * g->W;
    float *y = out + (size_t)p * g->OH * g->OW;
    int32_t *ix = idx + (size_t)p * g->OH * g->OW;
    for (int oh = 0; oh < g->OH; oh++) {
      int h0 = oh * g->sh - g->ph, h1 = h0 + g->KH;
      if (h0 < 0) h0 = 0;
      if (h1 > g->H) h1 = g->H;
      for (int ow = 0; ow < g->OW; ow++) {
        int w0 = ow * g->sw - g->pw, w1 = w0 + g->KW;
        if (w0 < 0) w0 = 0;
        if (w1 > g->W) w1 = g->W;
        float best = -INFINITY;
        int at = h0 * g->W + w0;
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) {
            float v = x[h * g->W + w];
            /* NaN wins and stays (PyTorch propagates it) */
            if (v > best || isnan(v)) {
              best = v;
              at = h * g->W + w;
              if (isnan(v)) goto found;
            }
          }
      found:
        y[oh * g->OW + ow] = best;
        ix[oh * g->OW + ow] = at;
      }
    }
  }
}

static inline __mmask16 mask_of(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* 2x2 stride-2 windows do not overlap, so each input element receives at most
 * one output's gradient: rows of din are written (or added to) 32 at a time
 * from 16 outputs, a lane taking dout where the stored argmax names it, zero
 * elsewhere, instead of a scalar scatter after a zero fill. */
__attribute__((target("avx512f"))) static void maxpool_2x2_backward_avx512(float *din, const float *dout,
                                                                          const int32_t *idx, const ser_pool_geom *g,
                                                                          int overwrite) {
  int planes = g->B * g->C, W = g->W, H = g->H, OW = g->OW, OH = g->OH;
#pragma omp parallel for schedule(static) PAR_IF((double)planes * H * W)
  for (int p = 0; p < planes; p++) {
    const __m512i ilo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i ihi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const __m512i two = _mm512_slli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 1);
    float *dx = din + (size_t)p * H * W;
    const float *dy = dout + (size_t)p * OH * OW;
    const int32_t *ix = idx + (size_t)p * OH * OW;
    for (int oh = 0; oh < OH; oh++) {
      int base = 2 * oh * W;
      float *rows[2] = {dx + base, dx + base + W};
      for (int ow = 0; ow < OW; ow += 16) {
        int n = OW - ow < 16 ? OW - ow : 16;
        __mmask16 m = mask_of(n), mlo = mask_of(2 * n), mhi = mask_of(2 * n - 16);
        __m512 v = _mm512_maskz_loadu_ps(m, dy + oh * OW + ow);
        __m512i at = _mm512_maskz_loadu_epi32(m, ix + oh * OW + ow);
        __m512i i0 = _mm512_add_epi32(_mm512_set1_epi32(base + 2 * ow), two);
        for (int r = 0; r < 2; r++) {
          __m512i ir = _mm512_add_epi32(i0, _mm512_set1_epi32(r * W));
          __m512 e0 = _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(m, at, ir), v);
          __m512 e1 = _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(m, at, _mm512_add_epi32(ir, _mm512_set1_epi32(1))), v);
          __m512 lo = _mm512_permutex2var_ps(e0, ilo, e1), hi = _mm512_permutex2var_ps(e0, ihi, e1);
          float *d = rows[r] + 2 * ow;
          if (!overwrite) {
            lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(mlo, d));
            hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(mhi, d + 16));
          }
          _mm512_mask_storeu_ps(d, mlo, lo);
          _mm512_mask_storeu_ps(d + 16, mhi, hi);
        }
      }
      if (overwrite && W > 2 * OW) /* an odd width's last column is in no window */
        for (int r = 0; r < 2; r++) memset(rows[r] + 2 * OW, 0, sizeof(float) * (W - 2 * OW));
    }
    if (overwrite && H > 2 * OH) memset(dx + (size_t)2 * OH * W, 0, sizeof(float) * (size_t)(H - 2 * OH) * W);
  }
}

/* overwrite: din is uninitialised (a fresh autograd buffer) and is written, not added to. */
static void maxpool2d_backward(float *din, const float *dout, const int32_t *idx, const ser_pool_geom *g,
                               int overwrite) {
  /* No AVX2 form: unlike the forward this loop has no unpredictable branches
   * and is bound by memory traffic. An AVX2 port of the AVX-512 kernel
   * measured 1.05-1.08x written and 0.9-1.1x added at the CRNN's shapes,
   * inside the noise of this loop timed against itself (0.96-1.08x). */
  if (is_2x2(g) && pool_isa() == SER_POOL_AVX512) {
    maxpool_2x2_backward_avx512(din, dout, idx, g, overwrite);
    return;
  }
  int planes = g->B * g->C, n = g->OH * g->OW;
#pragma omp parallel for schedule(static) PAR_IF((double)planes * n)
  for (int p = 0; p < planes; p++) {
    float *dx = din + (size_t)p * g->H * g->W;
    const float *dy = dout + (size_t)p * n;
    const int32_t *ix = idx + (size_t)p * n;
    if (overwrite) memset(dx, 0, sizeof(float) * (size_t)g->H * g->W);
    for (int i = 0; i < n; i++) dx[ix[i]] += dy[i];
  }
}

void ser_maxpool2d_backward(float *din, const float *dout, const int32_t *idx, const ser_pool_geom *g) {
  maxpool2d_backward(din, dout, idx, g, 0);
}

void ser_maxpool2d_backward_overwrite(float *din, const float *dout, const int32_t *idx, const ser_pool_geom *g) {
  maxpool2d_backward(din, dout, idx, g, 1);
}

void ser_avgpool2d_forward(float *out, const float *in, const ser_pool_geom *g) {
  int planes = g->B * g->C;
  float inv = 1.0f / (float)(g->KH * g->KW);
#pragma omp parallel for schedule(static) PAR_IF((double)planes * g->H * g->W)
  for (int p = 0; p < planes; p++) {
    const float *x = in + (size_t)p * g->H * g->W;
    float *y = out + (size_t)p * g->OH * g->OW;
    for (int oh = 0; oh < g->OH; oh++) {
      int h0 = oh * g->sh - g->ph, h1 = h0 + g->KH;
      if (h0 < 0) h0 = 0;
      if (h1 > g->H) h1 = g->H;
      for (int ow = 0; ow < g->OW; ow++) {
        int w0 = ow * g->sw - g->pw, w1 = w0 + g->KW;
        if (w0 < 0) w0 = 0;
        if (w1 > g->W) w1 = g->W;
        float s = 0.0f;
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) s += x[h * g->W + w];
        y[oh * g->OW + ow] = s * inv;
      }
    }
  }
}

void ser_avgpool2d_backward(float *din, const float *dout, const ser_pool_geom *g) {
  int planes = g->B * g->C;
  float inv = 1.0f / (float)(g->KH * g->KW);
#pragma omp parallel for schedule(static) PAR_IF((double)planes * g->H * g->W)
  for (int p = 0; p < planes; p++) {
    float *dx = din + (size_t)p * g->H * g->W;
    const float *dy = dout + (size_t)p * g->OH * g->OW;
    for (int oh = 0; oh < g->OH; oh++) {
      int h0 = oh * g->sh - g->ph, h1 = h0 + g->KH;
      if (h0 < 0) h0 = 0;
      if (h1 > g->H) h1 = g->H;
      for (int ow = 0; ow < g->OW; ow++) {
        int w0 = ow * g->sw - g->pw, w1 = w0 + g->KW;
        if (w0 < 0) w0 = 0;
        if (w1 > g->W) w1 = g->W;
        float d = dy[oh * g->OW + ow] * inv;
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) dx[h * g->W + w] += d;
      }
    }
  }
}

/* PyTorch's adaptive window: [floor(i*n/o), ceil((i+1)*n/o)). */
static int win_start(int i, int n, int o) { return (int)(((int64_t)i * n) / o); }
static int win_end(int i, int n, int o) { return (int)((((int64_t)i + 1) * n + o - 1) / o); }

void ser_adaptive_avgpool2d_forward(float *out, const float *in, int B, int C, int H, int W, int OH, int OW) {
  int planes = B * C;
  if (OH == H && OW == W) {   /* every window one value (CNN2D's bands with time kept): a copy, not a
                                 loop of window bounds and divisions per value (20x slower) */
    memcpy(out, in, sizeof(float) * (size_t)planes * H * W);
    return;
  }
#pragma omp parallel for schedule(static) PAR_IF((double)planes * H * W)
  for (int p = 0; p < planes; p++) {
    const float *x = in + (size_t)p * H * W;
    float *y = out + (size_t)p * OH * OW;
    if (OW == W) {   /* columns kept (frequency pooled, time kept: CNN2D with freq = "mean"): whole
                        rows summed in SIMD lanes, not a window of one column per output value */
      for (int oh = 0; oh < OH; oh++) {
        int h0 = win_start(oh, H, OH), h1 = win_end(oh, H, OH);
        float *yr = y + (size_t)oh * W;
        memcpy(yr, x + (size_t)h0 * W, sizeof(float) * (size_t)W);
        for (int h = h0 + 1; h < h1; h++) {
          const float *r = x + (size_t)h * W;
#pragma omp simd
          for (int w = 0; w < W; w++) yr[w] += r[w];
        }
        const float inv = 1.0f / (float)(h1 - h0);
#pragma omp simd
        for (int w = 0; w < W; w++) yr[w] *= inv;
      }
      continue;
    }
    for (int oh = 0; oh < OH; oh++) {
      int h0 = win_start(oh, H, OH), h1 = win_end(oh, H, OH);
      for (int ow = 0; ow < OW; ow++) {
        int w0 = win_start(ow, W, OW), w1 = win_end(ow, W, OW);
        /* a whole plane in the OH=OW=1 case (4000 values in CNN1D): rows are
         * summed in float SIMD lanes, rows added in double */
        double s = 0.0;
        for (int h = h0; h < h1; h++) {
          const float *r = x + (size_t)h * W;
          float rs = 0.0f;
#pragma omp simd reduction(+ : rs)
          for (int w = w0; w < w1; w++) rs += r[w];
          s += rs;
        }
        y[oh * OW + ow] = (float)(s / ((double)(h1 - h0) * (w1 - w0)));
      }
    }
  }
}

/* overwrite: din holds garbage (a fresh autograd buffer); each plane is zeroed
 * just before its windows add into it, while it is in cache, instead of the
 * engine zeroing the whole gradient in a pass of its own first (33 MB after
 * CNN1D's last layer: 2.3% of an amp step, and the adds then read the zeros
 * back from memory). */
static void adaptive_avgpool_backward(float *din, const float *dout, int B, int C, int H, int W, int OH, int OW,
                                      int overwrite) {
  int planes = B * C;
  if (OH == H && OW == W) {   /* the identity's gradient, as in the forward */
    const size_t n = (size_t)planes * H * W;
    if (overwrite) {
      memcpy(din, dout, sizeof(float) * n);
    } else {
#pragma omp parallel for simd schedule(static) PAR_IF((double)n)
      for (size_t i = 0; i < n; i++) din[i] += dout[i];
    }
    return;
  }
#pragma omp parallel for schedule(static) PAR_IF((double)planes * H * W)
  for (int p = 0; p < planes; p++) {
    float *dx = din + (size_t)p * H * W;
    const float *dy = dout + (size_t)p * OH * OW;
    if (overwrite) memset(dx, 0, sizeof(float) * (size_t)H * W);
    if (OW == W) {   /* columns kept: each output row's gradient added to its window's rows */
      for (int oh = 0; oh < OH; oh++) {
        int h0 = win_start(oh, H, OH), h1 = win_end(oh, H, OH);
        const float *dr = dy + (size_t)oh * W;
        const float inv = 1.0f / (float)(h1 - h0);
        for (int h = h0; h < h1; h++) {
          float *r = dx + (size_t)h * W;
#pragma omp simd
          for (int w = 0; w < W; w++) r[w] += dr[w] * inv;
        }
      }
      continue;
    }
    for (int oh = 0; oh < OH; oh++) {
      int h0 = win_start(oh, H, OH), h1 = win_end(oh, H, OH);
      for (int ow = 0; ow < OW; ow++) {
        int w0 = win_start(ow, W, OW), w1 = win_end(ow, W, OW);
        float d = dy[oh * OW + ow] / (float)((h1 - h0) * (w1 - w0));
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) dx[h * W + w] += d;
      }
    }
  }
}

void ser_adaptive_avgpool2d_backward(float *din, const float *dout, int B, int C, int H, int W, int OH, int OW) {
  adaptive_avgpool_backward(din, dout, B, C, H, W, OH, OW, 0);
}

/* ---- autograd ops ------------------------------------------------------ */

typedef struct idx_ctx {
  size_t bytes;
  int32_t idx[];
} idx_ctx;

static void idx_ctx_free(void *p) {
  if (p) ser_free(p, ((idx_ctx *)p)->bytes);
}

/* Reads x's shape into a geometry (1-d: H = KH = 1); checks rank and sizes. */
static int pool_geom(ser_pool_geom *g, const ser_tensor *x, const int64_t *arg, int is1d, const char *op) {
  int nd = is1d ? 3 : 4;
  if (x->ndim != nd)
    return ser_error(SER_EINVAL, "%s: input must be %dD %s, got %s", op, nd, is1d ? "[B,C,L]" : "[B,C,H,W]",
                     SER_SHAPE(x));
  for (int i = 0; i < nd; i++)
    if (x->shape[i] > 0x3fffffff) return ser_error(SER_EINVAL, "%s: input %s is too large", op, SER_SHAPE(x));
  if ((double)x->shape[0] * x->shape[1] * x->shape[2] * (is1d ? 1 : x->shape[3]) > 2147483647.0)
    return ser_error(SER_EINVAL, "%s: input %s is too large (2^31 elements at most)", op, SER_SHAPE(x));
  g->B = (int)x->shape[0], g->C = (int)x->shape[1];
  if (is1d) {
    g->H = 1, g->W = (int)x->shape[2], g->KH = 1, g->sh = 1, g->ph = 0;
    g->KW = (int)arg[0], g->sw = (int)(arg[2] ? arg[2] : arg[0]), g->pw = (int)arg[4];
  } else {
    g->H = (int)x->shape[2], g->W = (int)x->shape[3];
    g->KH = (int)arg[0], g->KW = (int)arg[1];
    g->sh = (int)(arg[2] ? arg[2] : arg[0]), g->sw = (int)(arg[3] ? arg[3] : arg[1]);
    g->ph = (int)arg[4], g->pw = (int)arg[5];
  }
  int rc = ser_pool_geom_init(g, op);
  if (rc) { /* append the shape; the message buffer cannot be its own argument */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ser_errmsg());
    return ser_error(rc, "%s; input %s", msg, SER_SHAPE(x));
  }
  return 0;
}

static void opts_args(int64_t *arg, const ser_pool_opts *o) {
  arg[0] = o->kernel[0], arg[1] = o->kernel[1], arg[2] = o->stride[0], arg[3] = o->stride[1];
  arg[4] = o->padding[0], arg[5] = o->padding[1];
}

static int out_tensor(ser_tensor **y, const ser_pool_geom *g, int is1d) {
  *y = is1d ? ser_tensor_empty(3, SER_DIMS(g->B, g->C, g->OW)) : ser_tensor_empty(4, SER_DIMS(g->B, g->C, g->OH, g->OW));
  return *y ? 0 : SER_ENOMEM;
}

static int max_pool(ser_tensor **out, ser_tensor **indices, ser_tensor *x, const ser_pool_opts *o, int is1d) {
  const char *op = is1d ? "max_pool1d" : "max_pool2d";
  *out = NULL;
  if (indices) *indices = NULL;
  if (!x || !o) return ser_error(SER_EINVAL, "%s: input and options are required", op);
  int64_t arg[6];
  opts_args(arg, o);
  ser_pool_geom g;
  int rc = pool_geom(&g, x, arg, is1d, op);
  if (rc) return rc;
  size_t n = (size_t)g.B * g.C * g.OH * g.OW;
  idx_ctx *ctx = ser_alloc(sizeof(idx_ctx) + n * sizeof(int32_t));
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *y = NULL;
  if (!ctx || !xc || out_tensor(&y, &g, is1d)) {
    rc = SER_ENOMEM;
    goto fail;
  }
  ctx->bytes = sizeof(idx_ctx) + n * sizeof(int32_t);
  ser_maxpool2d_forward(ser_tensor_data(y), ctx->idx, ser_tensor_data(xc), &g);
  if (indices) {
    *indices = ser_tensor_empty(y->ndim, y->shape);
    if (!*indices) {
      rc = SER_ENOMEM;
      goto fail;
    }
    float *d = ser_tensor_data(*indices);
    for (size_t i = 0; i < n; i++) d[i] = (float)ctx->idx[i];
  }
  ser_node *node = NULL;
  rc = ser_autograd_record(y, SER_OP_MAX_POOL, 1, &x, &node);
  if (rc) goto fail;
  if (node) {
    for (int i = 0; i < 6; i++) node->iarg[i] = arg[i];
    node->iarg[6] = is1d;
    node->ctx = ctx;
    node->ctx_free = idx_ctx_free;
    ctx = NULL;
  }
  idx_ctx_free(ctx);
  ser_tensor_release(xc);
  *out = y;
  return 0;
fail:
  idx_ctx_free(ctx);
  ser_tensor_release(xc);
  ser_tensor_release(y);
  if (indices) {
    ser_tensor_release(*indices);
    *indices = NULL;
  }
  return rc;
}

int ser_max_pool2d(ser_tensor **out, ser_tensor **indices, ser_tensor *x, const ser_pool_opts *o) {
  return max_pool(out, indices, x, o, 0);
}
int ser_max_pool1d(ser_tensor **out, ser_tensor **indices, ser_tensor *x, const ser_pool_opts *o) {
  return max_pool(out, indices, x, o, 1);
}

int ser_max_pool_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (!gin[0]) return 0;
  ser_pool_geom g;
  int rc = pool_geom(&g, node->inputs[0], node->iarg, (int)node->iarg[6], "max_pool backward");
  if (rc) return rc;
  maxpool2d_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout), ((idx_ctx *)node->ctx)->idx, &g,
                     (node->gin_fresh & 1u) != 0);
  return 0;
}

static int avg_pool(ser_tensor **out, ser_tensor *x, const ser_pool_opts *o, int is1d) {
  const char *op = is1d ? "avg_pool1d" : "avg_pool2d";
  *out = NULL;
  if (!x || !o) return ser_error(SER_EINVAL, "%s: input and options are required", op);
  int64_t arg[6];
  opts_args(arg, o);
  ser_pool_geom g;
  int rc = pool_geom(&g, x, arg, is1d, op);
  if (rc) return rc;
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *y = NULL;
  if (!xc || out_tensor(&y, &g, is1d)) {
    ser_tensor_release(xc);
    return SER_ENOMEM;
  }
  ser_avgpool2d_forward(ser_tensor_data(y), ser_tensor_data(xc), &g);
  ser_tensor_release(xc);
  ser_node *node = NULL;
  rc = ser_autograd_record(y, SER_OP_AVG_POOL, 1, &x, &node);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  if (node) {
    for (int i = 0; i < 6; i++) node->iarg[i] = arg[i];
    node->iarg[6] = is1d;
  }
  *out = y;
  return 0;
}

int ser_avg_pool2d(ser_tensor **out, ser_tensor *x, const ser_pool_opts *o) { return avg_pool(out, x, o, 0); }
int ser_avg_pool1d(ser_tensor **out, ser_tensor *x, const ser_pool_opts *o) { return avg_pool(out, x, o, 1); }

int ser_avg_pool_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (!gin[0]) return 0;
  ser_pool_geom g;
  int rc = pool_geom(&g, node->inputs[0], node->iarg, (int)node->iarg[6], "avg_pool backward");
  if (rc) return rc;
  ser_avgpool2d_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout), &g);
  return 0;
}

static int adaptive(ser_tensor **out, ser_tensor *x, int oh, int ow, int is1d) {
  const char *op = is1d ? "adaptive_avg_pool1d" : "adaptive_avg_pool2d";
  int nd = is1d ? 3 : 4;
  *out = NULL;
  if (!x) return ser_error(SER_EINVAL, "%s: input is required", op);
  if (x->ndim != nd)
    return ser_error(SER_EINVAL, "%s: input must be %dD %s, got %s", op, nd, is1d ? "[B,C,L]" : "[B,C,H,W]",
                     SER_SHAPE(x));
  if (oh < 1 || ow < 1)
    return is1d ? ser_error(SER_EINVAL, "%s: output size must be >= 1, got %d", op, ow)
                : ser_error(SER_EINVAL, "%s: output size must be >= 1, got %dx%d", op, oh, ow);
  int64_t H = is1d ? 1 : x->shape[2], W = x->shape[nd - 1];
  if (H < 1 || W < 1) return ser_error(SER_EINVAL, "%s: empty input %s", op, SER_SHAPE(x));
  if ((double)x->shape[0] * x->shape[1] * H * W > 2147483647.0)
    return ser_error(SER_EINVAL, "%s: input %s is too large (2^31 elements at most)", op, SER_SHAPE(x));
  ser_tensor *xc = ser_tensor_contiguous_raw(x);
  ser_tensor *y = is1d ? ser_tensor_empty(3, SER_DIMS(x->shape[0], x->shape[1], ow))
                       : ser_tensor_empty(4, SER_DIMS(x->shape[0], x->shape[1], oh, ow));
  if (!xc || !y) {
    ser_tensor_release(xc);
    ser_tensor_release(y);
    return SER_ENOMEM;
  }
  ser_adaptive_avgpool2d_forward(ser_tensor_data(y), ser_tensor_data(xc), (int)x->shape[0], (int)x->shape[1], (int)H,
                                 (int)W, oh, ow);
  ser_tensor_release(xc);
  ser_node *node = NULL;
  int rc = ser_autograd_record(y, SER_OP_ADAPTIVE_AVG_POOL, 1, &x, &node);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

int ser_adaptive_avg_pool2d(ser_tensor **out, ser_tensor *x, int oh, int ow) { return adaptive(out, x, oh, ow, 0); }
int ser_adaptive_avg_pool1d(ser_tensor **out, ser_tensor *x, int ol) { return adaptive(out, x, 1, ol, 1); }

int ser_adaptive_avg_pool_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (!gin[0]) return 0;
  const ser_tensor *x = node->inputs[0];
  int is1d = x->ndim == 3;
  int H = is1d ? 1 : (int)x->shape[2], W = (int)x->shape[x->ndim - 1];
  int OH = is1d ? 1 : (int)gout->shape[2], OW = (int)gout->shape[gout->ndim - 1];
  adaptive_avgpool_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout), (int)x->shape[0], (int)x->shape[1], H, W,
                            OH, OW, (node->gin_fresh & 1u) != 0);
  return 0;
}
