/* Pooling: PyTorch parity (max_pool2d with indices, adaptive average 1d/2d),
 * hand-checked cases (padding, strides, 1-d, NaN, adaptive windows of
 * uneven size, average pooling) and errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fixture.h"

static void release_all(ser_tensor **t, size_t n) {
  for (size_t i = 0; i < n; i++) ser_tensor_release(t[i]);
}

static void test_maxpool2d_parity(void **state) {
  (void)state;
  const int64_t *xs = SER_DIMS(2, 3, 5, 7), *ys = SER_DIMS(2, 3, 2, 3);
  ser_tensor *x = fixture_tensor("maxpool2d_x", 4, xs), *y_ref = fixture_tensor("maxpool2d_y", 4, ys);
  ser_tensor *R = fixture_tensor("maxpool2d_R", 4, ys), *dx_ref = fixture_tensor("maxpool2d_dx", 4, xs);
  ser_tensor *idx_ref = fixture_tensor("maxpool2d_idx", 4, ys), *y = NULL, *idx = NULL;
  x->requires_grad = 1;
  ser_pool_opts o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool2d(&y, &idx, x, &o), 0);
  assert_true(ser_tensor_same_shape(y, y_ref));
  assert_close_abs("y", ser_tensor_data(y), ser_tensor_data(y_ref), 36, 0);
  assert_close_abs("indices", ser_tensor_data(idx), ser_tensor_data(idx_ref), 36, 0);
  assert_int_equal(ser_backward(y, R, 0), 0);
  assert_close_abs("dx", ser_tensor_data(x->grad), ser_tensor_data(dx_ref), 210, 1e-6);
  ser_tensor *all[] = {x, y_ref, R, dx_ref, idx_ref, y, idx};
  release_all(all, sizeof all / sizeof *all);
}

static void adaptive_parity(const char *p, int nd, const int64_t *xs, const int64_t *ys, size_t nx, size_t ny) {
  char name[64];
  snprintf(name, sizeof name, "%s_x", p);
  ser_tensor *x = fixture_tensor(name, nd, xs);
  snprintf(name, sizeof name, "%s_y", p);
  ser_tensor *y_ref = fixture_tensor(name, nd, ys);
  snprintf(name, sizeof name, "%s_R", p);
  ser_tensor *R = fixture_tensor(name, nd, ys);
  snprintf(name, sizeof name, "%s_dx", p);
  ser_tensor *dx_ref = fixture_tensor(name, nd, xs), *y = NULL;
  x->requires_grad = 1;
  assert_int_equal(nd == 4 ? ser_adaptive_avg_pool2d(&y, x, 1, 1) : ser_adaptive_avg_pool1d(&y, x, 1), 0);
  assert_true(ser_tensor_same_shape(y, y_ref));
  assert_close_abs("y", ser_tensor_data(y), ser_tensor_data(y_ref), ny, 1e-6);
  assert_int_equal(ser_backward(y, R, 0), 0);
  assert_close_abs("dx", ser_tensor_data(x->grad), ser_tensor_data(dx_ref), nx, 1e-6);
  ser_tensor *all[] = {x, y_ref, R, dx_ref, y};
  release_all(all, sizeof all / sizeof *all);
}

static void test_adaptive2d_parity(void **state) {
  (void)state;
  adaptive_parity("adaptavg2d", 4, SER_DIMS(2, 3, 5, 7), SER_DIMS(2, 3, 1, 1), 210, 6);
}

static void test_adaptive1d_parity(void **state) {
  (void)state;
  adaptive_parity("adaptavg1d", 3, SER_DIMS(2, 3, 11), SER_DIMS(2, 3, 1), 66, 6);
}

/* x = 0..n-1 in one plane makes every window's max / mean easy to state. */
static ser_tensor *ramp(int nd, const int64_t *shape) {
  ser_tensor *t = ser_tensor_empty(nd, shape);
  for (int64_t i = 0; i < ser_tensor_numel(t); i++) ser_tensor_data(t)[i] = (float)i;
  return t;
}

