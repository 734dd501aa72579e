/* The transformer kernels (LayerNorm, GELU, scaled dot-product attention)
 * against plain double-precision references written out here, at every
 * instruction-set level of the row kernels this CPU has (the others skip):
 * forward values, backward values, the key-padding mask (masked keys and
 * values change nothing and get zero gradient), the op layer's error
 * messages, and Linear on [B, T, F] making no copy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "lib/fixture.h"
#include "ops/rowops.h"

/* A fixed pseudo-random fill in [-a, a) (no global RNG state touched). */
static void fill(float *x, int64_t n, uint32_t seed, float a) {
  uint32_t s = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = a * (2.0f * (float)(s >> 8) / 16777216.0f - 1.0f);
  }
}

static float *falloc(int64_t n) {
  float *p = calloc((size_t)n, sizeof(float));
  assert_non_null(p);
  return p;
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_grad_ref(double x) { return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI); }

/* Selects a row-kernel level for one test; skips (visibly) when the CPU lacks it. */
static int enter_level(int level) {
  if (level > ser_row_max_level()) {
    printf("skip: row-kernel level %d (%s) %s\n", level, level == 2 ? "AVX-512" : "AVX2+FMA",
           ser_cpu_why_not(level == 2 ? SER_CPU_AVX512F | SER_CPU_AVX512DQ | SER_CPU_AVX512VL : SER_CPU_AVX2 | SER_CPU_FMA));
    return -2;
  }
  return ser_row_set_level(level);
}

/* ---- GELU ------------------------------------------------------------------ */

static void check_gelu(int level) {
  int prev = enter_level(level);
  if (prev == -2) skip();
  /* every 1e-4 on [-12, 12] plus odd lengths to reach the vector tails */
  const int64_t n = 240001;
  float *x = falloc(n), *y = falloc(n), *d = falloc(n), *g = falloc(n);
  for (int64_t i = 0; i < n; i++) {
    x[i] = -12.0f + 1e-4f * (float)i;
    g[i] = 1.0f;
    d[i] = 0.5f; /* the backward accumulates onto this */
  }
  ser_gelu_forward(y, x, n);
  ser_gelu_backward(d, g, x, n);
  float *ip = falloc(n); /* in place gives the same bits */
  memcpy(ip, x, (size_t)n * sizeof(float));
  ser_gelu_forward(ip, ip, n);
  assert_memory_equal(ip, y, (size_t)n * sizeof(float));
  free(ip);
  double worst = 0, worst_g = 0;
  int64_t wi = 0, wgi = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs(y[i] - gelu_ref(x[i])), eg = fabs((d[i] - 0.5) - gelu_grad_ref(x[i]));
    if (e > worst) worst = e, wi = i;
    if (eg > worst_g) worst_g = eg, wgi = i;
  }
  printf("  level %d: gelu worst abs err %.3g at x=%g, gelu' worst abs err %.3g at x=%g\n", level, worst, x[wi],
         worst_g, x[wgi]);
  /* float rounding of the result alone is 6e-8 * |y| (7e-7 at |x| = 12) */
  assert_true(worst <= 1e-6);
  assert_true(worst_g <= 1e-6);
  for (int len = 1; len < 40; len++) { /* tails: each length against the long run */
    ser_gelu_forward(y, x + 1000, len);
    for (int i = 0; i < len; i++) assert_true(fabs(y[i] - gelu_ref(x[1000 + i])) <= 1e-6);
  }
  float sp[4] = {0.0f, -0.0f, NAN, 1e30f}, so[4];
  ser_gelu_forward(so, sp, 4);
  assert_true(so[0] == 0.0f && so[1] == 0.0f && isnan(so[2]) && so[3] == 1e30f);
  free(x), free(y), free(d), free(g);
  ser_row_set_level(-1);
}

static void test_gelu_base(void **state) { (void)state; check_gelu(0); }
static void test_gelu_avx2(void **state) { (void)state; check_gelu(1); }
static void test_gelu_avx512(void **state) { (void)state; check_gelu(2); }

/* ---- softmax rows ------------------------------------------------------------ */

