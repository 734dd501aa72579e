/* conv2d / conv1d: PyTorch parity (../shared/fixtures, skipped when absent),
 * the im2col kernel against a direct loop over odd geometries, shape errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "lib/fixture.h"
#include "ops/conv1d_c1.h"
#include "ops/winograd.h"
#include "ops/winograd1d.h"

/* Direct-loop reference: out = conv(in, w) + b, and the three gradients for dout. */
static void naive_conv(const ser_conv_geom *g, const float *in, const float *w, const float *b, float *out) {
  for (int n = 0; n < g->B; n++)
    for (int o = 0; o < g->OC; o++)
      for (int y = 0; y < g->OH; y++)
        for (int x = 0; x < g->OW; x++) {
          double s = b ? b[o] : 0.0; /* double: the reference adds no rounding of its own */
          for (int c = 0; c < g->C; c++)
            for (int i = 0; i < g->KH; i++)
              for (int j = 0; j < g->KW; j++) {
                int ih = y * g->sh - g->ph + i * g->dh, iw = x * g->sw - g->pw + j * g->dw;
                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                s += (double)in[((n * g->C + c) * g->H + ih) * g->W + iw] *
                     w[((o * g->C + c) * g->KH + i) * g->KW + j];
              }
          out[((n * g->OC + o) * g->OH + y) * g->OW + x] = (float)s;
        }
}

/* Accumulates in double and adds to the float arrays at the end, so the
 * reference itself adds no rounding worth mentioning. */
static void naive_conv_backward(const ser_conv_geom *g, const float *in, const float *w, const float *dout,
                                float *din, float *dw, float *db) {
  size_t ni = (size_t)g->B * g->C * g->H * g->W, nw = (size_t)g->OC * g->C * g->KH * g->KW;
  double *ddin = calloc(ni, sizeof(double)), *ddw = calloc(nw, sizeof(double)), *ddb = calloc(g->OC, sizeof(double));
  for (int n = 0; n < g->B; n++)
    for (int o = 0; o < g->OC; o++)
      for (int y = 0; y < g->OH; y++)
        for (int x = 0; x < g->OW; x++) {
          double d = dout[((n * g->OC + o) * g->OH + y) * g->OW + x];
          ddb[o] += d;
          for (int c = 0; c < g->C; c++)
            for (int i = 0; i < g->KH; i++)
              for (int j = 0; j < g->KW; j++) {
                int ih = y * g->sh - g->ph + i * g->dh, iw = x * g->sw - g->pw + j * g->dw;
                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                size_t ii = ((size_t)(n * g->C + c) * g->H + ih) * g->W + iw;
                size_t wi = ((size_t)(o * g->C + c) * g->KH + i) * g->KW + j;
                ddin[ii] += d * w[wi];
                ddw[wi] += d * in[ii];
              }
        }
  for (size_t i = 0; i < ni; i++) din[i] += (float)ddin[i];
  for (size_t i = 0; i < nw; i++) dw[i] += (float)ddw[i];
  for (int o = 0; o < g->OC; o++) db[o] += (float)ddb[o];
  free(ddin), free(ddw), free(ddb);
}

static float *randbuf(size_t n, unsigned seed) {
  float *p = malloc(n * sizeof(float));
  srand(seed);
  for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
  return p;
}

static void check_geometry(ser_conv_geom g, int threads) {
  assert_int_equal(ser_conv_geom_init(&g, "test"), 0);
  ser_set_num_threads(threads);
  size_t ni = (size_t)g.B * g.C * g.H * g.W, nw = (size_t)g.OC * g.C * g.KH * g.KW;
  size_t no = (size_t)g.B * g.OC * g.OH * g.OW;
  float *in = randbuf(ni, 1), *w = randbuf(nw, 2), *b = randbuf(g.OC, 3), *dout = randbuf(no, 4);
  float *out = calloc(no, 4), *ref = calloc(no, 4);
  /* backward accumulates: start both sides from the same non-zero values */
  float *din = randbuf(ni, 5), *dw = randbuf(nw, 6), *db = randbuf(g.OC, 7);
  float *rdin = randbuf(ni, 5), *rdw = randbuf(nw, 6), *rdb = randbuf(g.OC, 7);
  assert_int_equal(ser_conv2d_forward(out, in, w, b, &g), 0);
  naive_conv(&g, in, w, b, ref);
  printf("geometry B%d C%d %dx%d OC%d k%dx%d s%dx%d p%dx%d d%dx%d, %d thread(s)\n", g.B, g.C, g.H, g.W, g.OC,
         g.KH, g.KW, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, threads);
  /* relative to max(1, |value|): weight gradients sum B*OH*OW float
   * products (3200 in the biggest case), so fp32 rounding reaches ~1e-5 */
  assert_close_rel("forward", out, ref, no, 1.0, 2e-5);
  assert_int_equal(ser_conv2d_backward(din, dw, db, dout, in, w, &g), 0);
  naive_conv_backward(&g, in, w, dout, rdin, rdw, rdb);
  assert_close_rel("din", din, rdin, ni, 1.0, 2e-5);
  assert_close_rel("dweight", dw, rdw, nw, 1.0, 1e-4);
  assert_close_rel("dbias", db, rdb, g.OC, 1.0, 2e-5);
  free(in), free(w), free(b), free(dout), free(out), free(ref);
  free(din), free(dw), free(db), free(rdin), free(rdw), free(rdb);
  ser_set_num_threads(0);
}

#define GEOM(B, C, H, W, OC, KH, KW, sh, sw, ph, pw, dh, dw) \
  ((ser_conv_geom){B, C, H, W, OC, KH, KW, sh, sw, ph, pw, dh, dw, 0, 0})

