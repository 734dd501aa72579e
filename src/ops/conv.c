#include "conv.h"

#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/cpu.h"
#include "../core/error.h"
#include "conv1d_c1.h"
#include "gemm.h"
#include "scratch.h"
#include "winograd.h"
#include "winograd1d.h"

int ser_conv_geom_init(ser_conv_geom *g, const char *op) {
  if (g->KH < 1 || g->KW < 1)
    return ser_error(SER_EINVAL, "%s: kernel size must be >= 1, got %dx%d", op, g->KH, g->KW);
  if (g->B < 0 || g->C < 0 || g->H < 0 || g->W < 0 || g->OC < 0)
    return ser_error(SER_EINVAL, "%s: negative dimension in input %dx%dx%dx%d or %d output channels", op, g->B, g->C,
                     g->H, g->W, g->OC);
  if (g->sh < 1 || g->sw < 1)
    return ser_error(SER_EINVAL, "%s: stride must be >= 1, got %dx%d", op, g->sh, g->sw);
  if (g->ph < 0 || g->pw < 0)
    return ser_error(SER_EINVAL, "%s: padding must be >= 0, got %dx%d", op, g->ph, g->pw);
  if (g->dh < 1 || g->dw < 1)
    return ser_error(SER_EINVAL, "%s: dilation must be >= 1, got %dx%d", op, g->dh, g->dw);
  long eh = (long)g->dh * (g->KH - 1) + 1, ew = (long)g->dw * (g->KW - 1) + 1;
  long oh = ((long)g->H + 2L * g->ph - eh) / g->sh + 1, ow = ((long)g->W + 2L * g->pw - ew) / g->sw + 1;
  if ((long)g->H + 2L * g->ph < eh || (long)g->W + 2L * g->pw < ew || oh < 1 || ow < 1)
    return ser_error(SER_EINVAL,
                     "%s: kernel %dx%d (dilation %dx%d, so %ldx%ld) does not fit the input %dx%d with "
                     "padding %dx%d; expected a kernel extent <= input + 2*padding",
                     op, g->KH, g->KW, g->dh, g->dw, eh, ew, g->H, g->W, g->ph, g->pw);
  g->OH = (int)oh;
  g->OW = (int)ow;
  return 0;
}

/* Output columns [lo, hi) whose input position ow*s + off lies in [0, n). */
static void valid_range(int n_out, int n_in, int s, int off, int *lo, int *hi) {
  int a = off >= 0 ? 0 : (-off + s - 1) / s;
  int b = n_in - off <= 0 ? 0 : (n_in - off + s - 1) / s;
  if (b > n_out) b = n_out;
  if (a > b) a = b;
  *lo = a;
  *hi = b;
}

/* Stride-2 rows (CNN1D's convolutions) with AVX-512: the scalar strided
 * loops were 11% (gather) and 5% (scatter-add) of a CNN1D step. The last
 * vector of each block touches element 2i+30 at most, so the upper loads and
 * stores are masked to 15 lanes: nothing past the row is read or written. */
__attribute__((target("avx512f"))) static void gather_s2(float *dst, const float *src, int n) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 a = _mm512_loadu_ps(src + 2 * i), b = _mm512_maskz_loadu_ps(0x7fff, src + 2 * i + 16);
    _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, even, b));
  }
  for (; i < n; i++) dst[i] = src[2 * i];
}

__attribute__((target("avx512f"))) static void scatter_add_s2(float *dst, const float *src, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(src + i);
    __m512 e0 = _mm512_maskz_expand_ps(0x5555, v);                               /* src[i..i+7] to even lanes */
    __m512 e1 = _mm512_maskz_expand_ps(0x5555, _mm512_shuffle_f32x4(v, v, 0xEE)); /* src[i+8..i+15] */
    _mm512_storeu_ps(dst + 2 * i, _mm512_add_ps(_mm512_loadu_ps(dst + 2 * i), e0));
    _mm512_mask_storeu_ps(dst + 2 * i + 16, 0x7fff,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(0x7fff, dst + 2 * i + 16), e1));
  }
  for (; i < n; i++) dst[2 * i] += src[i];
}

static int have_avx512(void) { return ser_cpu_has(SER_CPU_AVX512F); }   /* detected once, in core/cpu.c */