static void test_maxpool_padding_stride_1d(void **state) {
  (void)state;
  /* [1,1,4,5] ramp, kernel 3, stride 2, padding 1 -> 2x3; the window of (0,0)
   * covers rows -1..1, cols -1..1, so its max is x[1][1] = 6. */
  ser_tensor *x = ramp(4, SER_DIMS(1, 1, 4, 5)), *y = NULL, *idx = NULL;
  ser_pool_opts o = {{3, 3}, {2, 2}, {1, 1}};
  assert_int_equal(ser_max_pool2d(&y, &idx, x, &o), 0);
  float want[6] = {6, 8, 9, 16, 18, 19};
  assert_int_equal(ser_tensor_numel(y), 6);
  assert_close_abs("padded max", ser_tensor_data(y), want, 6, 0);
  assert_close_abs("padded idx", ser_tensor_data(idx), want, 6, 0); /* ramp: value == index */
  ser_tensor *l = ramp(3, SER_DIMS(1, 2, 7)), *yl = NULL;
  ser_pool_opts o1 = {{2, 0}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool1d(&yl, NULL, l, &o1), 0);
  float want1[6] = {1, 3, 5, 8, 10, 12}; /* floor: the 7th element of each row is dropped */
  assert_int_equal(yl->shape[2], 3);
  assert_close_abs("max_pool1d", ser_tensor_data(yl), want1, 6, 0);
  ser_tensor *all[] = {x, y, idx, l, yl};
  release_all(all, sizeof all / sizeof *all);
}

static void test_maxpool_nan_propagates(void **state) {
  (void)state;
  float v[4] = {1, NAN, 3, 2};
  ser_tensor *x = ser_tensor_from_data(4, SER_DIMS(1, 1, 2, 2), v), *y = NULL;
  ser_pool_opts o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool2d(&y, NULL, x, &o), 0);
  assert_true(isnan(ser_tensor_data(y)[0]));
  ser_tensor_release(x);
  ser_tensor_release(y);
}

/* ---- the 2x2 kernels (MaxPool2d(2)) against plain loops ------------------ */

static float nan_bits(uint32_t payload) { /* NaNs told apart by their bits: which one won */
  uint32_t u = 0x7fc00000u | payload;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Random values (no zeros, so no -0.0: the AVX-512 backward writes dout where
 * the scatter adds it to +0.0) with cases planted window by window: ties for
 * the max between two or four candidates (the first one wins), NaNs alone
 * and two in a window (the first one wins), +inf; and NaN or +inf in the
 * last row and column when they are in no window (odd H, W). */
static float *pool_input(int planes, int H, int W, ser_rng *rng) {
  size_t n = (size_t)planes * H * W;
  float *d = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) {
    d[i] = ser_rng_normal(rng);
    if (d[i] == 0) d[i] = 0.25f;
  }
  int j = 0;
  for (int p = 0; p < planes; p++)
    for (int h = 0; h + 1 < H; h += 2)
      for (int w = 0; w + 1 < W; w += 2, j++) {
        float *t = d + ((size_t)p * H + h) * W + w, *c[4] = {t, t + 1, t + W, t + W + 1}; /* candidate order */
        switch (j % 9) {
        case 1: *c[1] = *c[3] = 5.0f; break;
        case 2: *c[0] = *c[2] = 5.0f; break;
        case 3: *c[0] = *c[1] = *c[2] = *c[3]; break;
        case 4: *c[2] = nan_bits((uint32_t)j & 0xffff); break;
        case 5: *c[1] = nan_bits(1), *c[3] = nan_bits(2); break;
        case 6: *c[0] = nan_bits(3), *c[2] = nan_bits(4); break;
        case 7: *c[3] = INFINITY, *c[0] = 5.0f; break;
        default: break;
        }
      }
  for (int p = 0; p < planes; p++) { /* outside every window: must not win */
    if (W % 2)
      for (int h = 0; h < H; h++) d[((size_t)p * H + h) * W + W - 1] = h % 2 ? NAN : INFINITY;
    if (H % 2)
      for (int w = 0; w < W; w++) d[((size_t)p * H + H - 1) * W + w] = w % 2 ? NAN : INFINITY;
  }
  return d;
}