static void test_kernel_geometries(void **state) {
  (void)state;
  check_geometry(GEOM(3, 2, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1), 1);
  check_geometry(GEOM(3, 2, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1), 2);
  check_geometry(GEOM(2, 3, 8, 11, 4, 3, 2, 2, 3, 1, 2, 1, 1), 2);    /* strides, asymmetric kernel */
  check_geometry(GEOM(2, 2, 9, 10, 3, 3, 3, 1, 2, 2, 0, 2, 3), 1);    /* dilation */
  check_geometry(GEOM(4, 5, 6, 6, 7, 1, 1, 1, 1, 0, 0, 1, 1), 2);     /* 1x1: GEMM on the input */
  check_geometry(GEOM(5, 2, 1, 40, 3, 1, 9, 1, 2, 0, 4, 1, 1), 2);    /* conv1d geometry */
  check_geometry(GEOM(1, 1, 5, 5, 2, 5, 5, 1, 1, 0, 0, 1, 1), 2);     /* kernel = input, batch 1 */
  check_geometry(GEOM(1, 3, 20, 30, 5, 3, 3, 1, 1, 1, 1, 1, 1), 2);   /* batch 1: column blocks per thread */
  check_geometry(GEOM(1, 4, 6, 50, 3, 1, 1, 1, 1, 0, 0, 1, 1), 2);    /* batch 1, 1x1: blocks of the input */
  check_geometry(GEOM(2, 17, 12, 13, 20, 3, 3, 1, 1, 1, 1, 1, 1), 2); /* big enough for the bf16 path */
  /* Column blocks (more than SER_CONV_COL_FLOATS = 384k column floats per
   * image): block edges fall inside output rows (dilated, so not Winograd);
   * the 1-d case has blocks of a strided conv. */
  check_geometry(GEOM(2, 16, 70, 60, 8, 3, 3, 1, 1, 2, 2, 2, 2), 2);
  check_geometry(GEOM(3, 40, 1, 4000, 6, 1, 9, 1, 2, 0, 4, 1, 1), 1);
  check_geometry(GEOM(2, 40, 1, 4001, 5, 1, 9, 1, 2, 0, 4, 1, 1), 2);
  /* 1-d stride 2 (even/odd split im2col): odd lengths, no/small/large padding, even kernels */
  check_geometry(GEOM(2, 3, 1, 41, 4, 1, 9, 1, 2, 0, 4, 1, 1), 2);
  check_geometry(GEOM(2, 2, 1, 39, 3, 1, 5, 1, 2, 0, 0, 1, 1), 1);
  check_geometry(GEOM(1, 2, 1, 17, 2, 1, 3, 1, 2, 0, 1, 1, 1), 1);
  check_geometry(GEOM(2, 3, 1, 20, 2, 1, 4, 1, 2, 0, 2, 1, 1), 2);
  check_geometry(GEOM(1, 1, 1, 3, 2, 1, 2, 1, 2, 0, 1, 1, 1), 1);
}

/* Winograd F(2x2,3x3) against the direct loop: forward (with bias, overwrite)
 * and the input-gradient form (flipped, transposed weight, padding 2 - p,
 * accumulating), on odd sizes: odd OH/OW (half-empty edge tiles), more than 16
 * tiles per row, output channels not a multiple of 8 and above the 64-channel
 * pass, tile blocks that span images, paddings 0..2 in either dimension. */
static void check_winograd(int B, int C, int H, int W, int OC, int ph, int pw, int threads) {
  ser_conv_geom g = GEOM(B, C, H, W, OC, 3, 3, 1, 1, ph, pw, 1, 1);
  assert_int_equal(ser_conv_geom_init(&g, "test"), 0);
  ser_set_num_threads(threads);
  size_t ni = (size_t)B * C * H * W, nw = (size_t)OC * C * 9, no = (size_t)B * OC * g.OH * g.OW;
  float *in = randbuf(ni, 11), *w = randbuf(nw, 12), *b = randbuf(OC, 13), *dout = randbuf(no, 14);
  float *out = randbuf(no, 15), *ref = calloc(no, 4); /* garbage in out: the forward overwrites */
  float *din = randbuf(ni, 16), *rdin = randbuf(ni, 16), *dw = calloc(nw, 4), *db = calloc(OC, 4);
  printf("winograd B%d C%d %dx%d OC%d p%dx%d, %d thread(s)\n", B, C, H, W, OC, ph, pw, threads);
  assert_int_equal(ser_conv3x3_winograd(out, in, w, b, B, C, H, W, OC, ph, pw, 0, 0), 0);
  naive_conv(&g, in, w, b, ref);
  assert_close_rel("forward", out, ref, no, 1.0, 2e-5);
  assert_int_equal(ser_conv3x3_winograd(din, dout, w, NULL, B, OC, g.OH, g.OW, C, 2 - ph, 2 - pw, 1, 1), 0);
  naive_conv_backward(&g, in, w, dout, rdin, dw, db);
  assert_close_rel("din (flipped, accumulated)", din, rdin, ni, 1.0, 2e-5);
  float *wdw = randbuf(nw, 17), *rdw = randbuf(nw, 17);
  assert_int_equal(ser_conv3x3_winograd_dweight(wdw, in, dout, B, C, H, W, OC, ph, pw), 0);
  for (size_t i = 0; i < nw; i++) rdw[i] += dw[i]; /* dw: the reference gradient from zero */
  assert_close_rel("dweight (accumulated)", wdw, rdw, nw, 1.0, 1e-4);
  free(wdw), free(rdw);
  free(in), free(w), free(b), free(dout), free(out), free(ref), free(din), free(rdin), free(dw), free(db);
  ser_set_num_threads(0);
}

static void test_winograd(void **state) {
  (void)state;
  if (!ser_winograd_supported()) {
    printf("skip: AVX-512 %s\n", ser_cpu_why_not(SER_CPU_AVX512F));
    skip();
  }
  check_winograd(1, 1, 2, 2, 1, 1, 1, 1);     /* one tile, one channel */
  check_winograd(3, 9, 7, 37, 70, 1, 1, 2);   /* odd sizes, 19 tiles a row, 70 = 64 + 6 output channels */
  check_winograd(2, 8, 9, 11, 13, 0, 2, 1);   /* padding 0 and 2: the gradient form uses 2 and 0 */
  check_winograd(2, 16, 3, 50, 8, 2, 0, 2);   /* tile blocks spanning images */
  check_winograd(5, 33, 6, 6, 9, 1, 1, 2);    /* many small images */
  /* through the op (forward and backward, Winograd-eligible geometries) */
  check_geometry(GEOM(2, 8, 5, 35, 9, 3, 3, 1, 1, 0, 2, 1, 1), 2);
  check_geometry(GEOM(3, 12, 9, 9, 70, 3, 3, 1, 1, 2, 1, 1, 1), 1);
}