static void check_softmax_rows(int level) {
  int prev = enter_level(level);
  if (prev == -2) skip();
  float x[101], y[101], dp[101], ds[101];
  for (int n = 1; n <= 101; n += 5) {
    fill(x, n, (uint32_t)n, 30.0f);
    fill(dp, n, (uint32_t)n + 7, 1.0f);
    ser_row_softmax(y, x, n);
    ser_row_softmax_backward(ds, y, dp, n, 0.5f);
    double mx = -INFINITY, sum = 0, dot = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) dot += exp((double)x[i] - mx) / sum * dp[i];
    for (int i = 0; i < n; i++) {
      double p = exp((double)x[i] - mx) / sum;
      assert_true(fabs(y[i] - p) <= 1e-6 * fmax(p, 1e-30) + 1e-12);
      assert_true(fabs(ds[i] - 0.5 * p * (dp[i] - dot)) <= 1e-6);
    }
  }
  /* -inf entries (masked scores) get probability exactly 0 */
  float m[5] = {1.0f, -INFINITY, 2.0f, -INFINITY, 0.5f};
  ser_row_softmax(m, m, 5);
  assert_true(m[1] == 0.0f && m[3] == 0.0f && fabs(m[0] + m[2] + m[4] - 1.0) < 1e-6);
  ser_row_set_level(-1);
}

static void test_softmax_rows_base(void **state) { (void)state; check_softmax_rows(0); }
static void test_softmax_rows_avx2(void **state) { (void)state; check_softmax_rows(1); }
static void test_softmax_rows_avx512(void **state) { (void)state; check_softmax_rows(2); }

/* ---- LayerNorm ------------------------------------------------------------------ */

static void layernorm_ref(double *out, double *mean, double *rstd, const float *x, const float *w, const float *b,
                          int rows, int dim, double eps) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (int64_t)r * dim;
    double m = 0, v = 0;
    for (int i = 0; i < dim; i++) m += xr[i];
    m /= dim;
    for (int i = 0; i < dim; i++) v += (xr[i] - m) * (xr[i] - m);
    double rs = 1.0 / sqrt(v / dim + eps);
    mean[r] = m, rstd[r] = rs;
    for (int i = 0; i < dim; i++)
      out[(int64_t)r * dim + i] = (xr[i] - m) * rs * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
  }
}