/* The columns of output positions [n0, n1) (flat oh*OW + ow) of one image:
 * col [C*KH*KW, n1-n0] <- img [C,H,W], zero where the kernel hits padding.
 * Working on a range keeps the column block in L2 (see chunk_of below). */
/* im2col for a 1-d stride-2 convolution (CNN1D): the even and odd samples
 * of each channel's stretch are split once, then every kernel tap's row is a
 * plain copy from one of them (tap p = kw - pad reads src[2 ow + p], which is
 * even[ow + p/2] or odd[ow + (p-1)/2]), instead of one strided gather per tap. */
/* Length of each of the even/odd stretches for output positions [n0, n1). */
static int split_len(const ser_conv_geom *g, int nb) {
  int lo = -((g->pw + 1) / 2) - 1, hi = (g->KW - 1 - g->pw) / 2 + 1;
  return nb + hi - lo + 1;
}

/* The per-thread buffer of the two stretches, or NULL (then the strided path runs). */
static float *split_scratch(const ser_conv_geom *g, int nb) {
  return ser_scratch(SER_SCRATCH_SPLIT, sizeof(float) * 2 * (size_t)split_len(g, nb));
}

static int is_1d_s2(const ser_conv_geom *g) {
  return g->H == 1 && g->KH == 1 && g->ph == 0 && g->sw == 2 && g->dw == 1 && have_avx512();
}

static void im2col_1d_s2(float *col, const float *img, const ser_conv_geom *g, int n0, int n1, float *eo) {
  int nb = n1 - n0, W = g->W, KW = g->KW, pw = g->pw;
  int lo = -((pw + 1) / 2) - 1;                              /* lowest tap offset in half-samples, with margin */
  int len = split_len(g, nb), j0 = n0 + lo;                  /* even/odd index j0 + i, i in [0, len) */
  float *ev = eo, *od = eo + len;
  int ne0 = j0 < 0 ? -j0 : 0;                                 /* first i with j >= 0 */
  int ne1 = (W + 1) / 2 - j0, no1 = W / 2 - j0;               /* i past the last even / odd sample */
  if (ne1 > len) ne1 = len;
  if (no1 > len) no1 = len;
  for (int c = 0; c < g->C; c++) {
    const float *src = img + (size_t)c * W;
    memset(eo, 0, sizeof(float) * 2 * len);
    if (ne1 > ne0) gather_s2(ev + ne0, src + 2 * (j0 + ne0), ne1 - ne0);
    if (no1 > ne0) gather_s2(od + ne0, src + 2 * (j0 + ne0) + 1, no1 - ne0);
    for (int kw = 0; kw < KW; kw++) {
      int p = kw - pw;
      /* p odd: p - 1 is even, so (p - 1) / 2 is exact for negative p too */
      const float *from = (p & 1) ? od + (n0 + (p - 1) / 2 - j0) : ev + (n0 + p / 2 - j0);
      memcpy(col + ((size_t)c * KW + kw) * nb, from, sizeof(float) * nb);
    }
  }
}

static void im2col(float *col, const float *img, const ser_conv_geom *g, int n0, int n1) {
  float *eo = is_1d_s2(g) ? split_scratch(g, n1 - n0) : NULL;
  if (eo) {
    im2col_1d_s2(col, img, g, n0, n1, eo);
    return;
  }
  int nb = n1 - n0, oh0 = n0 / g->OW, oh1 = (n1 - 1) / g->OW;
  for (int c = 0; c < g->C; c++)
    for (int kh = 0; kh < g->KH; kh++)
      for (int kw = 0; kw < g->KW; kw++) {
        float *row = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * nb;
        int offw = kw * g->dw - g->pw, lo, hi;
        valid_range(g->OW, g->W, g->sw, offw, &lo, &hi);
        for (int oh = oh0; oh <= oh1; oh++) {
          int a = oh == oh0 ? n0 - oh * g->OW : 0, b = oh == oh1 ? n1 - oh * g->OW : g->OW;
          float *dst = row + (oh * g->OW - n0); /* dst[ow] for ow in [a, b) */
          int ih = oh * g->sh - g->ph + kh * g->dh;
          if (ih < 0 || ih >= g->H) {
            memset(dst + a, 0, sizeof(float) * (b - a));
            continue;
          }
          const float *src = img + ((size_t)c * g->H + ih) * g->W + offw;
          int l = lo > a ? lo : a, h = hi < b ? hi : b;
          if (l > h) l = h = b;
          memset(dst + a, 0, sizeof(float) * (l - a));
          if (g->sw == 1)
            memcpy(dst + l, src + l, sizeof(float) * (h - l));
          else if (g->sw == 2 && have_avx512())
            gather_s2(dst + l, src + (size_t)2 * l, h - l);
          else
            for (int ow = l; ow < h; ow++) dst[ow] = src[(size_t)ow * g->sw];
          memset(dst + h, 0, sizeof(float) * (b - h));
        }
      }
}