/* |got - want| <= tol * bound + 1e-6 elementwise, bound = the sum of |terms|
 * of each output (the direct loop on absolute values): Winograd's transforms
 * cancel large terms, so its rounding scales with that sum, not with the value. */
static void assert_within_bound(const char *label, const float *got, const float *want, const float *bound, size_t n,
                                double tol) {
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double r = fabs((double)got[i] - want[i]) / (bound[i] + 1e-6 / tol);
    if (r > worst) worst = r, at = i;
  }
  printf("  %s: worst err / sum|terms| %.3g at [%zu] (got %.7g, want %.7g, sum|terms| %.4g)\n", label, worst, at,
         got[at], want[at], bound[at]);
  assert_true(worst <= tol);
}

/* Polyphase Winograd for Conv1d k9 s2 p4 (CNN1D): through ser_conv2d_forward/
 * backward against the direct loop and against the im2col path, and the
 * kernel's own overwrite form of din (NaN garbage in, every element written),
 * din alone and dweight alone. fp32 rounding: a few 1e-7 of the sum of |terms|
 * (im2col about 1e-7); the bound allows 4e-6. */
static void check_winograd1d(int B, int C, int W, int OC, int threads) {
  ser_conv_geom g = GEOM(B, C, 1, W, OC, 1, 9, 1, 2, 0, 4, 1, 1);
  assert_int_equal(ser_conv_geom_init(&g, "test"), 0);
  ser_set_num_threads(threads);
  const double tol = 4e-6;
  size_t ni = (size_t)B * C * W, nw = (size_t)OC * C * 9, no = (size_t)B * OC * g.OW;
  float *in = randbuf(ni, 21), *w = randbuf(nw, 22), *b = randbuf(OC, 23), *dout = randbuf(no, 24);
  float *out = randbuf(no, 25), *ref = calloc(no, 4), *col = calloc(no, 4);
  float *din = randbuf(ni, 26), *rdin = randbuf(ni, 26), *cdin = randbuf(ni, 26);
  float *dw = randbuf(nw, 27), *rdw = randbuf(nw, 27), *cdw = randbuf(nw, 27);
  float *db = calloc(OC, 4), *rdb = calloc(OC, 4), *cdb = calloc(OC, 4);
  float *ain = malloc(ni * 4), *aw = malloc(nw * 4), *adout = malloc(no * 4), *ab = malloc(OC * 4);
  float *bound = calloc(no, 4), *dbound = calloc(ni, 4), *wbound = calloc(nw, 4), *bbound = calloc(OC, 4);
  for (size_t i = 0; i < ni; i++) ain[i] = fabsf(in[i]);
  for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
  for (size_t i = 0; i < no; i++) adout[i] = fabsf(dout[i]);
  for (int i = 0; i < OC; i++) ab[i] = fabsf(b[i]);
  naive_conv(&g, ain, aw, ab, bound);
  naive_conv_backward(&g, ain, aw, adout, dbound, wbound, bbound);
  for (size_t i = 0; i < ni; i++) dbound[i] += fabsf(din[i]); /* the accumulated start values */
  for (size_t i = 0; i < nw; i++) wbound[i] += fabsf(dw[i]);
  printf("winograd1d B%d C%d W%d OC%d (OW %d), %d thread(s)\n", B, C, W, OC, g.OW, threads);
  assert_int_equal(ser_conv2d_forward(out, in, w, b, &g), 0);
  assert_int_equal(ser_conv2d_backward(din, dw, db, dout, in, w, &g), 0);
  naive_conv(&g, in, w, b, ref);
  naive_conv_backward(&g, in, w, dout, rdin, rdw, rdb);
  assert_within_bound("forward", out, ref, bound, no, tol);
  assert_within_bound("din (accumulated)", din, rdin, dbound, ni, tol);
  assert_within_bound("dweight (accumulated)", dw, rdw, wbound, nw, tol);
  assert_within_bound("dbias", db, rdb, bbound, OC, tol);
  int prev = ser_conv_set_winograd1d(0);
  assert_int_equal(ser_conv2d_forward(col, in, w, b, &g), 0);
  assert_int_equal(ser_conv2d_backward(cdin, cdw, cdb, dout, in, w, &g), 0);
  ser_conv_set_winograd1d(prev);
  assert_within_bound("forward vs im2col", out, col, bound, no, tol);
  assert_within_bound("din vs im2col", din, cdin, dbound, ni, tol);
  assert_within_bound("dweight vs im2col", dw, cdw, wbound, nw, tol);
  /* the kernel's overwrite form (a fresh autograd buffer: NaN garbage, so an
   * element it fails to zero or write shows) and din alone / dweight alone, each
   * with the bias gradient it sums while transforming dout */
  float *odin = randbuf(ni, 28), *zdin = calloc(ni, 4), *odw = calloc(nw, 4), *zdw = calloc(nw, 4);
  float *odb = calloc(OC, 4), *odb2 = calloc(OC, 4), *zdb = calloc(OC, 4);
  for (size_t i = 0; i < ni; i += 7) odin[i] = NAN;
  assert_int_equal(ser_conv1d_k9s2_winograd_backward(odin, NULL, odb, dout, in, w, B, C, W, OC, 1), 0);
  assert_int_equal(ser_conv1d_k9s2_winograd_backward(NULL, odw, odb2, dout, in, w, B, C, W, OC, 0), 0);
  naive_conv_backward(&g, in, w, dout, zdin, zdw, zdb);
  assert_within_bound("din (overwritten)", odin, zdin, dbound, ni, tol);
  assert_within_bound("dweight alone", odw, zdw, wbound, nw, tol);
  assert_within_bound("dbias with din", odb, zdb, bbound, OC, tol);
  assert_within_bound("dbias with dweight", odb2, zdb, bbound, OC, tol);
  /* the bias sums go per image, then over images in order: the same bits on 1 and 2 threads */
  float *db1 = calloc(OC, 4), *db2 = calloc(OC, 4);
  ser_set_num_threads(1);
  assert_int_equal(ser_conv1d_k9s2_winograd_backward(NULL, odw, db1, dout, in, w, B, C, W, OC, 0), 0);
  ser_set_num_threads(2);
  assert_int_equal(ser_conv1d_k9s2_winograd_backward(NULL, odw, db2, dout, in, w, B, C, W, OC, 0), 0);
  assert_memory_equal(db1, db2, OC * sizeof(float));
  ser_set_num_threads(threads);
  free(odin), free(zdin), free(odw), free(zdw), free(odb), free(odb2), free(zdb), free(db1), free(db2);
  free(ain), free(aw), free(adout), free(ab), free(bound), free(dbound), free(wbound), free(bbound);
  free(in), free(w), free(b), free(dout), free(out), free(ref), free(col);
  free(din), free(rdin), free(cdin), free(dw), free(rdw), free(cdw), free(db), free(rdb), free(cdb);
  ser_set_num_threads(0);
}

