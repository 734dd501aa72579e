/* Bodies of the row kernels of the transformer ops, included three times by
 * rowops.c: for the -march baseline, under AVX2+FMA and under AVX-512, K(name)
 * naming each copy. Not a public header.
 *
 * exp and erf are written as branch-free scalar functions (selects, a union
 * for the exponent bits) so that the `omp simd` loops calling them vectorise
 * at every width; glibc's expf/erff are scalar calls that stop that. */

/* exp(x): Cephes' range reduction (x = n ln2 + r, ln2 in two parts) and its
 * degree-6 polynomial, about 1 ulp. exp(x) = 0 for x < -87.3 (where the true
 * value is below FLT_MIN; softmax relies on exp(-inf) = 0), and x > 88.7
 * saturates at FLT_MAX-ish; NaN propagates. */
static inline float K(vexp)(float x) {
  float xc = x < -87.3f ? -87.3f : x;
  xc = xc > 88.7f ? 88.7f : xc;
  const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer in the low bits */
  union {
    float f;
    int32_t i;
  } t = {.f = xc * 1.44269504088896341f + magic};
  float n = t.f - magic;
  int32_t ni = t.i - 0x4b400000; /* the bits of `magic` */
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  union {
    int32_t i;
    float f;
  } s = {.i = (ni + 127) << 23};
  float y = p * s.f;
  y = x < -87.3f ? 0.0f : y;
  return x != x ? x : y;
}

/* erf(z), absolute error below 2e-7 (tests/c/test_transformer.c checks it
 * against double-precision erf). Two pieces, both computed, one selected:
 *   |z| < 1:      z P(z^2), P of degree 6 (relative error 1.2e-9 as fitted)
 *   1 <= |z|:     1 - exp(-z^2) R(1/|z| - 0.625), R of degree 9 fitted to
 *                 erfc(a) exp(a^2) on a in [1, 4] (relative error 1.5e-8);
 *                 |z| is clamped to 4, where erf already rounds to 1 in float.
 * Coefficients: weighted least squares refined to minimax (Lawson), rounded to float. */
static inline float K(verf)(float z) {
  float u = z * z;
  float ps = 7.889122935011983e-05f;
  ps = ps * u + -0.0008020842797122896f;
  ps = ps * u + 0.005189535673707724f;
  ps = ps * u + -0.026854444295167923f;
  ps = ps * u + 0.11283600330352783f;
  ps = ps * u + -0.3761262595653534f;
  ps = ps * u + 1.1283791065216064f;
  float small = z * ps;
  float a = fabsf(z);
  float ac = a > 1.0f ? a : 1.0f;
  ac = ac < 4.0f ? ac : 4.0f;
  float s = 1.0f / ac - 0.625f;
  float pr = 0.030713388696312904f;
  pr = pr * s + -0.00694667361676693f;
  pr = pr * s + -0.028408341109752655f;
  pr = pr * s + 0.04461994022130966f;
  pr = pr * s + -0.04678604006767273f;
  pr = pr * s + 0.02326197922229767f;
  pr = pr * s + 0.04376080259680748f;
  pr = pr * s + -0.17239360511302948f;
  pr = pr * s + 0.3822838366031647f;
  pr = pr * s + 0.3059529960155487f;
  float big = 1.0f - K(vexp)(-(ac * ac)) * pr;
  big = z < 0.0f ? -big : big;
  return a < 1.0f ? small : big;
}

/* out may be in (each element is read before it is written; omp simd needs no restrict) */
static void K(gelu)(float *out, const float *in, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    float x = in[i];
    out[i] = 0.5f * x * (1.0f + K(verf)(x * 0.70710678118654752f));
  }
}

/* x[i] = gelu(x[i] + bias[i]) over one row of n (a Linear's bias and GELU in one pass) */
static void K(bias_gelu)(float *restrict x, const float *restrict bias, int n) {
#pragma omp simd
  for (int i = 0; i < n; i++) {
    float v = x[i] + bias[i];
    x[i] = 0.5f * v * (1.0f + K(verf)(v * 0.70710678118654752f));
  }
}

