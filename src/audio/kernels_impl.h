/* Bodies of the feature kernels, included twice by kernels.c: once for the
 * portable baseline and once under an AVX2+FMA target, K(name) naming each
 * copy. Not a public header. */
static void K(ser_k_window)(float *dst, const float *src, const float *win, int n) {
#pragma omp simd
  for (int i = 0; i < n; i++) dst[i] = src[i] * win[i];
}

static void K(ser_k_power)(float *p, const float *s, int nf, int magnitude) {
#pragma omp simd
  for (int k = 0; k < nf; k++) p[k] = s[2 * k] * s[2 * k] + s[2 * k + 1] * s[2 * k + 1];
  if (magnitude)
#pragma omp simd
    for (int k = 0; k < nf; k++) p[k] = sqrtf(p[k]);
}

static void K(ser_k_power_lane)(float *pb, const float *s, int nf, int j, int magnitude) {
  float *col = pb + j;
  if (magnitude) {
    for (int k = 0; k < nf; k++) col[k * SER_K_BLOCK] = sqrtf(s[2 * k] * s[2 * k] + s[2 * k + 1] * s[2 * k + 1]);
    return;
  }
#pragma omp simd
  for (int k = 0; k < nf; k++) col[k * SER_K_BLOCK] = s[2 * k] * s[2 * k] + s[2 * k + 1] * s[2 * k + 1];
}

static void K(ser_k_mel_block)(float *out, int64_t ostride, const float *pb, int n_mels, float *const *w,
                                 const int *lo, const int *len, int jn) {
  for (int m = 0; m < n_mels; m++) {
    float acc[SER_K_BLOCK] = {0};
    const float *wm = w[m], *p = pb + (int64_t)lo[m] * SER_K_BLOCK;
    for (int k = 0; k < len[m]; k++) {
      float wk = wm[k];
#pragma omp simd
      for (int j = 0; j < SER_K_BLOCK; j++) acc[j] += wk * p[k * SER_K_BLOCK + j];
    }
    float *o = out + m * ostride;
    for (int j = 0; j < jn; j++) o[j] = acc[j];
  }
}

static void K(ser_k_matmul_cols)(float *out, const float *a, const float *in, int nc, int nr, int64_t cols) {
  for (int c = 0; c < nc; c++) {
    float *o = out + c * cols;
    const float *ar = a + (int64_t)c * nr;
    for (int64_t f = 0; f < cols; f++) o[f] = 0.0f;
    for (int r = 0; r < nr; r++) {
      float w = ar[r];
      const float *x = in + r * cols;
#pragma omp simd
      for (int64_t f = 0; f < cols; f++) o[f] += w * x[f];
    }
  }
}

static float K(ser_k_dot)(const float *w, const float *p, int n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int k = 0; k < n; k++) acc += w[k] * p[k];
  return acc;
}

/* 10 log10(x) for x >= 1e-10 (normal floats): x = 2^e * m with m in
 * [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172,
 * series to s^9 (truncation < 1e-9). */
static inline float K(db_of)(float x) {
  union {
    float f;
    uint32_t u;
  } v = {.f = x > 1e-10f ? x : 1e-10f};
  /* Shift the mantissa range so that m lands in [sqrt(1/2), sqrt(2)). */
  uint32_t adj = v.u + (0x3f800000u - 0x3f3504f3u);
  int32_t e = (int32_t)(adj >> 23) - 127;
  v.u = (adj & 0x007fffffu) + 0x3f3504f3u;
  float m = v.f;
  float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float poly = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  float ln = 2.0f * s * poly + (float)e * 0.693147180559945f;
  return ln * 4.342944819032518f; /* 10 / ln 10 */
}

/* Two passes (convert, then max) so that both loops vectorise. */
static float K(ser_k_db)(float *x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) x[i] = K(db_of)(x[i]);
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; i++) mx = mx > x[i] ? mx : x[i];
  return mx;
}

static void K(ser_k_clamp_min)(float *x, int64_t n, float lo) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) x[i] = x[i] > lo ? x[i] : lo;
}

static double K(ser_k_sum)(const float *x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += x[i];
  return s;
}

static double K(ser_k_sqdev)(const float *x, int64_t n, double mean) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) {
    double d = x[i] - mean;
    s += d * d;
  }
  return s;
}

static void K(ser_k_affine)(float *x, int64_t n, float m, float s) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) x[i] = (x[i] - m) * s;
}