static void test_winograd1d(void **state) {
  (void)state;
  if (!ser_winograd1d_supported()) {
    printf("skip: AVX-512 %s\n", ser_cpu_why_not(SER_CPU_AVX512F));
    skip();
  }
  check_winograd1d(1, 8, 1, 8, 1);       /* one output: all taps but the centre in the padding */
  check_winograd1d(2, 8, 2, 9, 2);       /* batch 2 on 2 threads, one tile, odd output channels */
  check_winograd1d(1, 9, 7, 8, 2);       /* batch 1 on 2 threads, OW 4: one full tile */
  check_winograd1d(3, 10, 37, 11, 1);    /* OW 19: a partial last tile and a 16-tile group plus 3 */
  check_winograd1d(2, 8, 130, 8, 2);     /* OW 65: the left and right edges of the phase loads */
  check_winograd1d(3, 13, 259, 17, 2);   /* odd length, 130 outputs: partial group, odd channels */
  /* the channel counts of CNN1D's layers 2-4 (one block of tiles each at the
   * default block size: 768, 384 and 192 tiles) */
  check_winograd1d(2, 32, 601, 64, 2);
  check_winograd1d(1, 64, 2600, 128, 2); /* batch 1: the blocks split over the threads */
  check_winograd1d(3, 128, 1201, 256, 2);
  check_winograd1d(2, 128, 1200, 256, 1);
  /* blocks of 16 tiles (the smallest), so that small shapes cross many block
   * edges: the input gradient of two blocks overlaps there, and its overwrite
   * form zeroes each stretch of din just before the first block that reaches it */
  long prev = ser_winograd1d_set_block_floats(1);
  check_winograd1d(2, 8, 601, 8, 2);     /* 76 tiles: blocks of 16, 16, 16, 16, 12 */
  check_winograd1d(3, 10, 515, 11, 1);   /* 258 outputs, 65 tiles: a last block of one partial tile */
  check_winograd1d(1, 9, 1030, 8, 2);    /* even length; batch 1 on 2 threads */
  check_winograd1d(2, 32, 1201, 64, 2);
  ser_winograd1d_set_block_floats(prev);
}

/* The direct 1-input-channel, stride-2 kernel (CNN1D's first layer, conv1d_c1.c)
 * through ser_conv2d_forward/backward, against the direct loop and against
 * im2col (ser_conv_set_direct_c1(0)): forward with and without bias, the
 * weight and bias gradients accumulated onto start values, the input gradient
 * (which stays on im2col) alongside, and the bias sums bit-identical on 1 and
 * 2 threads. fp32 sums in another order: within 1e-6 of the sum of |terms|. */
