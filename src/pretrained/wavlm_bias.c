/* WavLM's gated relative position bias and the attention that adds it (see wavlm_bias.h). */
#include "pretrained/wavlm_bias.h"

#include <math.h>

#include "core/error.h"
#include "core/threads.h"
#include "ops/gemm.h"
#include "ops/rowops.h"
#include "ops/scratch.h"

int ser_wavlm_bucket(int64_t r, int num_buckets, int max_distance) {
  const int half = num_buckets / 2, exact = half / 2;
  const int base = r > 0 ? half : 0;
  const int64_t a = r < 0 ? -r : r;
  if (a < exact) return base + (int)a;
  /* as modeling_wavlm.py: float32 log of a / exact, scaled, truncated to an integer */
  float v = logf((float)a / (float)exact);
  v = v / (float)log((double)max_distance / exact);
  v = v * (float)(half - exact);
  int64_t large = (int64_t)((float)exact + v);
  if (large > half - 1) large = half - 1;
  return base + (int)large;
}

void ser_wavlm_relative_bias(float *relb, const float *embed, int H, int T, int num_buckets, int max_distance) {
  const int64_t R = 2 * (int64_t)T - 1;
  for (int64_t r = -(T - 1); r <= T - 1; r++) {
    const int bk = ser_wavlm_bucket(r, num_buckets, max_distance);
    for (int h = 0; h < H; h++) relb[h * R + r + T - 1] = embed[(int64_t)bk * H + h];
  }
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

void ser_wavlm_gate(float *gate, const float *x, const float *w, const float *b, const float *gconst, int64_t rows,
                    int H, int Dh) {
#pragma omp parallel for schedule(static) num_threads(ser_num_threads()) if (rows * H * Dh > 65536)
  for (int64_t r = 0; r < rows; r++)
    for (int h = 0; h < H; h++) {
      const float *xh = x + (r * H + h) * Dh;
      float p[8];
      for (int o = 0; o < 8; o++) {
        float s = b[o];
        const float *wo = w + (int64_t)o * Dh;
        for (int c = 0; c < Dh; c++) s += wo[c] * xh[c];
        p[o] = s;
      }
      const float ga = sigmoid(p[0] + p[1] + p[2] + p[3]), gb = sigmoid(p[4] + p[5] + p[6] + p[7]);
      gate[r * H + h] = ga * (gb * gconst[h] - 1.0f) + 2.0f;
    }
}

int ser_wavlm_attention_forward(float *out, const float *q, const float *k, const float *v, const float *gate,
                                const float *relb, const int32_t *key_len, int B, int T, int H, int Dh, float scale) {
  const int E = H * Dh;
  const int64_t R = 2 * (int64_t)T - 1;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(ser_num_threads()) reduction(| : failed) if (B * H > 1)
  for (int item = 0; item < B * H; item++) {
    const int b = item / H, h = item % H, L = key_len ? key_len[b] : T;
    float *s = ser_scratch(SER_SCRATCH_ATTN, (size_t)T * (size_t)L * sizeof(float));
    if (!s) {
      failed = 1;
      continue;
    }
    const float *qp = q + (int64_t)b * T * E + (int64_t)h * Dh, *kp = k + (int64_t)b * T * E + (int64_t)h * Dh,
                *vp = v + (int64_t)b * T * E + (int64_t)h * Dh;
    ser_gemm(0, 1, T, L, Dh, scale, qp, E, kp, E, 0.0f, s, L);
    const float *rb = relb + h * R + T - 1;
    for (int i = 0; i < T; i++) {
      float *row = s + (int64_t)i * L;
      const float g = gate[((int64_t)b * T + i) * H + h];
      for (int j = 0; j < L; j++) row[j] += g * rb[j - i];
      ser_row_softmax(row, row, L);
    }
    ser_gemm(0, 0, T, Dh, L, 1.0f, s, L, vp, E, 0.0f, out + (int64_t)b * T * E + (int64_t)h * Dh, E);
  }
  return failed ? ser_error(SER_ENOMEM, "wavlm attention: no memory for the scores of %d x %d frames", T, T) : 0;
}