/* d gelu / dx = Phi(x) + x phi(x) */
static void K(gelu_backward)(float *restrict din, const float *restrict dout, const float *restrict in, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    float x = in[i];
    float cdf = 0.5f * (1.0f + K(verf)(x * 0.70710678118654752f));
    float pdf = 0.3989422804014327f * K(vexp)(-0.5f * x * x);
    din[i] += dout[i] * (cdf + x * pdf);
  }
}

/* y = softmax(x) over n entries (y may be x); returns the sum of the exponentials. */
static float K(softmax)(float *y, const float *x, int n) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  /* a row of -inf (or NaN) has no finite maximum: subtracting it would give NaN
   * for every entry; torch gives NaN there too, so let it through */
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; i++) {
    float e = K(vexp)(x[i] - mx);
    y[i] = e;
    sum += e;
  }
  float inv = 1.0f / sum;
#pragma omp simd
  for (int i = 0; i < n; i++) y[i] *= inv;
  return sum;
}

/* ds = scale * p * (dp - sum(p dp)) over n entries (overwrites ds; ds may be dp). */
static void K(softmax_backward)(float *ds, const float *p, const float *dp, int n, float scale) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int i = 0; i < n; i++) dot += p[i] * dp[i];
#pragma omp simd
  for (int i = 0; i < n; i++) ds[i] = scale * p[i] * (dp[i] - dot);
}

/* One row of LayerNorm; the moments are summed in double (two passes); out may be x. */
static void K(layernorm)(float *out, float *mean_out, float *rstd_out, const float *x, const float *restrict w,
                         const float *restrict b, int n, float eps) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += x[i];
  const float mean = (float)(s / n);
  double q = 0.0;
#pragma omp simd reduction(+ : q)
  for (int i = 0; i < n; i++) {
    float d = x[i] - mean;
    q += (double)(d * d);
  }
  const float rstd = (float)(1.0 / sqrt(q / n + (double)eps));
  if (mean_out) *mean_out = mean;
  if (rstd_out) *rstd_out = rstd;
  if (w && b) {
#pragma omp simd
    for (int i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd * w[i] + b[i];
  } else if (w) {
#pragma omp simd
    for (int i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd * w[i];
  } else if (b) {
#pragma omp simd
    for (int i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd + b[i];
  } else {
#pragma omp simd
    for (int i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd;
  }
}

/* One row of the LayerNorm backward, xhat = (x - mean) rstd, g = dout w:
 *   din += rstd (g - mean(g) - xhat mean(g xhat)),  dw += dout xhat,  db += dout. */
static void K(layernorm_backward)(float *restrict din, float *restrict dw, float *restrict db,
                                  const float *restrict dout, const float *restrict x, const float *restrict w,
                                  float mean, float rstd, int n) {
  if (din) {
    /* w == NULL (no affine) as its own loops: a select inside would keep the
     * baseline copy from vectorising */
    float sg = 0.0f, sgx = 0.0f;
    if (w) {
#pragma omp simd reduction(+ : sg, sgx)
      for (int i = 0; i < n; i++) {
        float g = dout[i] * w[i];
        sg += g;
        sgx += g * (x[i] - mean) * rstd;
      }
    } else {
#pragma omp simd reduction(+ : sg, sgx)
      for (int i = 0; i < n; i++) {
        sg += dout[i];
        sgx += dout[i] * (x[i] - mean) * rstd;
      }
    }
    const float mg = sg / (float)n, mgx = sgx / (float)n;
    if (w) {
#pragma omp simd
      for (int i = 0; i < n; i++) din[i] += rstd * (dout[i] * w[i] - mg - (x[i] - mean) * rstd * mgx);
    } else {
#pragma omp simd
      for (int i = 0; i < n; i++) din[i] += rstd * (dout[i] - mg - (x[i] - mean) * rstd * mgx);
    }
  }
  if (dw) {
#pragma omp simd
    for (int i = 0; i < n; i++) dw[i] += dout[i] * (x[i] - mean) * rstd;
  }
  if (db) {
#pragma omp simd
    for (int i = 0; i < n; i++) db[i] += dout[i];
  }
}