/* The adjoint of im2col_1d_s2: each tap's row adds into the even or odd
 * stretch, which are then added back interleaved, once per channel. */
static void col2im_add_1d_s2(float *img, const float *col, const ser_conv_geom *g, int n0, int n1, float *eo) {
  int nb = n1 - n0, W = g->W, KW = g->KW, pw = g->pw;
  int lo = -((pw + 1) / 2) - 1;
  int len = split_len(g, nb), j0 = n0 + lo;
  float *ev = eo, *od = eo + len;
  int ne0 = j0 < 0 ? -j0 : 0;
  int ne1 = (W + 1) / 2 - j0, no1 = W / 2 - j0;
  if (ne1 > len) ne1 = len;
  if (no1 > len) no1 = len;
  for (int c = 0; c < g->C; c++) {
    float *dst = img + (size_t)c * W;
    memset(eo, 0, sizeof(float) * 2 * len);
    for (int kw = 0; kw < KW; kw++) {
      int p = kw - pw;
      float *to = (p & 1) ? od + (n0 + (p - 1) / 2 - j0) : ev + (n0 + p / 2 - j0);
      const float *row = col + ((size_t)c * KW + kw) * nb;
#pragma omp simd
      for (int i = 0; i < nb; i++) to[i] += row[i];
    }
    if (ne1 > ne0) scatter_add_s2(dst + 2 * (j0 + ne0), ev + ne0, ne1 - ne0);
    if (no1 > ne0) scatter_add_s2(dst + 2 * (j0 + ne0) + 1, od + ne0, no1 - ne0);
  }
}

/* img [C,H,W] += the adjoint of im2col for output positions [n0, n1). */
static void col2im_add(float *img, const float *col, const ser_conv_geom *g, int n0, int n1) {
  float *eo = is_1d_s2(g) ? split_scratch(g, n1 - n0) : NULL;
  if (eo) {
    col2im_add_1d_s2(img, col, g, n0, n1, eo);
    return;
  }
  int nb = n1 - n0, oh0 = n0 / g->OW, oh1 = (n1 - 1) / g->OW;
  for (int c = 0; c < g->C; c++)
    for (int kh = 0; kh < g->KH; kh++)
      for (int kw = 0; kw < g->KW; kw++) {
        const float *row = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * nb;
        int offw = kw * g->dw - g->pw, lo, hi;
        valid_range(g->OW, g->W, g->sw, offw, &lo, &hi);
        for (int oh = oh0; oh <= oh1; oh++) {
          int ih = oh * g->sh - g->ph + kh * g->dh;
          if (ih < 0 || ih >= g->H) continue;
          int a = oh == oh0 ? n0 - oh * g->OW : 0, b = oh == oh1 ? n1 - oh * g->OW : g->OW;
          int l = lo > a ? lo : a, h = hi < b ? hi : b;
          const float *s = row + (oh * g->OW - n0);
          float *dst = img + ((size_t)c * g->H + ih) * g->W + offw;
          if (g->sw == 1) {
#pragma omp simd
            for (int ow = l; ow < h; ow++) dst[ow] += s[ow];
          } else if (g->sw == 2 && have_avx512()) {
            scatter_add_s2(dst + (size_t)2 * l, s + l, h - l);
          } else {
            for (int ow = l; ow < h; ow++) dst[(size_t)ow * g->sw] += s[ow];
          }
        }
      }
}