/* The scalar rules written out: candidates (0,0), (0,1), (1,0), (1,1); a later
 * one wins only if greater, or a NaN over a number; rows and columns beyond
 * 2*OH, 2*OW are in no window. */
static void ref_forward(float *y, int32_t *ix, const float *x, const ser_pool_geom *g) {
  for (int p = 0; p < g->B * g->C; p++)
    for (int oh = 0; oh < g->OH; oh++)
      for (int ow = 0; ow < g->OW; ow++) {
        float best = 0;
        int at = -1;
        for (int h = 2 * oh; h < 2 * oh + 2; h++)
          for (int w = 2 * ow; w < 2 * ow + 2; w++) {
            float v = x[((size_t)p * g->H + h) * g->W + w];
            if (at < 0 || (!isnan(best) && (v > best || isnan(v)))) best = v, at = h * g->W + w;
          }
        y[((size_t)p * g->OH + oh) * g->OW + ow] = best;
        ix[((size_t)p * g->OH + oh) * g->OW + ow] = at;
      }
}

/* din (+)= dout at each window's argmax; overwrite: from zeros. */
static void ref_backward(float *din, const float *dout, const int32_t *ix, const ser_pool_geom *g, int overwrite) {
  size_t plane = (size_t)g->H * g->W, n = (size_t)g->OH * g->OW;
  if (overwrite) memset(din, 0, sizeof(float) * plane * g->B * g->C);
  for (size_t p = 0; p < (size_t)g->B * g->C; p++)
    for (size_t i = 0; i < n; i++) din[p * plane + ix[p * n + i]] += dout[p * n + i];
}

/* Element-by-element bit comparison (NaN payloads included); prints the first few. */
static int bits_differ(const char *what, const void *got, const void *want, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t a, b;
    memcpy(&a, (const char *)got + 4 * i, 4);
    memcpy(&b, (const char *)want + 4 * i, 4);
    if (a != b && bad++ < 5) printf("    %s [%zu]: got bits %08x, want %08x\n", what, i, a, b);
  }
  return bad;
}

/* One shape through the kernels the current ser_pool_set_isa choice runs:
 * forward values and indices, the accumulating backward (onto random values)
 * and the overwriting one (onto NaNs: every element must be written). */
static int check_2x2(int B, int C, int H, int W, ser_rng *rng) {
  ser_pool_geom g = {B, C, H, W, 2, 2, 2, 2, 0, 0, 0, 0};
  assert_int_equal(ser_pool_geom_init(&g, "test"), 0);
  size_t ni = (size_t)B * C * H * W, no = (size_t)B * C * g.OH * g.OW;
  float *x = pool_input(B * C, H, W, rng), *y = malloc(4 * no), *ry = malloc(4 * no), *dy = malloc(4 * no);
  int32_t *ix = malloc(4 * no), *rix = malloc(4 * no);
  float *din = malloc(4 * ni), *rdin = malloc(4 * ni);
  for (size_t i = 0; i < no; i++) y[i] = NAN, ix[i] = -7, dy[i] = ser_rng_uniform(rng) + 0.5f;
  ref_forward(ry, rix, x, &g);
  ser_maxpool2d_forward(y, ix, x, &g);
  int bad = bits_differ("max", y, ry, no) + bits_differ("argmax", ix, rix, no);
  for (size_t i = 0; i < ni; i++) din[i] = rdin[i] = ser_rng_uniform(rng) - 2.0f;
  ser_maxpool2d_backward(din, dy, rix, &g);
  ref_backward(rdin, dy, rix, &g, 0);
  bad += bits_differ("din (added)", din, rdin, ni);
  for (size_t i = 0; i < ni; i++) din[i] = NAN;
  ser_maxpool2d_backward_overwrite(din, dy, rix, &g);
  ref_backward(rdin, dy, rix, &g, 1);
  bad += bits_differ("din (written)", din, rdin, ni);
  if (bad) printf("  [%d,%d,%d,%d]: %d elements differ\n", B, C, H, W, bad);
  free(x), free(y), free(ry), free(dy), free(ix), free(rix), free(din), free(rdin);
  return bad;
}