static void check_direct_c1(int B, int W, int OC, int K, int pad, int threads, int with_bias) {
  ser_conv_geom g = GEOM(B, 1, 1, W, OC, 1, K, 1, 2, 0, pad, 1, 1);
  assert_int_equal(ser_conv_geom_init(&g, "test"), 0);
  ser_set_num_threads(threads);
  const double tol = 1e-6;
  size_t ni = (size_t)B * W, nw = (size_t)OC * K, no = (size_t)B * OC * g.OW;
  float *in = randbuf(ni, 31), *w = randbuf(nw, 32), *b = with_bias ? randbuf(OC, 33) : NULL, *dout = randbuf(no, 34);
  float *out = randbuf(no, 35), *ref = calloc(no, 4), *col = calloc(no, 4);
  float *dw = randbuf(nw, 36), *rdw = randbuf(nw, 36), *cdw = randbuf(nw, 36);
  float *db = randbuf(OC, 37), *rdb = randbuf(OC, 37), *cdb = randbuf(OC, 37);
  float *din = calloc(ni, 4), *rdin = calloc(ni, 4), *cdin = calloc(ni, 4);
  float *ain = malloc(ni * 4), *aw = malloc(nw * 4), *adout = malloc(no * 4), *ab = calloc(OC, 4);
  float *bound = calloc(no, 4), *dbound = calloc(ni, 4), *wbound = calloc(nw, 4), *bbound = calloc(OC, 4);
  for (size_t i = 0; i < ni; i++) ain[i] = fabsf(in[i]);
  for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]), wbound[i] = fabsf(dw[i]);
  for (size_t i = 0; i < no; i++) adout[i] = fabsf(dout[i]);
  for (int i = 0; i < OC; i++) ab[i] = b ? fabsf(b[i]) : 0.0f, bbound[i] = fabsf(db[i]);
  naive_conv(&g, ain, aw, ab, bound);
  naive_conv_backward(&g, ain, aw, adout, dbound, wbound, bbound);
  printf("direct c1 B%d W%d OC%d K%d pad%d (OW %d), %d thread(s)%s\n", B, W, OC, K, pad, g.OW, threads,
         with_bias ? "" : ", no bias");
  assert_int_equal(ser_conv2d_forward(out, in, w, b, &g), 0);
  assert_int_equal(ser_conv2d_backward(NULL, dw, db, dout, in, w, &g), 0); /* the first layer's case */
  assert_int_equal(ser_conv2d_backward(din, NULL, NULL, dout, in, w, &g), 0);
  naive_conv(&g, in, w, b, ref);
  naive_conv_backward(&g, in, w, dout, rdin, rdw, rdb);
  assert_within_bound("forward", out, ref, bound, no, tol);
  assert_within_bound("dweight (accumulated)", dw, rdw, wbound, nw, tol);
  assert_within_bound("dbias (accumulated)", db, rdb, bbound, OC, tol);
  assert_within_bound("din (im2col)", din, rdin, dbound, ni, tol);
  int prev = ser_conv_set_direct_c1(0);
  assert_int_equal(ser_conv2d_forward(col, in, w, b, &g), 0);
  assert_int_equal(ser_conv2d_backward(cdin, cdw, cdb, dout, in, w, &g), 0);
  ser_conv_set_direct_c1(prev);
  assert_within_bound("forward vs im2col", out, col, bound, no, tol);
  assert_within_bound("dweight vs im2col", dw, cdw, wbound, nw, tol);
  assert_within_bound("dbias vs im2col", db, cdb, bbound, OC, tol);
  float *w1 = calloc(nw, 4), *w2 = calloc(nw, 4), *b1 = calloc(OC, 4), *b2 = calloc(OC, 4);
  ser_set_num_threads(1);
  assert_int_equal(ser_conv1d_c1s2_backward_weight(w1, b1, dout, in, B, W, OC, K, pad), 0);
  ser_set_num_threads(2);
  assert_int_equal(ser_conv1d_c1s2_backward_weight(w2, b2, dout, in, B, W, OC, K, pad), 0);
  assert_memory_equal(w1, w2, nw * sizeof(float));
  assert_memory_equal(b1, b2, OC * sizeof(float));
  free(w1), free(w2), free(b1), free(b2);
  free(ain), free(aw), free(adout), free(ab), free(bound), free(dbound), free(wbound), free(bbound);
  free(in), free(w), free(b), free(dout), free(out), free(ref), free(col);
  free(dw), free(rdw), free(cdw), free(db), free(rdb), free(cdb), free(din), free(rdin), free(cdin);
  ser_set_num_threads(0);
}

static void test_direct_c1(void **state) {
  (void)state;
  if (!ser_conv1d_c1s2_supported()) {
    printf("skip: AVX-512 %s\n", ser_cpu_why_not(SER_CPU_AVX512F));
    skip();
  }
  check_direct_c1(1, 1, 1, 9, 4, 1, 1);      /* one sample: every tap but the centre in the padding */
  check_direct_c1(2, 2, 3, 9, 4, 2, 1);      /* two samples, odd output channels */
  check_direct_c1(3, 37, 5, 9, 4, 1, 0);     /* 19 outputs: a partial vector; no bias */
  check_direct_c1(2, 130, 7, 9, 4, 2, 1);    /* 65 outputs */
  check_direct_c1(2, 101, 4, 1, 0, 2, 1);    /* kernel 1, no padding */
  check_direct_c1(1, 64, 3, 2, 1, 1, 1);     /* even kernel, odd padding */
  check_direct_c1(3, 77, 6, 16, 8, 2, 1);    /* the largest kernel */
  check_direct_c1(2, 50, 5, 5, 7, 2, 1);     /* padding larger than the kernel: outputs of padding alone */
  check_direct_c1(2, 40, 3, 7, 0, 1, 1);     /* no padding, odd kernel: the signal's tail is never read */
  check_direct_c1(3, 4001, 32, 9, 4, 2, 1);  /* CNN1D's first layer, shorter */
  /* not taken: kernel 17 (more taps than the kernel keeps) goes to im2col; its
   * direct entry refuses it with a message */
  float x[40] = {0}, wt[17] = {0}, y[16];
  assert_int_equal(ser_conv1d_c1s2_forward(y, x, wt, NULL, 1, 40, 1, 17, 0), SER_EINVAL);
  printf("  error: %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "kernel 17"));
  ser_conv_geom g = GEOM(1, 1, 1, 40, 1, 1, 17, 1, 2, 0, 0, 1, 1);
  assert_int_equal(ser_conv_geom_init(&g, "test"), 0);
  assert_int_equal(ser_conv2d_forward(y, x, wt, NULL, &g), 0);
}

/* amp on the 1-d Winograd path: forward, input and weight gradients against
 * fp32 im2col, within the bf16 bound of the GEMM (V and U are rounded after
 * the transforms, which costs more of the bound than im2col does). */
static void test_amp_winograd1d(void **state) {
  (void)state;
  if (!ser_bf16_supported() || !ser_winograd1d_supported()) {
    printf("skip: AVX512-BF16 %s\n", ser_cpu_why_not(SER_CPU_AVX512BF16));
    skip();
  }
  for (int cfg = 0; cfg < 3; cfg++) {
    static const int dims[3][4] = {{3, 32, 1401, 64}, {2, 64, 801, 128}, {2, 128, 601, 256}};
    ser_conv_geom g = GEOM(dims[cfg][0], dims[cfg][1], 1, dims[cfg][2], dims[cfg][3], 1, 9, 1, 2, 0, 4, 1, 1);
    assert_int_equal(ser_conv_geom_init(&g, "test"), 0);
    size_t ni = (size_t)g.B * g.C * g.W, nw = (size_t)g.OC * g.C * 9, no = (size_t)g.B * g.OC * g.OW;
    float *in = randbuf(ni, 1), *w = randbuf(nw, 2), *dout = randbuf(no, 3);
    float *ain = malloc(ni * 4), *aw = malloc(nw * 4), *adout = malloc(no * 4);
    for (size_t i = 0; i < ni; i++) ain[i] = fabsf(in[i]);
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
    for (size_t i = 0; i < no; i++) adout[i] = fabsf(dout[i]);
    float *out = calloc(no, 4), *ref = calloc(no, 4), *bound = calloc(no, 4);
    float *din = calloc(ni, 4), *rdin = calloc(ni, 4), *dbound = calloc(ni, 4);
    float *dw = calloc(nw, 4), *rdw = calloc(nw, 4), *wbound = calloc(nw, 4), *sb = calloc(g.OC, 4);
    naive_conv(&g, ain, aw, NULL, bound);
    naive_conv_backward(&g, ain, aw, adout, dbound, wbound, sb);
    int prev = ser_conv_set_winograd1d(0);
    assert_int_equal(ser_conv2d_forward(ref, in, w, NULL, &g), 0);
    assert_int_equal(ser_conv2d_backward(rdin, rdw, NULL, dout, in, w, &g), 0);
    ser_conv_set_winograd1d(prev);
    for (int t = 1; t <= 2; t++) {
      ser_set_num_threads(t);
      assert_int_equal(ser_set_amp(1), 0);
      assert_int_equal(ser_conv2d_forward(out, in, w, NULL, &g), 0);
      memset(din, 0, ni * 4), memset(dw, 0, nw * 4);
      assert_int_equal(ser_conv2d_backward(din, dw, NULL, dout, in, w, &g), 0);
      ser_set_amp(0);
      double r[3] = {0, 0, 0}, e[3] = {0, 0, 0};
      const float *got[3] = {out, din, dw}, *want[3] = {ref, rdin, rdw}, *bd[3] = {bound, dbound, wbound};
      size_t n[3] = {no, ni, nw};
      for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < n[k]; i++) {
          double d = fabs(got[k][i] - want[k][i]);
          e[k] = fmax(e[k], d);
          r[k] = fmax(r[k], d / (ldexp(bd[k][i], -7) + 1e-5));
        }
      printf("  C%d OC%d, %d thread(s): amp forward err %.3g (/bound %.3f), din %.3g (/bound %.3f), dweight "
             "%.3g (/bound %.3f)\n", g.C, g.OC, t, e[0], r[0], e[1], r[1], e[2], r[2]);
      for (int k = 0; k < 3; k++) assert_true(e[k] > 0.0 && r[k] <= 1.0);
    }
    ser_set_num_threads(0);
    free(in), free(w), free(dout), free(ain), free(aw), free(adout), free(out), free(ref), free(bound);
    free(din), free(rdin), free(dbound), free(dw), free(rdw), free(wbound), free(sb);
  }
}