/* Output positions per column block: the whole image when its columns fit in
 * about 1.5 MB, else blocks of that size (at least 256 positions so the GEMMs
 * stay efficient). A whole-image column matrix of CNN1D's second layer is
 * 18 MB: written by im2col and read back by the GEMM's packing from DRAM,
 * that cost as much as the GEMM's arithmetic. 512 KB blocks (half of Zen 4's
 * L2) were the first choice; 1.5 MB measured about 4% faster for CNN1D (fewer,
 * wider GEMMs, each packing the weight once; the blocks stay in L3). */
#ifndef SER_CONV_COL_FLOATS
#define SER_CONV_COL_FLOATS 393216 /* 1.5 MB of columns per block */
#endif
static int chunk_of(const ser_conv_geom *g) {
  int CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW;
  if (CKK == 0 || OHW == 0) return OHW > 0 ? OHW : 1; /* zero input channels: the output is the bias */
  long nb = (long)SER_CONV_COL_FLOATS / CKK;
  if (nb >= OHW) return OHW;
  nb = nb < 256 ? 256 : (nb + 15) / 16 * 16;
  return nb < OHW ? (int)nb : OHW;
}

/* A 1x1 kernel with stride 1 and no padding reads the image as it is. */
static int col_is_input(const ser_conv_geom *g) {
  return g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* Backward: images go to threads (each with single-threaded GEMMs) when there
 * are enough of them; a smaller batch runs image by image with threaded GEMMs.
 * Measured on the CNN1D/CNN2D layers, 2 threads: 0.7-0.9 s forward and
 * 1.4-2.0 s backward per batch of 8 split over images, against 3.0-3.2 s and
 * 12-15 s with OpenBLAS threading each per-image GEMM (many small GEMMs, one
 * barrier each; the machine was loaded, which punishes barriers most). */
static int split_batch(const ser_conv_geom *g) {
  int nt = omp_get_max_threads();
  return nt > 1 && g->B >= nt && !omp_in_parallel();
}

/* o[oc, n0:n1] += bias[oc], right after the GEMM wrote that block, while it is
 * still in L2 (filling the bias first and using beta = 1 costs an extra pass
 * over the whole output through memory). */
static void add_bias(float *o, const float *bias, int OC, int OHW, int n0, int n1) {
  if (!bias) return;
  for (int oc = 0; oc < OC; oc++) {
    float *r = o + (size_t)oc * OHW, v = bias[oc];
#pragma omp simd
    for (int i = n0; i < n1; i++) r[i] += v;
  }
}

/* 3x3, stride 1, dilation 1, padding <= 2 with at least 8 channels on both
 * sides goes through Winograd F(2x2,3x3) (forward, input and weight
 * gradients): 2.25x fewer multiplications than im2col + GEMM; CNN2D and CRNN
 * train about 1.5x faster per CPU-second in fp32. Under amp its products run
 * in bf16 (1.25x over the bf16 im2col GEMM). SER_WINOGRAD=0 turns it off
 * (tests and benchmarks compare the two paths). */
static int use_winograd(const ser_conv_geom *g) {
  static int enabled = -1;
  if (enabled < 0) {
    const char *env = getenv("SER_WINOGRAD");
    enabled = ser_winograd_supported() && !(env && env[0] == '0');
  }
  return enabled && g->KH == 3 && g->KW == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
         g->ph <= 2 && g->pw <= 2 && g->C >= 8 && g->OC >= 8;
}

/* CNN1D's convolutions (1-d, kernel 9, stride 2, padding 4) with at least 8
 * channels on each side go through the polyphase Winograd of winograd1d.c
 * (forward, input and weight gradients): 2.4x fewer multiplications than
 * im2col + GEMM. The 1-channel first layer stays on im2col. SER_WINOGRAD=0
 * (both Winograd paths) or SER_WINOGRAD1D=0 turns it off at start-up,
 * ser_conv_set_winograd1d at run time (tests and benchmarks compare the paths). */
static int wino1d_enabled = -1;

static int wino1d_on(void) {
  if (wino1d_enabled < 0) {
    const char *env = getenv("SER_WINOGRAD"), *env1 = getenv("SER_WINOGRAD1D");
    wino1d_enabled = ser_winograd1d_supported() && !(env && env[0] == '0') && !(env1 && env1[0] == '0');
  }
  return wino1d_enabled;
}

int ser_conv_set_winograd1d(int on) {
  int prev = wino1d_on();
  wino1d_enabled = on && ser_winograd1d_supported();
  return prev;
}

static int use_winograd1d(const ser_conv_geom *g) {
  return g->H == 1 && g->KH == 1 && g->ph == 0 && g->sh == 1 && g->dh == 1 && g->KW == 9 && g->sw == 2 &&
         g->pw == 4 && g->dw == 1 && g->C >= 8 && g->OC >= 8 && wino1d_on();
}

/* One input channel, stride 2, kernel <= 16 (CNN1D's first layer on the
 * waveform) goes through the direct kernel of conv1d_c1.c (forward and weight
 * gradient; the input gradient stays on im2col), which writes no column
 * matrix. It measured the same speed as im2col (docs/engine.md: both are bound
 * by the 33 MB output and dout). SER_CONV1D_DIRECT=0 turns it off at start-up,
 * ser_conv_set_direct_c1 at run time. */
static int direct_c1_enabled = -1;

static int direct_c1_on(void) {
  if (direct_c1_enabled < 0) {
    const char *env = getenv("SER_CONV1D_DIRECT");
    direct_c1_enabled = ser_conv1d_c1s2_supported() && !(env && env[0] == '0');
  }
  return direct_c1_enabled;
}

int ser_conv_set_direct_c1(int on) {
  int prev = direct_c1_on();
  direct_c1_enabled = on && ser_conv1d_c1s2_supported();
  return prev;
}

static int use_direct_c1(const ser_conv_geom *g) {
  return g->C == 1 && g->H == 1 && g->KH == 1 && g->ph == 0 && g->sh == 1 && g->dh == 1 && g->sw == 2 &&
         g->dw == 1 && g->KW <= SER_CONV1D_C1_MAX_K && direct_c1_on();
}

static int scratch_failed(const ser_conv_geom *g, int nb) {
  return ser_error(SER_ENOMEM, "out of memory for the im2col scratch (%zu bytes per thread)",
                   sizeof(float) * (size_t)g->C * g->KH * g->KW * (size_t)nb);
}

int ser_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                       const ser_conv_geom *g) {
  int CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW, NB = chunk_of(g);
  size_t in_sz = (size_t)g->C * g->H * g->W, out_sz = (size_t)g->OC * OHW;
  int direct = col_is_input(g), failed = 0;
  if (g->B == 0 || OHW == 0 || g->OC == 0) return 0; /* an empty output */
  if (use_winograd(g))
    return ser_conv3x3_winograd(out, in, weight, bias, g->B, g->C, g->H, g->W, g->OC, g->ph, g->pw, 0, 0);
  if (use_winograd1d(g)) return ser_conv1d_k9s2_winograd(out, in, weight, bias, g->B, g->C, g->W, g->OC);
  if (use_direct_c1(g)) return ser_conv1d_c1s2_forward(out, in, weight, bias, g->B, g->W, g->OC, g->KW, g->pw);
  int nt = omp_get_max_threads(), par = nt > 1 && !omp_in_parallel();
  /* Work items are (image, column block) pairs, spread over threads with
   * single-threaded GEMMs. Fewer images than threads (inference on one clip):
   * smaller blocks so that every thread still gets one. Only when there are
   * not enough items at all do the GEMMs thread themselves. */
  if (par && g->B < nt) {
    int per = (nt + g->B - 1) / g->B, nb = ((OHW + per - 1) / per + 15) / 16 * 16;
    if (nb < NB) NB = nb;
  }
  int nblocks = (OHW + NB - 1) / NB;
  long items = (long)g->B * nblocks;
  par = par && items >= nt;
  /* under amp the weight is packed to bf16 once, not once per column block */
  const void *wp = items > 1 ? ser_gemm_pack_a(0, g->OC, CKK, weight, CKK) : NULL;
#pragma omp parallel for schedule(static) if (par) reduction(| : failed)
  for (long it = 0; it < items; it++) {
    int b = (int)(it / nblocks), n0 = (int)(it % nblocks) * NB, n1 = n0 + NB < OHW ? n0 + NB : OHW;
    const float *img = in + b * in_sz;
    float *o = out + b * out_sz;
    if (direct) {
      ser_gemm_packed(wp, 0, 0, g->OC, n1 - n0, CKK, 1.0f, weight, CKK, img + n0, OHW, 0.0f, o + n0, OHW);
    } else {
      float *col = ser_scratch(SER_SCRATCH_COL, sizeof(float) * (size_t)CKK * NB);
      if (!col) {
        failed = 1;
        continue;
      }
      im2col(col, img, g, n0, n1);
      ser_gemm_packed(wp, 0, 0, g->OC, n1 - n0, CKK, 1.0f, weight, CKK, col, n1 - n0, 0.0f, o + n0, OHW);
    }
    add_bias(o, bias, g->OC, OHW, n0, n1);
  }
  /* the allocation failed on a worker thread, whose error message we cannot see */
  return failed ? scratch_failed(g, NB) : 0;
}