/* Every 2x2 kernel this CPU runs (scalar; AVX2: 8 windows per step; AVX-512:
 * 16), not only the one dispatch picks. Widths whose OW leaves remainders
 * after 8 and 16 windows, OW below 8, and odd H and W (a row and a column in
 * no window). */
static void test_maxpool_2x2_fast_path(void **state) {
  (void)state;
  static const int shapes[][4] = {{2, 3, 10, 71},  /* OW 35: 4x8 + 3, 2x16 + 3; odd W */
                                  {1, 2, 9, 27},   /* OW 13, odd H and W */
                                  {1, 1, 5, 7},    /* OW 3: remainder only */
                                  {1, 3, 3, 33},   /* OW 16, OH 1 */
                                  {2, 2, 6, 250},  /* OW 125: CRNN's first pooling */
                                  {2, 4, 21, 250}}; /* 42000 inputs: over the OpenMP threshold */
  static const char *names[] = {"scalar", "avx2", "avx512"};
  int best = ser_pool_best_isa(), prev = ser_pool_set_isa(SER_POOL_SCALAR);
  assert_int_equal(prev, best); /* the default: the widest there is */
  ser_rng rng;
  for (int isa = SER_POOL_SCALAR; isa <= best; isa++) {
    ser_pool_set_isa(isa);
    int bad = 0;
    ser_rng_seed(&rng, 7);
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
      bad += check_2x2(shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3], &rng);
    printf("  %s: %d differences\n", names[isa], bad);
    assert_int_equal(bad, 0);
  }
  assert_int_equal(ser_pool_set_isa(SER_POOL_AVX512 + 1), best); /* beyond the CPU: lowered to it */
  assert_int_equal(ser_pool_set_isa(prev), best);
}

static void test_avgpool(void **state) {
  (void)state;
  /* [1,1,4,4] ramp, kernel 2, stride 2 -> means of 2x2 blocks; padded case
   * counts the zero padding (count_include_pad=True). */
  ser_tensor *x = ramp(4, SER_DIMS(1, 1, 4, 4)), *y = NULL, *yp = NULL;
  x->requires_grad = 1;
  ser_pool_opts o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_avg_pool2d(&y, x, &o), 0);
  float want[4] = {2.5f, 4.5f, 10.5f, 12.5f};
  assert_close_abs("avg", ser_tensor_data(y), want, 4, 1e-6);
  ser_tensor *g = ser_tensor_full(4, SER_DIMS(1, 1, 2, 2), 1.0f);
  assert_int_equal(ser_backward(y, g, 0), 0);
  for (int i = 0; i < 16; i++) assert_float_equal(ser_tensor_data(x->grad)[i], 0.25f, 1e-7);
  ser_pool_opts op = {{2, 2}, {2, 2}, {1, 1}};
  assert_int_equal(ser_avg_pool2d(&yp, x, &op), 0); /* 3x3: corner window holds only x[0][0] = 0 */
  float wantp[9] = {0, (1 + 2) / 4.0f, 3 / 4.0f, (4 + 8) / 4.0f, (5 + 6 + 9 + 10) / 4.0f, (7 + 11) / 4.0f,
                    12 / 4.0f, (13 + 14) / 4.0f, 15 / 4.0f};
  assert_close_abs("avg padded", ser_tensor_data(yp), wantp, 9, 1e-6);
  ser_tensor *l = ramp(3, SER_DIMS(1, 1, 6)), *yl = NULL;
  ser_pool_opts o1 = {{3, 0}, {0, 0}, {0, 0}};
  assert_int_equal(ser_avg_pool1d(&yl, l, &o1), 0);
  float want1[2] = {1, 4};
  assert_close_abs("avg_pool1d", ser_tensor_data(yl), want1, 2, 1e-6);
  ser_tensor *all[] = {x, y, yp, g, l, yl};
  release_all(all, sizeof all / sizeof *all);
}