/* amp: the bf16 GEMM is within bf16 rounding of fp32. Rounding both factors
 * to 8 significant bits moves each factor by up to 2^-8 and each product by up to 2^-7, so
 * |amp - fp32| <= 2^-7 * sum |w| |x| per output (plus fp32 noise). */
static void test_amp_close_to_fp32(void **state) {
  (void)state;
  if (!ser_bf16_supported()) {
    printf("skip: AVX512-BF16 %s\n", ser_cpu_why_not(SER_CPU_AVX512BF16));
    skip();
  }
  ser_conv_geom g = GEOM(4, 16, 16, 20, 32, 3, 3, 1, 1, 1, 1, 1, 1);
  assert_int_equal(ser_conv_geom_init(&g, "test"), 0);
  size_t ni = (size_t)g.B * g.C * g.H * g.W, nw = (size_t)g.OC * g.C * 9, no = (size_t)g.B * g.OC * g.OH * g.OW;
  float *in = randbuf(ni, 1), *w = randbuf(nw, 2), *out = calloc(no, 4), *ref = calloc(no, 4);
  float *ain = malloc(ni * 4), *aw = malloc(nw * 4), *bound = calloc(no, 4);
  for (size_t i = 0; i < ni; i++) ain[i] = fabsf(in[i]);
  for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
  naive_conv(&g, ain, aw, NULL, bound);
  assert_int_equal(ser_conv2d_forward(ref, in, w, NULL, &g), 0);
  assert_int_equal(ser_set_amp(1), 0);
  assert_int_equal(ser_amp_enabled(), 1);
  assert_int_equal(ser_conv2d_forward(out, in, w, NULL, &g), 0);
  ser_set_amp(0);
  double worst = 0, worst_ratio = 0;
  for (size_t i = 0; i < no; i++) {
    double d = fabs(out[i] - ref[i]);
    worst = fmax(worst, d);
    worst_ratio = fmax(worst_ratio, d / (ldexp(bound[i], -7) + 1e-5));
  }
  printf("  amp vs fp32: worst abs err %.3g, worst err / bound %.3f\n", worst, worst_ratio);
  assert_true(worst > 0.0); /* it really ran in bf16 */
  assert_true(worst_ratio <= 1.0);
  /* The input gradient (Winograd in bf16 for this geometry): the same bound
   * with the adjoint sum |w| |dout| per input element. */
  float *dout = randbuf(no, 4), *adout = malloc(no * 4);
  for (size_t i = 0; i < no; i++) adout[i] = fabsf(dout[i]);
  float *din = calloc(ni, 4), *rdin = calloc(ni, 4), *dbound = calloc(ni, 4);
  float *scratch_w = calloc(nw, 4), *scratch_b = calloc(g.OC, 4);
  naive_conv_backward(&g, ain, aw, adout, dbound, scratch_w, scratch_b);
  assert_int_equal(ser_conv2d_backward(rdin, NULL, NULL, dout, in, w, &g), 0);
  assert_int_equal(ser_set_amp(1), 0);
  assert_int_equal(ser_conv2d_backward(din, NULL, NULL, dout, in, w, &g), 0);
  ser_set_amp(0);
  worst = 0, worst_ratio = 0;
  for (size_t i = 0; i < ni; i++) {
    double d = fabs(din[i] - rdin[i]);
    worst = fmax(worst, d);
    worst_ratio = fmax(worst_ratio, d / (ldexp(dbound[i], -7) + 1e-5));
  }
  printf("  amp din vs fp32: worst abs err %.3g, worst err / bound %.3f\n", worst, worst_ratio);
  assert_true(worst > 0.0);
  assert_true(worst_ratio <= 1.0);
  free(dout), free(adout), free(din), free(rdin), free(dbound), free(scratch_w), free(scratch_b);
  free(in), free(w), free(out), free(ref), free(ain), free(aw), free(bound);
}