/* One image's share of the backward pass, block by block of output
 * positions: dW += dout col^T, din += col2im(W^T dout). */
/* wtp: W^T packed by ser_gemm_pack_a (amp), or NULL */
static int backward_image(float *din_b, float *dw, const float *dout_b, const float *in_b,
                          const float *weight, const void *wtp, const ser_conv_geom *g, int din_overwrite) {
  int CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW, NB = chunk_of(g);
  if (din_b && din_overwrite) memset(din_b, 0, sizeof(float) * (size_t)g->C * g->H * g->W);
  if (col_is_input(g)) {
    if (dw) ser_gemm(0, 1, g->OC, CKK, OHW, 1.0f, dout_b, OHW, in_b, OHW, 1.0f, dw, CKK);
    if (din_b) ser_gemm_packed(wtp, 1, 0, CKK, OHW, g->OC, 1.0f, weight, CKK, dout_b, OHW, 1.0f, din_b, OHW);
    return 0;
  }
  float *col = ser_scratch(SER_SCRATCH_COL, sizeof(float) * (size_t)CKK * NB);
  if (!col) return scratch_failed(g, NB);
  for (int n0 = 0; n0 < OHW; n0 += NB) {
    int n1 = n0 + NB < OHW ? n0 + NB : OHW, nb = n1 - n0;
    if (dw) {
      im2col(col, in_b, g, n0, n1);
      ser_gemm(0, 1, g->OC, CKK, nb, 1.0f, dout_b + n0, OHW, col, nb, 1.0f, dw, CKK);
    }
    if (din_b) {
      ser_gemm_packed(wtp, 1, 0, CKK, nb, g->OC, 1.0f, weight, CKK, dout_b + n0, OHW, 0.0f, col, nb);
      col2im_add(din_b, col, g, n0, n1);
    }
  }
  return 0;
}