static void check_layernorm(int level, int rows, int dim, int affine) {
  int prev = enter_level(level);
  if (prev == -2) skip();
  const int64_t n = (int64_t)rows * dim;
  float *x = falloc(n), *y = falloc(n), *w = falloc(dim), *b = falloc(dim), *mean = falloc(rows), *rstd = falloc(rows);
  float *dout = falloc(n), *din = falloc(n), *dw = falloc(dim), *db = falloc(dim);
  double *yr = calloc((size_t)n, sizeof(double)), *mr = calloc((size_t)rows, sizeof(double)),
         *rr = calloc((size_t)rows, sizeof(double));
  fill(x, n, 1, 3.0f);
  for (int64_t i = 0; i < n; i++) x[i] += 5.0f; /* a mean far from 0 */
  fill(w, dim, 2, 1.5f);
  fill(b, dim, 3, 1.0f);
  fill(dout, n, 4, 1.0f);
  const float *wp = affine ? w : NULL, *bp = affine ? b : NULL;
  ser_layernorm_forward(y, mean, rstd, x, wp, bp, rows, dim, 1e-5f);
  layernorm_ref(yr, mr, rr, x, wp, bp, rows, dim, 1e-5);
  memcpy(din, x, (size_t)n * sizeof(float)); /* in place gives the same bits */
  ser_layernorm_forward(din, NULL, NULL, din, wp, bp, rows, dim, 1e-5f);
  assert_memory_equal(din, y, (size_t)n * sizeof(float));
  double worst = 0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] - yr[i]));
  for (int r = 0; r < rows; r++) {
    assert_true(fabs(mean[r] - mr[r]) <= 1e-6 * fabs(mr[r]) + 1e-6);
    assert_true(fabs(rstd[r] - rr[r]) <= 1e-6 * rr[r]);
  }
  /* backward: din, dw, db in double from the saved moments; accumulation onto 1 */
  for (int64_t i = 0; i < n; i++) din[i] = 1.0f;
  for (int i = 0; i < dim; i++) dw[i] = db[i] = 1.0f;
  ser_layernorm_backward(din, affine ? dw : NULL, affine ? db : NULL, dout, x, wp, mean, rstd, rows, dim);
  double worst_dx = 0, worst_dw = 0;
  double *dwr = calloc((size_t)dim, sizeof(double)), *dbr = calloc((size_t)dim, sizeof(double));
  for (int r = 0; r < rows; r++) {
    double sg = 0, sgx = 0;
    const int64_t o = (int64_t)r * dim;
    for (int i = 0; i < dim; i++) {
      double xh = (x[o + i] - mr[r]) * rr[r], g = dout[o + i] * (wp ? w[i] : 1.0);
      sg += g, sgx += g * xh;
      dwr[i] += dout[o + i] * xh, dbr[i] += dout[o + i];
    }
    for (int i = 0; i < dim; i++) {
      double xh = (x[o + i] - mr[r]) * rr[r], g = dout[o + i] * (wp ? w[i] : 1.0);
      double want = 1.0 + rr[r] * (g - sg / dim - xh * sgx / dim);
      worst_dx = fmax(worst_dx, fabs(din[o + i] - want));
    }
  }
  if (affine)
    for (int i = 0; i < dim; i++)
      worst_dw = fmax(worst_dw, fmax(fabs(dw[i] - 1.0 - dwr[i]), fabs(db[i] - 1.0 - dbr[i])) / fmax(1.0, fabs(dwr[i])));
  printf("  level %d, [%d, %d]%s: y worst abs err %.3g, din %.3g, dweight/dbias rel %.3g\n", level, rows, dim,
         affine ? "" : " (no affine)", worst, worst_dx, worst_dw);
  assert_true(worst <= 2e-6);
  assert_true(worst_dx <= 1e-5);
  assert_true(worst_dw <= 1e-5);
  free(x), free(y), free(w), free(b), free(mean), free(rstd), free(dout), free(din), free(dw), free(db);
  free(yr), free(mr), free(rr), free(dwr), free(dbr);
  ser_row_set_level(-1);
}

static void test_layernorm_base(void **state) {
  (void)state;
  check_layernorm(0, 7, 33, 1);
  check_layernorm(0, 3, 1, 1);
}
static void test_layernorm_avx2(void **state) {
  (void)state;
  check_layernorm(1, 7, 33, 1);
  check_layernorm(1, 5, 17, 0);
}
static void test_layernorm_avx512(void **state) {
  (void)state;
  check_layernorm(2, 7, 33, 1);
  check_layernorm(2, 5, 17, 0);
  /* threaded sizes (rows * dim > 65536): row split and column blocks */
  check_layernorm(2, 300, 512, 1);
}

/* ---- attention ------------------------------------------------------------------- */

typedef struct attn_case {
  int B, Tq, Tk, H, Dh;
  float scale;
  int32_t len[4];
  int masked;
} attn_case;

/* out and probs in double, straight from the definition */
static void attention_ref(double *out, double *probs, const float *q, const float *k, const float *v,
                          const attn_case *c) {
  const int E = c->H * c->Dh;
  double *s = calloc((size_t)c->Tk, sizeof(double));
  for (int b = 0; b < c->B; b++)
    for (int h = 0; h < c->H; h++)
      for (int i = 0; i < c->Tq; i++) {
        const int L = c->masked ? c->len[b] : c->Tk;
        const float *qi = q + ((int64_t)b * c->Tq + i) * E + h * c->Dh;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < L; j++) {
          const float *kj = k + ((int64_t)b * c->Tk + j) * E + h * c->Dh;
          double dot = 0;
          for (int d = 0; d < c->Dh; d++) dot += (double)qi[d] * kj[d];
          s[j] = c->scale * dot;
          mx = fmax(mx, s[j]);
        }
        for (int j = 0; j < L; j++) sum += exp(s[j] - mx);
        double *pr = probs + (((int64_t)b * c->H + h) * c->Tq + i) * c->Tk;
        for (int j = 0; j < c->Tk; j++) pr[j] = j < L ? exp(s[j] - mx) / sum : 0.0;
        double *o = out + ((int64_t)b * c->Tq + i) * E + h * c->Dh;
        for (int d = 0; d < c->Dh; d++) {
          double acc = 0;
          for (int j = 0; j < L; j++) acc += pr[j] * v[((int64_t)b * c->Tk + j) * E + h * c->Dh + d];
          o[d] = acc;
        }
      }
  free(s);
}