/* amp on the im2col path (a CNN1D layer: the weight packed to bf16 once per
 * call, column blocks across images): forward and input gradient within the
 * same bf16 bound as above. */
static void test_amp_im2col_conv1d(void **state) {
  (void)state;
  if (!ser_bf16_supported()) {
    printf("skip: AVX512-BF16 %s\n", ser_cpu_why_not(SER_CPU_AVX512BF16));
    skip();
  }
  ser_conv_geom g = GEOM(3, 24, 1, 700, 32, 1, 9, 1, 2, 0, 4, 1, 1);
  assert_int_equal(ser_conv_geom_init(&g, "test"), 0);
  int prev = ser_conv_set_winograd1d(0); /* this geometry would take the Winograd path */
  size_t ni = (size_t)g.B * g.C * g.W, nw = (size_t)g.OC * g.C * 9, no = (size_t)g.B * g.OC * g.OW;
  float *in = randbuf(ni, 1), *w = randbuf(nw, 2), *dout = randbuf(no, 3);
  float *ain = malloc(ni * 4), *aw = malloc(nw * 4), *adout = malloc(no * 4);
  for (size_t i = 0; i < ni; i++) ain[i] = fabsf(in[i]);
  for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
  for (size_t i = 0; i < no; i++) adout[i] = fabsf(dout[i]);
  float *out = calloc(no, 4), *ref = calloc(no, 4), *bound = calloc(no, 4);
  float *din = calloc(ni, 4), *rdin = calloc(ni, 4), *dbound = calloc(ni, 4), *sw = calloc(nw, 4), *sb = calloc(g.OC, 4);
  naive_conv(&g, ain, aw, NULL, bound);
  naive_conv_backward(&g, ain, aw, adout, dbound, sw, sb);
  for (int t = 1; t <= 2; t++) {
    ser_set_num_threads(t);
    assert_int_equal(ser_conv2d_forward(ref, in, w, NULL, &g), 0);
    memset(rdin, 0, ni * 4);
    assert_int_equal(ser_conv2d_backward(rdin, NULL, NULL, dout, in, w, &g), 0);
    assert_int_equal(ser_set_amp(1), 0);
    assert_int_equal(ser_conv2d_forward(out, in, w, NULL, &g), 0);
    memset(din, 0, ni * 4);
    assert_int_equal(ser_conv2d_backward(din, NULL, NULL, dout, in, w, &g), 0);
    ser_set_amp(0);
    double wf = 0, wd = 0, rf = 0, rd = 0;
    for (size_t i = 0; i < no; i++) {
      wf = fmax(wf, fabs(out[i] - ref[i]));
      rf = fmax(rf, fabs(out[i] - ref[i]) / (ldexp(bound[i], -7) + 1e-5));
    }
    for (size_t i = 0; i < ni; i++) {
      wd = fmax(wd, fabs(din[i] - rdin[i]));
      rd = fmax(rd, fabs(din[i] - rdin[i]) / (ldexp(dbound[i], -7) + 1e-5));
    }
    printf("  %d thread(s): amp forward err %.3g (/bound %.3f), din err %.3g (/bound %.3f)\n", t, wf, rf, wd, rd);
    assert_true(wf > 0.0 && wd > 0.0);
    assert_true(rf <= 1.0 && rd <= 1.0);
  }
  ser_conv_set_winograd1d(prev);
  ser_set_num_threads(0);
  free(in), free(w), free(dout), free(ain), free(aw), free(adout), free(out), free(ref), free(bound);
  free(din), free(rdin), free(dbound), free(sw), free(sb);
}

/* PyTorch parity: forward, and the gradients of L = sum(y * R). */
static void parity(const char *p, int is1d, const int64_t *xs, const int64_t *ws, int64_t oc, const int64_t *ys,
                   ser_conv_opts o) {
  int nd = is1d ? 3 : 4;
  char name[64];
#define FIX(suffix, shape) (snprintf(name, sizeof name, "%s_%s", p, suffix), fixture_tensor(name, nd, shape))
  ser_tensor *x = FIX("x", xs), *w = FIX("weight", ws), *y_ref = FIX("y", ys), *R = FIX("R", ys);
  ser_tensor *dx_ref = FIX("dx", xs), *dw_ref = FIX("dweight", ws);
  snprintf(name, sizeof name, "%s_bias", p);
  ser_tensor *b = fixture_tensor(name, 1, (int64_t[]){oc});
  snprintf(name, sizeof name, "%s_dbias", p);
  ser_tensor *db_ref = fixture_tensor(name, 1, (int64_t[]){oc});
  x->requires_grad = w->requires_grad = b->requires_grad = 1;
  ser_tensor *y = NULL;
  assert_int_equal(is1d ? ser_conv1d(&y, x, w, b, &o) : ser_conv2d(&y, x, w, b, &o), 0);
  assert_true(ser_tensor_same_shape(y, y_ref));
  assert_close_abs("y", ser_tensor_data(y), ser_tensor_data(y_ref), ser_tensor_numel(y), 1e-4);
  assert_int_equal(ser_backward(y, R, 0), 0);
  assert_close_abs("dx", ser_tensor_data(x->grad), ser_tensor_data(dx_ref), ser_tensor_numel(x), 1e-4);
  assert_close_abs("dweight", ser_tensor_data(w->grad), ser_tensor_data(dw_ref), ser_tensor_numel(w), 1e-4);
  assert_close_abs("dbias", ser_tensor_data(b->grad), ser_tensor_data(db_ref), oc, 1e-4);
  ser_tensor *all[] = {x, w, b, y, y_ref, R, dx_ref, dw_ref, db_ref};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
#undef FIX
}