/* Output sizes that do not divide the input: PyTorch's overlapping windows
 * [floor(i*n/o), ceil((i+1)*n/o)). For n = 5, o = 3: [0,2), [1,4), [3,5). */
static void test_adaptive_general_size(void **state) {
  (void)state;
  ser_tensor *x = ramp(4, SER_DIMS(1, 1, 5, 5)), *y = NULL;
  x->requires_grad = 1;
  assert_int_equal(ser_adaptive_avg_pool2d(&y, x, 3, 2), 0); /* cols: [0,3), [2,5) */
  int hs[3][2] = {{0, 2}, {1, 4}, {3, 5}}, ws[2][2] = {{0, 3}, {2, 5}};
  float want[6];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) {
      double s = 0;
      for (int h = hs[i][0]; h < hs[i][1]; h++)
        for (int w = ws[j][0]; w < ws[j][1]; w++) s += h * 5 + w;
      want[i * 2 + j] = (float)(s / ((hs[i][1] - hs[i][0]) * (ws[j][1] - ws[j][0])));
    }
  assert_close_abs("adaptive 3x2", ser_tensor_data(y), want, 6, 1e-5);
  ser_tensor *g = ser_tensor_full(4, SER_DIMS(1, 1, 3, 2), 1.0f);
  assert_int_equal(ser_backward(y, g, 0), 0);
  /* x[1][2] is in row windows 0 and 1 (sizes 2, 3) and both col windows (3, 3) */
  float d = 1.0f / 6 + 1.0f / 6 + 1.0f / 9 + 1.0f / 9;
  assert_float_equal(ser_tensor_data(x->grad)[1 * 5 + 2], d, 1e-6);
  ser_tensor *all[] = {x, y, g};
  release_all(all, sizeof all / sizeof *all);
}

/* Output size = input size (CNN2D's bands with time kept): the copy path, forward and
 * gradient, the gradient both into a fresh buffer and added to one that holds a value. */
static void test_adaptive_identity_size(void **state) {
  (void)state;
  ser_tensor *x = ramp(4, SER_DIMS(2, 3, 4, 9)), *y = NULL, *y2 = NULL;
  x->requires_grad = 1;
  assert_int_equal(ser_adaptive_avg_pool2d(&y, x, 4, 9), 0);
  assert_int_equal(y->ndim, 4);
  assert_int_equal(y->shape[2], 4);
  assert_int_equal(y->shape[3], 9);
  assert_memory_equal(ser_tensor_data(y), ser_tensor_data(x), sizeof(float) * 216);
  ser_tensor *g = ramp(4, SER_DIMS(2, 3, 4, 9));
  assert_int_equal(ser_backward(y, g, 0), 0);
  assert_memory_equal(ser_tensor_data(x->grad), ser_tensor_data(g), sizeof(float) * 216);
  ser_tensor *x3 = NULL, *g3 = ramp(3, SER_DIMS(6, 4, 9));
  assert_int_equal(ser_view(&x3, x, 3, SER_DIMS(6, 4, 9)), 0);
  assert_int_equal(ser_adaptive_avg_pool1d(&y2, x3, 9), 0);
  assert_int_equal(ser_backward(y2, g3, 0), 0);   /* through the view: adds to x->grad */
  for (int i = 0; i < 216; i++) assert_float_equal(ser_tensor_data(x->grad)[i], 2.0f * ser_tensor_data(g)[i], 0);
  ser_tensor *all[] = {x, y, y2, g, x3, g3};
  release_all(all, sizeof all / sizeof *all);
}

/* Rows pooled, columns kept (CNN2D with freq = "mean": bands averaged, time kept): the
 * row-wise path, against the window formula by hand, and its gradient into a fresh buffer and
 * added to one that holds a value. H = 5 -> 3: overlapping row windows [0,2), [1,4), [3,5). */