/* dq, dk, dv in double from the definition (P from the reference forward). */
static void attention_backward_ref(double *dq, double *dk, double *dv, const float *dout, const float *q,
                                   const float *k, const float *v, const double *probs, const attn_case *c) {
  const int E = c->H * c->Dh;
  double *dp = calloc((size_t)c->Tk, sizeof(double));
  for (int b = 0; b < c->B; b++)
    for (int h = 0; h < c->H; h++)
      for (int i = 0; i < c->Tq; i++) {
        const int L = c->masked ? c->len[b] : c->Tk;
        const double *pr = probs + (((int64_t)b * c->H + h) * c->Tq + i) * c->Tk;
        const int64_t qi = ((int64_t)b * c->Tq + i) * E + h * c->Dh;
        double dot = 0;
        for (int j = 0; j < L; j++) {
          const int64_t kj = ((int64_t)b * c->Tk + j) * E + h * c->Dh;
          dp[j] = 0;
          for (int d = 0; d < c->Dh; d++) {
            dp[j] += (double)dout[qi + d] * v[kj + d];
            dv[kj + d] += pr[j] * dout[qi + d];
          }
          dot += pr[j] * dp[j];
        }
        for (int j = 0; j < L; j++) {
          const int64_t kj = ((int64_t)b * c->Tk + j) * E + h * c->Dh;
          double ds = c->scale * pr[j] * (dp[j] - dot);
          for (int d = 0; d < c->Dh; d++) {
            dq[qi + d] += ds * k[kj + d];
            dk[kj + d] += ds * q[qi + d];
          }
        }
      }
  free(dp);
}

static double worst_abs(const float *got, const double *want, int64_t n, double base) {
  double w = 0;
  for (int64_t i = 0; i < n; i++) w = fmax(w, fabs(got[i] - base - want[i]));
  return w;
}

static void check_attention(const attn_case *c) {
  const int E = c->H * c->Dh;
  const int64_t nq = (int64_t)c->B * c->Tq * E, nk = (int64_t)c->B * c->Tk * E,
                np = (int64_t)c->B * c->H * c->Tq * c->Tk;
  float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *out = falloc(nq), *out2 = falloc(nq), *probs = falloc(np);
  float *dout = falloc(nq), *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
  double *outr = calloc((size_t)nq, sizeof(double)), *pr = calloc((size_t)np, sizeof(double));
  double *dqr = calloc((size_t)nq, sizeof(double)), *dkr = calloc((size_t)nk, sizeof(double)),
         *dvr = calloc((size_t)nk, sizeof(double));
  fill(q, nq, 11, 1.0f);
  fill(k, nk, 12, 1.0f);
  fill(v, nk, 13, 1.0f);
  fill(dout, nq, 14, 1.0f);
  const int32_t *len = c->masked ? c->len : NULL;
  assert_int_equal(ser_attention_forward(out, probs, q, k, v, len, c->B, c->Tq, c->Tk, c->H, c->Dh, c->scale), 0);
  assert_int_equal(ser_attention_forward(out2, NULL, q, k, v, len, c->B, c->Tq, c->Tk, c->H, c->Dh, c->scale), 0);
  attention_ref(outr, pr, q, k, v, c);
  double wo = worst_abs(out, outr, nq, 0), wo2 = worst_abs(out2, outr, nq, 0), wp = worst_abs(probs, pr, np, 0);
  for (int64_t i = 0; i < np; i++)
    if (pr[i] == 0.0) assert_true(probs[i] == 0.0f); /* masked: exactly 0 */
  for (int64_t i = 0; i < nq; i++) dq[i] = 1.0f;
  for (int64_t i = 0; i < nk; i++) dk[i] = dv[i] = 1.0f;
  assert_int_equal(ser_attention_backward(dq, dk, dv, dout, q, k, v, probs, len, c->B, c->Tq, c->Tk, c->H, c->Dh,
                                          c->scale),
                   0);
  attention_backward_ref(dqr, dkr, dvr, dout, q, k, v, pr, c);
  double wdq = worst_abs(dq, dqr, nq, 1.0), wdk = worst_abs(dk, dkr, nk, 1.0), wdv = worst_abs(dv, dvr, nk, 1.0);
  printf("  B %d Tq %d Tk %d H %d Dh %d%s: out %.3g (no probs %.3g), probs %.3g, dq %.3g, dk %.3g, dv %.3g\n", c->B,
         c->Tq, c->Tk, c->H, c->Dh, c->masked ? " masked" : "", wo, wo2, wp, wdq, wdk, wdv);
  assert_true(wo <= 1e-5 && wo2 <= 1e-5 && wp <= 1e-6);
  assert_true(wdq <= 1e-5 && wdk <= 1e-5 && wdv <= 1e-5);
  /* masked keys got no gradient at all */
  if (c->masked)
    for (int b = 0; b < c->B; b++)
      for (int j = c->len[b]; j < c->Tk; j++)
        for (int e = 0; e < E; e++) {
          int64_t i = ((int64_t)b * c->Tk + j) * E + e;
          assert_true(dk[i] == 1.0f && dv[i] == 1.0f);
        }
  free(q), free(k), free(v), free(out), free(out2), free(probs), free(dout), free(dq), free(dk), free(dv);
  free(outr), free(pr), free(dqr), free(dkr), free(dvr);
}