/* din_overwrite: din is uninitialised (a fresh autograd buffer) and is written, not added to. */
static int conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                           const float *weight, const ser_conv_geom *g, int din_overwrite) {
  int CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW;
  size_t in_sz = (size_t)g->C * g->H * g->W, out_sz = (size_t)g->OC * OHW;
  size_t wn = (size_t)g->OC * CKK;
  if (!din && use_direct_c1(g)) /* the first layer: dout is read once for the weight and bias gradients */
    return ser_conv1d_c1s2_backward_weight(dweight, dbias, dout, in, g->B, g->W, g->OC, g->KW, g->pw);
  /* the 1-d Winograd path sums the bias gradient while it transforms dout */
  if ((din || dweight) && use_winograd1d(g))
    return ser_conv1d_k9s2_winograd_backward(din, dweight, dbias, dout, in, weight, g->B, g->C, g->W, g->OC,
                                             din_overwrite);
  if (dbias) /* per channel, images in order: the same sums whatever the thread count */
#pragma omp parallel for schedule(static) if ((double)g->B * g->OC * OHW > 65536 && !omp_in_parallel())
    for (int oc = 0; oc < g->OC; oc++)
      for (int b = 0; b < g->B; b++) {
        const float *d = dout + b * out_sz + (size_t)oc * OHW;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < OHW; i++) s += d[i];
        dbias[oc] += s;
      }
  if (!din && !dweight) return 0;
  if (use_winograd(g)) {
    /* din = the 3x3 conv of dout with the flipped, transposed weight and padding 2 - p */
    int rc = din ? ser_conv3x3_winograd(din, dout, weight, NULL, g->B, g->OC, g->OH, g->OW, g->C, 2 - g->ph,
                                        2 - g->pw, 1, !din_overwrite)
                 : 0;
    if (!rc && dweight)
      rc = ser_conv3x3_winograd_dweight(dweight, in, dout, g->B, g->C, g->H, g->W, g->OC, g->ph, g->pw);
    return rc;
  }
  const void *wtp = din ? ser_gemm_pack_a(1, CKK, g->OC, weight, CKK) : NULL;
  if (!split_batch(g)) {
    for (int b = 0; b < g->B; b++) {
      int rc = backward_image(din ? din + b * in_sz : NULL, dweight, dout + b * out_sz, in + b * in_sz,
                              weight, wtp, g, din_overwrite);
      if (rc) return rc;
    }
    return 0;
  }
  /* Thread 0 accumulates straight into dweight, the others into their own
   * partial sums, added in thread order afterwards (deterministic for a
   * given thread count). */
  int nt = omp_get_max_threads(), failed = 0;
  float *part[nt];
  memset(part, 0, sizeof part);