static void test_adaptive_columns_kept(void **state) {
  (void)state;
  ser_tensor *x = ramp(4, SER_DIMS(2, 3, 5, 7)), *y = NULL, *y2 = NULL;
  x->requires_grad = 1;
  assert_int_equal(ser_adaptive_avg_pool2d(&y, x, 3, 7), 0);
  const int hs[3][2] = {{0, 2}, {1, 4}, {3, 5}};
  float want[2 * 3 * 3 * 7], dwant[2 * 3 * 5 * 7] = {0};
  const float *xd = ser_tensor_data(x);
  ser_tensor *g = ramp(4, SER_DIMS(2, 3, 3, 7));
  const float *gd = ser_tensor_data(g);
  for (int p = 0; p < 6; p++)
    for (int i = 0; i < 3; i++)
      for (int w = 0; w < 7; w++) {
        double s = 0;
        int n = hs[i][1] - hs[i][0];
        for (int h = hs[i][0]; h < hs[i][1]; h++) {
          s += xd[(p * 5 + h) * 7 + w];
          dwant[(p * 5 + h) * 7 + w] += gd[(p * 3 + i) * 7 + w] / (float)n;
        }
        want[(p * 3 + i) * 7 + w] = (float)(s / n);
      }
  assert_close_abs("adaptive rows 5->3, columns kept", ser_tensor_data(y), want, 126, 1e-4);
  assert_int_equal(ser_backward(y, g, 0), 0);
  assert_close_abs("its gradient", ser_tensor_data(x->grad), dwant, 210, 1e-4);   /* values up to ~130: a few ulps */
  ser_tensor *x3 = NULL;
  assert_int_equal(ser_view(&x3, x, 4, SER_DIMS(2, 3, 5, 7)), 0);
  assert_int_equal(ser_adaptive_avg_pool2d(&y2, x3, 3, 7), 0);
  assert_int_equal(ser_backward(y2, g, 0), 0);   /* through the view: adds to x->grad */
  for (int i = 0; i < 210; i++) dwant[i] *= 2.0f;
  assert_close_abs("the gradient added", ser_tensor_data(x->grad), dwant, 210, 1e-4);
  ser_tensor *all[] = {x, y, y2, g, x3};
  release_all(all, sizeof all / sizeof *all);
}

static void test_errors(void **state) {
  (void)state;
  ser_tensor *x = ser_tensor_zeros(4, SER_DIMS(2, 3, 5, 7)), *l = ser_tensor_zeros(3, SER_DIMS(2, 3, 5)), *y = NULL;
  ser_pool_opts big = {{9, 9}, {0, 0}, {0, 0}}, pad = {{2, 2}, {0, 0}, {2, 2}}, o = {{2, 2}, {0, 0}, {0, 0}};
  assert_int_equal(ser_max_pool2d(&y, NULL, x, &big), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "window 9x9 does not fit the input 5x7"));
  assert_int_equal(ser_avg_pool2d(&y, x, &pad), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "padding must be in [0, kernel/2]"));
  assert_int_equal(ser_max_pool2d(&y, NULL, l, &o), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "max_pool2d: input must be 4D [B,C,H,W], got [2,3,5]"));
  assert_int_equal(ser_adaptive_avg_pool2d(&y, x, 0, 1), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "output size must be >= 1"));
  assert_null(y);
  ser_tensor_release(x);
  ser_tensor_release(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_maxpool2d_parity),      cmocka_unit_test(test_adaptive2d_parity),
      cmocka_unit_test(test_adaptive1d_parity),     cmocka_unit_test(test_maxpool_padding_stride_1d),
      cmocka_unit_test(test_maxpool_nan_propagates), cmocka_unit_test(test_maxpool_2x2_fast_path),
      cmocka_unit_test(test_avgpool),
      cmocka_unit_test(test_adaptive_general_size), cmocka_unit_test(test_adaptive_identity_size),
      cmocka_unit_test(test_adaptive_columns_kept),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