static void test_attention_matches_reference(void **state) {
  (void)state;
  /* one block of query rows, no mask */
  check_attention(&(attn_case){2, 5, 7, 2, 3, 0.5f, {0}, 0});
  /* three heads of 5; lengths 1, Tk and in between */
  check_attention(&(attn_case){3, 70, 37, 3, 5, 0.4472136f, {1, 37, 20}, 1});
  /* Tq = 1030 > 512: three blocks of query rows (344, 344, 342) */
  check_attention(&(attn_case){2, 1030, 9, 2, 4, 0.5f, {9, 5}, 1});
  /* Whisper-like head size, threaded (B*H*Tq*Tk*Dh above the threshold) */
  check_attention(&(attn_case){2, 40, 50, 4, 64, 0.125f, {50, 23}, 1});
}

/* The fused AVX-512 inference path (no probabilities, head dim a multiple of
 * 16): odd query counts (tails of the 8- and 4-row tiles), key counts that are
 * not multiples of 16 or 32, head dims of 16, 48 (a partial 64-column block),
 * 80 and 128, lengths down to 1; against the reference and against the
 * ser_gemm path; NaN and huge values in masked keys and values change no bit. */
static void test_attention_fused(void **state) {
  (void)state;
  if (!ser_cpu_has(SER_CPU_AVX512F)) {
    printf("skip: no AVX-512F (CPU or SER_ISA; the fused path is not used)\n");
    skip();
  }
  const attn_case cases[] = {{2, 13, 37, 2, 16, 0.25f, {37, 1}, 1},  {3, 9, 200, 2, 48, 0.144f, {200, 171, 33}, 1},
                             {1, 33, 17, 3, 80, 0.11f, {0}, 0},     {2, 200, 200, 8, 64, 0.125f, {200, 130}, 1},
                             {2, 5, 64, 1, 128, 0.088f, {64, 32}, 1}};
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const attn_case *c = &cases[ci];
    const int E = c->H * c->Dh;
    const int64_t nq = (int64_t)c->B * c->Tq * E, nk = (int64_t)c->B * c->Tk * E,
                  np = (int64_t)c->B * c->H * c->Tq * c->Tk;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *of = falloc(nq), *og = falloc(nq), *o2 = falloc(nq);
    double *outr = calloc((size_t)nq, sizeof(double)), *pr = calloc((size_t)np, sizeof(double));
    fill(q, nq, 41, 1.0f), fill(k, nk, 42, 1.0f), fill(v, nk, 43, 1.0f);
    const int32_t *len = c->masked ? c->len : NULL;
    int prev = ser_attention_set_fused(1);
    assert_int_equal(ser_attention_forward(of, NULL, q, k, v, len, c->B, c->Tq, c->Tk, c->H, c->Dh, c->scale), 0);
    ser_attention_set_fused(0);
    assert_int_equal(ser_attention_forward(og, NULL, q, k, v, len, c->B, c->Tq, c->Tk, c->H, c->Dh, c->scale), 0);
    ser_attention_set_fused(1);
    attention_ref(outr, pr, q, k, v, c);
    double wf = worst_abs(of, outr, nq, 0), wg = worst_abs(og, outr, nq, 0), d = 0;
    for (int64_t i = 0; i < nq; i++) d = fmax(d, fabs(of[i] - og[i]));
    printf("  fused B %d Tq %d Tk %d H %d Dh %d%s: vs reference %.3g (ser_gemm path %.3g), fused vs ser_gemm %.3g\n",
           c->B, c->Tq, c->Tk, c->H, c->Dh, c->masked ? " masked" : "", wf, wg, d);
    assert_true(wf <= 1e-5 && wg <= 1e-5);
    if (c->masked) {
      for (int b = 0; b < c->B; b++)
        for (int j = c->len[b]; j < c->Tk; j++)
          for (int e = 0; e < E; e++) {
            const int64_t i = ((int64_t)b * c->Tk + j) * E + e;
            k[i] = e % 3 ? 1e30f * (e % 2 ? 1 : -1) : NAN;
            v[i] = NAN;
          }
      assert_int_equal(ser_attention_forward(o2, NULL, q, k, v, len, c->B, c->Tq, c->Tk, c->H, c->Dh, c->scale), 0);
      assert_memory_equal(of, o2, sizeof(float) * (size_t)nq);
    }
    ser_attention_set_fused(prev);
    free(q), free(k), free(v), free(of), free(og), free(o2), free(outr), free(pr);
  }
}

