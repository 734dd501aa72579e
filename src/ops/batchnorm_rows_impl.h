/* The row loops of BatchNorm (batchnorm.c), included twice there: once for
 * the -march baseline and once under AVX-512F, K(name) naming each copy. Not a
 * public header. */
static float K(row_sum)(const float *p, int S) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < S; i++) s += p[i];
  return s;
}

static float K(row_sqdev)(const float *p, int S, float mu) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < S; i++) s += (p[i] - mu) * (p[i] - mu);
  return s;
}

/* sum dy and sum dy * (x - mu) over one row; with y (batch_norm_relu's
 * output) dy counts only where y > 0, as relu's backward would pass it on */
static void K(row_dsums)(const float *dy, const float *x, const float *y, int S, float mu, double *sdy,
                         double *sdyx) {
  float a = 0.0f, b = 0.0f;
  if (y) {
#pragma omp simd reduction(+ : a, b)
    for (int i = 0; i < S; i++) {
      float g = dy[i]; /* loaded unconditionally: the select is a blend, the loop vectorises */
      float d = y[i] > 0 ? g : 0.0f;
      a += d;
      b += d * (x[i] - mu);
    }
  } else {
#pragma omp simd reduction(+ : a, b)
    for (int i = 0; i < S; i++) {
      a += dy[i];
      b += dy[i] * (x[i] - mu);
    }
  }
  *sdy += a;
  *sdyx += b;
}
/* q = p * scale + shift, then max(0, .) when relu (written as ser_relu does: v > 0 ? v : 0). */
static void K(affine_row)(float *q, const float *p, int S, float scale, float shift, int relu) {
  if (relu) {
#pragma omp simd
    for (int i = 0; i < S; i++) {
      float v = p[i] * scale + shift;
      q[i] = v > 0 ? v : 0;
    }
  } else {
#pragma omp simd
    for (int i = 0; i < S; i++) q[i] = p[i] * scale + shift;
  }
}

/* dx (+)= g (dy' - mdy - (x - mu) k), dy' = dy masked by y > 0 when y is given. */
static void K(dx_row)(float *dx, const float *dy, const float *x, const float *y, int S, float g, float mdy,
                      float mu, float k, int overwrite) {
  if (y) {
    if (overwrite) {
#pragma omp simd
      for (int i = 0; i < S; i++) {
        float d = dy[i]; /* loaded unconditionally: the select is a blend */
        dx[i] = g * ((y[i] > 0 ? d : 0.0f) - mdy - (x[i] - mu) * k);
      }
    } else {
#pragma omp simd
      for (int i = 0; i < S; i++) {
        float d = dy[i];
        dx[i] += g * ((y[i] > 0 ? d : 0.0f) - mdy - (x[i] - mu) * k);
      }
    }
  } else if (overwrite) {
#pragma omp simd
    for (int i = 0; i < S; i++) dx[i] = g * (dy[i] - mdy - (x[i] - mu) * k);
  } else {
#pragma omp simd
    for (int i = 0; i < S; i++) dx[i] += g * (dy[i] - mdy - (x[i] - mu) * k);
  }
}