static void test_conv2d_parity(void **state) {
  (void)state;
  ser_conv_opts o = SER_CONV_OPTS_DEFAULT;
  o.padding[0] = o.padding[1] = 1;
  parity("conv2d", 0, SER_DIMS(2, 3, 5, 7), SER_DIMS(4, 3, 3, 3), 4, SER_DIMS(2, 4, 5, 7), o);
}

static void test_conv1d_parity(void **state) {
  (void)state;
  ser_conv_opts o = SER_CONV_OPTS_DEFAULT;
  o.stride[0] = 2;
  o.padding[0] = 4;
  parity("conv1d", 1, SER_DIMS(2, 2, 40), SER_DIMS(3, 2, 9), 3, SER_DIMS(2, 3, 20), o);
}

static void expect_error(int rc, const char *needle) {
  printf("  error: %s\n", ser_errmsg());
  assert_int_equal(rc, SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), needle));
}

static void test_shape_errors(void **state) {
  (void)state;
  ser_tensor *x = ser_tensor_zeros(4, SER_DIMS(4, 8, 64, 128)), *w = ser_tensor_zeros(4, SER_DIMS(32, 16, 3, 3));
  ser_tensor *w1 = ser_tensor_zeros(3, SER_DIMS(32, 8, 3)), *b = ser_tensor_zeros(1, SER_DIMS(31));
  ser_tensor *w8 = ser_tensor_zeros(4, SER_DIMS(32, 8, 3, 3)), *big = ser_tensor_zeros(4, SER_DIMS(2, 8, 70, 3));
  ser_tensor *y = NULL;
  expect_error(ser_conv2d(&y, x, w, NULL, NULL),
               "conv2d: input has 8 channels, weight expects 16; input [4,8,64,128], weight [32,16,3,3]");
  expect_error(ser_conv2d(&y, x, w1, NULL, NULL), "weight must be 4D");
  expect_error(ser_conv1d(&y, x, w1, NULL, NULL), "conv1d: input must be 3D [B,C,L], got [4,8,64,128]");
  expect_error(ser_conv2d(&y, x, w8, b, NULL), "bias must be [32]");
  ser_conv_opts o = SER_CONV_OPTS_DEFAULT;
  o.stride[1] = 0;
  expect_error(ser_conv2d(&y, x, w8, NULL, &o), "stride must be >= 1");
  o = SER_CONV_OPTS_DEFAULT;
  o.padding[0] = -1;
  expect_error(ser_conv2d(&y, x, w8, NULL, &o), "padding must be >= 0");
  ser_tensor *w0 = ser_tensor_zeros(4, SER_DIMS(32, 8, 0, 3));
  expect_error(ser_conv2d(&y, x, w0, NULL, NULL), "conv2d: kernel size must be >= 1, got 0x3");
  ser_tensor_release(w0);
  ser_tensor *x2 = ser_tensor_zeros(4, SER_DIMS(2, 8, 2, 2));
  expect_error(ser_conv2d(&y, x2, w8, NULL, NULL), "does not fit the input 2x2");
  assert_null(y);
  ser_tensor *all[] = {x, w, w1, b, w8, big, x2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

/* Empty sizes are valid, as in PyTorch: an empty batch gives an empty output,
 * zero input channels leave only the bias. */
static void test_empty_sizes(void **state) {
  (void)state;
  ser_tensor *x = ser_tensor_zeros(4, SER_DIMS(0, 3, 5, 5)), *w = ser_tensor_zeros(4, SER_DIMS(2, 3, 3, 3)), *y = NULL;
  assert_int_equal(ser_conv2d(&y, x, w, NULL, NULL), 0);
  assert_int_equal(y->shape[0], 0);
  assert_int_equal(y->shape[2], 3);
  ser_tensor *x0 = ser_tensor_zeros(4, SER_DIMS(2, 0, 5, 5)), *w0 = ser_tensor_zeros(4, SER_DIMS(2, 0, 3, 3));
  ser_tensor *b = ser_tensor_full(1, SER_DIMS(2), 1.5f), *y0 = NULL;
  assert_int_equal(ser_conv2d(&y0, x0, w0, b, NULL), 0);
  for (int64_t i = 0; i < ser_tensor_numel(y0); i++) assert_float_equal(ser_tensor_data(y0)[i], 1.5f, 0);
  ser_tensor *all[] = {x, w, y, x0, w0, b, y0};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

/* A non-contiguous input (a permuted view) gives the same result as its copy. */
static void test_noncontiguous_input(void **state) {
  (void)state;
  ser_tensor *base = ser_tensor_empty(4, SER_DIMS(2, 6, 5, 3)), *w = ser_tensor_empty(4, SER_DIMS(4, 3, 3, 3));
  ser_tensor_fill_uniform(base, -1, 1, NULL);
  ser_tensor_fill_uniform(w, -1, 1, NULL);
  ser_tensor *xp = NULL;
  assert_int_equal(ser_tensor_permute_raw(&xp, base, (int[]){0, 3, 2, 1}), 0); /* [2,3,5,6], strided */
  ser_tensor *xc = ser_tensor_clone_raw(xp), *y1 = NULL, *y2 = NULL;
  assert_int_equal(ser_conv2d(&y1, xp, w, NULL, NULL), 0);
  assert_int_equal(ser_conv2d(&y2, xc, w, NULL, NULL), 0);
  assert_close_abs("permuted input", ser_tensor_data(y1), ser_tensor_data(y2), ser_tensor_numel(y1), 0);
  ser_tensor *all[] = {base, w, xp, xc, y1, y2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kernel_geometries), cmocka_unit_test(test_winograd),
      cmocka_unit_test(test_winograd1d),        cmocka_unit_test(test_direct_c1),
      cmocka_unit_test(test_amp_winograd1d),
      cmocka_unit_test(test_amp_close_to_fp32),   cmocka_unit_test(test_amp_im2col_conv1d),
      cmocka_unit_test(test_conv2d_parity),     cmocka_unit_test(test_conv1d_parity),
      cmocka_unit_test(test_shape_errors),      cmocka_unit_test(test_noncontiguous_input),
      cmocka_unit_test(test_empty_sizes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