/* Changing keys and values past key_len[b] changes no output bit. */
static void test_attention_masked_keys_change_nothing(void **state) {
  (void)state;
  const int B = 2, T = 9, H = 2, Dh = 4, E = H * Dh;
  const int32_t len[2] = {4, 9};
  float q[B * T * E], k[B * T * E], v[B * T * E], o1[B * T * E], o2[B * T * E], p1[B * H * T * T], p2[B * H * T * T];
  fill(q, B * T * E, 21, 1.0f);
  fill(k, B * T * E, 22, 1.0f);
  fill(v, B * T * E, 23, 1.0f);
  assert_int_equal(ser_attention_forward(o1, p1, q, k, v, len, B, T, T, H, Dh, 0.5f), 0);
  for (int j = len[0]; j < T; j++)
    for (int e = 0; e < E; e++) {
      k[j * E + e] = 1e30f * (e % 2 ? 1 : -1);
      v[j * E + e] = NAN;
    }
  assert_int_equal(ser_attention_forward(o2, p2, q, k, v, len, B, T, T, H, Dh, 0.5f), 0);
  assert_memory_equal(o1, o2, sizeof o1);
  assert_memory_equal(p1, p2, sizeof p1);
}

static void test_attention_bad_lengths(void **state) {
  (void)state;
  float x[2 * 3 * 4] = {0}, o[2 * 3 * 4];
  const int32_t bad[2] = {3, 4}, zero[2] = {0, 1};
  assert_int_equal(ser_attention_forward(o, NULL, x, x, x, bad, 2, 3, 3, 1, 4, 1.0f), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "key_lengths[1] = 4 is outside 1..3"));
  assert_int_equal(ser_attention_backward(o, NULL, NULL, x, x, x, x, x, zero, 2, 3, 3, 1, 4, 1.0f), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "key_lengths[0] = 0 is outside 1..3"));
}