#pragma omp parallel num_threads(nt) reduction(| : failed)
  {
    int t = omp_get_thread_num();
    float *dw = NULL;
    if (dweight) {
      dw = t == 0 ? dweight : ser_scratch(SER_SCRATCH_PARTIAL, sizeof(float) * wn);
      if (dw && t) memset(dw, 0, sizeof(float) * wn);
      part[t] = dw;
    }
    if (dweight && !dw) failed = 1;
#pragma omp for schedule(static)
    for (int b = 0; b < g->B; b++) {
      if (failed) continue;
      if (backward_image(din ? din + b * in_sz : NULL, dw, dout + b * out_sz, in + b * in_sz, weight, wtp, g,
                         din_overwrite))
        failed = 1;
    }
  }
  if (failed) return scratch_failed(g, chunk_of(g));
  if (dweight)
    for (int t = 1; t < nt; t++)
      if (part[t])
        for (size_t i = 0; i < wn; i++) dweight[i] += part[t][i];
  return 0;
}

int ser_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                        const float *weight, const ser_conv_geom *g) {
  return conv2d_backward(din, dweight, dbias, dout, in, weight, g, 0);
}

/* ---- autograd ops ------------------------------------------------------ */

/* Builds the geometry from tensor shapes (conv1d: H = KH = 1) and the options. */
static int geom_from(ser_conv_geom *g, const ser_tensor *x, const ser_tensor *w, const int64_t *arg, int is1d,
                     const char *op) {
  for (int i = 0; i < x->ndim; i++)
    if (x->shape[i] > 0x3fffffff || w->shape[i] > 0x3fffffff)
      return ser_error(SER_EINVAL, "%s: dimension too large; input %s, weight %s", op, SER_SHAPE(x),
                       SER_SHAPE(w));
  g->B = (int)x->shape[0];
  g->C = (int)x->shape[1];
  g->OC = (int)w->shape[0];
  if (is1d) {
    g->H = 1, g->W = (int)x->shape[2], g->KH = 1, g->KW = (int)w->shape[2];
    g->sh = 1, g->ph = 0, g->dh = 1;
    g->sw = (int)arg[0], g->pw = (int)arg[2], g->dw = (int)arg[4];
  } else {
    g->H = (int)x->shape[2], g->W = (int)x->shape[3], g->KH = (int)w->shape[2], g->KW = (int)w->shape[3];
    g->sh = (int)arg[0], g->sw = (int)arg[1], g->ph = (int)arg[2], g->pw = (int)arg[3];
    g->dh = (int)arg[4], g->dw = (int)arg[5];
  }
  int rc = ser_conv_geom_init(g, op);
  if (rc) { /* append the shapes; the message buffer cannot be its own argument */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ser_errmsg());
    return ser_error(rc, "%s; input %s, weight %s", msg, SER_SHAPE(x), SER_SHAPE(w));
  }
  if ((double)g->C * g->KH * g->KW * g->OH * g->OW > 2147483647.0)
    return ser_error(SER_EINVAL, "%s: im2col of one image would exceed 2^31 elements; input %s, weight %s",
                     op, SER_SHAPE(x), SER_SHAPE(w));
  return 0;
}