/* amp: the two products run in bf16 when the CPU has it; the result stays close. */
static void test_attention_amp(void **state) {
  (void)state;
  if (!ser_bf16_supported()) {
    printf("skip: AVX512-BF16 %s\n", ser_cpu_why_not(SER_CPU_AVX512BF16));
    skip();
  }
  const int B = 2, T = 48, H = 2, Dh = 32, E = H * Dh;
  const int64_t n = (int64_t)B * T * E;
  float *q = falloc(n), *k = falloc(n), *v = falloc(n), *o32 = falloc(n), *o16 = falloc(n);
  fill(q, n, 31, 1.0f), fill(k, n, 32, 1.0f), fill(v, n, 33, 1.0f);
  assert_int_equal(ser_attention_forward(o32, NULL, q, k, v, NULL, B, T, T, H, Dh, 0.17677669f), 0);
  int prev = ser_set_amp(1);
  assert_int_equal(ser_attention_forward(o16, NULL, q, k, v, NULL, B, T, T, H, Dh, 0.17677669f), 0);
  ser_set_amp(prev);
  double w = 0, diff = 0;
  for (int64_t i = 0; i < n; i++) w = fmax(w, fabs(o16[i] - o32[i])), diff += o16[i] != o32[i];
  printf("  amp vs fp32: worst abs diff %.3g, %g of %lld values differ\n", w, diff, (long long)n);
  assert_true(w <= 2e-2);
  assert_true(diff > 0); /* it did run in bf16 */
  free(q), free(k), free(v), free(o32), free(o16);
}

/* ---- the ops' shape checks ---------------------------------------------------------- */

static void test_op_errors(void **state) {
  (void)state;
  ser_tensor *x = ser_tensor_zeros(3, SER_DIMS(2, 5, 8)), *w7 = ser_tensor_zeros(1, SER_DIMS(7)), *y = NULL;
  assert_int_equal(ser_layer_norm(&y, x, w7, NULL, 1e-5), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "layer_norm: weight must be [8] (the input's last dim), got [7]; input [2,5,8]"));
  assert_int_equal(ser_layer_norm(&y, x, NULL, w7, 1e-5), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "bias must be [8]"));
  assert_int_equal(ser_layer_norm(&y, x, NULL, NULL, -1.0), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "eps must be a finite number >= 0, got -1"));

  ser_tensor *k = ser_tensor_zeros(3, SER_DIMS(2, 6, 8)), *v = ser_tensor_zeros(3, SER_DIMS(2, 6, 4));
  ser_tensor *k1 = ser_tensor_zeros(3, SER_DIMS(1, 6, 8)), *q2 = ser_tensor_zeros(2, SER_DIMS(5, 8));
  assert_int_equal(ser_scaled_dot_product_attention(&y, x, k, v, NULL, 2, 0.5), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "k [2,6,8] and v [2,6,4] must have the same shape"));
  assert_int_equal(ser_scaled_dot_product_attention(&y, x, k1, k1, NULL, 2, 0.5), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "q [2,5,8] and k [1,6,8] have different batch sizes (2 vs 1)"));
  assert_int_equal(ser_scaled_dot_product_attention(&y, q2, k, k, NULL, 2, 0.5), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "q must be 3-d [B, Tq, heads*head_dim], got [5,8]"));
  assert_int_equal(ser_scaled_dot_product_attention(&y, x, k, k, NULL, 3, 0.5), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "feature size 8 of q [2,5,8] is not divisible by heads = 3"));
  assert_int_equal(ser_scaled_dot_product_attention(&y, x, k, k, (int32_t[]){6, 7}, 2, 0.5), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "key length 7 of batch item 2 is outside 1..6 (k [2,6,8])"));
  assert_int_equal(ser_scaled_dot_product_attention(&y, x, k, k, NULL, 2, NAN), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "scale must be finite"));
  assert_null(y);
  ser_tensor *all[] = {x, w7, k, v, k1, q2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

/* The op's gradients reach q, k and v through autograd and masked keys get
 * exactly zero (the gradient buffers start at zero). */
static void test_attention_op_masked_zero_grad(void **state) {
  (void)state;
  ser_tensor *q = ser_tensor_empty(3, SER_DIMS(2, 3, 8)), *k = ser_tensor_empty(3, SER_DIMS(2, 5, 8)),
             *v = ser_tensor_empty(3, SER_DIMS(2, 5, 8)), *y = NULL, *s = NULL;
  fill(ser_tensor_data(q), 48, 41, 1.0f), fill(ser_tensor_data(k), 80, 42, 1.0f), fill(ser_tensor_data(v), 80, 43, 1.0f);
  q->requires_grad = k->requires_grad = v->requires_grad = 1;
  assert_int_equal(ser_scaled_dot_product_attention(&y, q, k, v, (int32_t[]){2, 5}, 2, 0.5), 0);
  assert_int_equal(ser_sum(&s, y, SER_ALL_DIMS, 0), 0);
  assert_int_equal(ser_backward(s, NULL, 0), 0);
  const float *gk = ser_tensor_data(k->grad), *gv = ser_tensor_data(v->grad);
  double live = 0;
  for (int j = 0; j < 5; j++)
    for (int e = 0; e < 8; e++) {
      if (j >= 2) assert_true(gk[j * 8 + e] == 0.0f && gv[j * 8 + e] == 0.0f); /* batch item 1, keys 3..5 */
      live += fabs(gv[j * 8 + e]) + fabs(gv[40 + j * 8 + e]);
    }
  assert_true(live > 0);
  ser_tensor *all[] = {q, k, v, y, s};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

/* ---- Linear on [B, T, F] ----------------------------------------------------------- */

/* A contiguous [B, T, F] input goes to one GEMM over B*T rows with no copy:
 * the only allocation of the forward is the output (and, with autograd, nothing
 * more: the node keeps references, not copies). */
static void test_linear_3d_no_copy(void **state) {
  (void)state;
  const int B = 4, T = 50, F = 64, O = 32;
  ser_tensor *x = ser_tensor_empty(3, SER_DIMS(B, T, F)), *w = ser_tensor_empty(2, SER_DIMS(O, F)),
             *b = ser_tensor_empty(1, SER_DIMS(O)), *y = NULL;
  fill(ser_tensor_data(x), B * T * F, 51, 1.0f), fill(ser_tensor_data(w), O * F, 52, 1.0f),
      fill(ser_tensor_data(b), O, 53, 1.0f);
  w->requires_grad = 1;
  size_t live = ser_memory_live();
  ser_memory_reset_peak();
  assert_int_equal(ser_linear(&y, x, w, b), 0);
  size_t grew = ser_memory_peak() - live, out_bytes = (size_t)B * T * O * sizeof(float);
  printf("  linear [%d,%d,%d] -> [%d,%d,%d]: peak grew %zu bytes, output %zu bytes\n", B, T, F, B, T, O, grew, out_bytes);
  assert_true(grew < out_bytes + 4096); /* the output and the autograd node, no copy of x (51200 bytes) */
  const float *xd = ser_tensor_data(x), *wd = ser_tensor_data(w), *yd = ser_tensor_data(y);
  for (int r = 0; r < B * T; r += 37)
    for (int o = 0; o < O; o++) {
      double s = ser_tensor_data(b)[o];
      for (int i = 0; i < F; i++) s += (double)xd[r * F + i] * wd[o * F + i];
      assert_true(fabs(yd[r * O + o] - s) <= 1e-4);
    }
  ser_tensor *all[] = {x, w, b, y};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gelu_base),
      cmocka_unit_test(test_gelu_avx2),
      cmocka_unit_test(test_gelu_avx512),
      cmocka_unit_test(test_softmax_rows_base),
      cmocka_unit_test(test_softmax_rows_avx2),
      cmocka_unit_test(test_softmax_rows_avx512),
      cmocka_unit_test(test_layernorm_base),
      cmocka_unit_test(test_layernorm_avx2),
      cmocka_unit_test(test_layernorm_avx512),
      cmocka_unit_test(test_attention_matches_reference),
      cmocka_unit_test(test_attention_masked_keys_change_nothing),
      cmocka_unit_test(test_attention_bad_lengths),
      cmocka_unit_test(test_attention_amp),
      cmocka_unit_test(test_attention_fused),
      cmocka_unit_test(test_op_errors),
      cmocka_unit_test(test_attention_op_masked_zero_grad),
      cmocka_unit_test(test_linear_3d_no_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