static int conv_op(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b, const ser_conv_opts *o,
                   int is1d) {
  const char *op = is1d ? "conv1d" : "conv2d";
  const char *layout = is1d ? "[B,C,L]" : "[B,C,H,W]";
  const char *wlayout = is1d ? "[OC,C,K]" : "[OC,C,KH,KW]";
  int nd = is1d ? 3 : 4;
  *out = NULL;
  if (!x || !w) return ser_error(SER_EINVAL, "%s: input and weight are required", op);
  if (x->ndim != nd)
    return ser_error(SER_EINVAL, "%s: input must be %dD %s, got %s", op, nd, layout, SER_SHAPE(x));
  if (w->ndim != nd)
    return ser_error(SER_EINVAL, "%s: weight must be %dD %s, got %s", op, nd, wlayout, SER_SHAPE(w));
  if (x->shape[1] != w->shape[1])
    return ser_error(SER_EINVAL, "%s: input has %lld channels, weight expects %lld; input %s, weight %s", op,
                     (long long)x->shape[1], (long long)w->shape[1], SER_SHAPE(x), SER_SHAPE(w));
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return ser_error(SER_EINVAL, "%s: bias must be [%lld] (one per output channel), got %s; weight %s", op,
                     (long long)w->shape[0], SER_SHAPE(b), SER_SHAPE(w));
  ser_conv_opts d = SER_CONV_OPTS_DEFAULT;
  if (!o) o = &d;
  int64_t arg[6] = {o->stride[0], o->stride[1], o->padding[0], o->padding[1], o->dilation[0], o->dilation[1]};
  ser_conv_geom g;
  int rc = geom_from(&g, x, w, arg, is1d, op);
  if (rc) return rc;

  int64_t shape[4] = {g.B, g.OC, is1d ? g.OW : g.OH, g.OW};
  ser_tensor *y = ser_tensor_empty(nd, shape);
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wc = ser_tensor_contiguous_raw(w);
  ser_tensor *bc = b ? ser_tensor_contiguous_raw(b) : NULL;
  rc = SER_ENOMEM;
  if (y && xc && wc && (!b || bc))
    rc = ser_conv2d_forward(ser_tensor_data(y), ser_tensor_data(xc), ser_tensor_data(wc),
                            bc ? ser_tensor_data(bc) : NULL, &g);
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  ser_tensor_release(bc);
  if (rc) {
    ser_tensor_release(y);
    return ser_error_prefix(rc, "%s", op);
  }
  ser_tensor *inputs[3] = {x, w, b};
  ser_node *node = NULL;
  rc = ser_autograd_record(y, is1d ? SER_OP_CONV1D : SER_OP_CONV2D, 3, inputs, &node);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  if (node)
    for (int i = 0; i < 6; i++) node->iarg[i] = arg[i];
  *out = y;
  return 0;
}

int ser_conv2d(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b, const ser_conv_opts *o) {
  return conv_op(out, x, w, b, o, 0);
}

int ser_conv1d(ser_tensor **out, ser_tensor *x, ser_tensor *w, ser_tensor *b, const ser_conv_opts *o) {
  return conv_op(out, x, w, b, o, 1);
}

static int conv_backward(ser_node *node, const ser_tensor *gout, ser_tensor **gin, int is1d) {
  const char *op = is1d ? "conv1d backward" : "conv2d backward";
  ser_tensor *x = node->inputs[0], *w = node->inputs[1];
  ser_conv_geom g;
  int rc = geom_from(&g, x, w, node->iarg, is1d, op);
  if (rc) return rc;
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wc = ser_tensor_contiguous_raw(w);
  rc = SER_ENOMEM;
  if (xc && wc)
    rc = conv2d_backward(gin[0] ? ser_tensor_data(gin[0]) : NULL, gin[1] ? ser_tensor_data(gin[1]) : NULL,
                         (gin[2] && node->inputs[2]) ? ser_tensor_data(gin[2]) : NULL, ser_tensor_data(gout),
                         ser_tensor_data(xc), ser_tensor_data(wc), &g, (node->gin_fresh & 1u) != 0);
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  return rc ? ser_error_prefix(rc, "%s", op) : 0;
}

int ser_conv2d_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  return conv_backward(node, gout, gin, 0);
}

int ser_conv1d_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  return conv_backward(node, gout, gin, 1);
}
