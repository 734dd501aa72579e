/* The wav2vec 2.0 / HuBERT / WavLM forward (see wav2vec2.h): the feature
 * encoder, projection and positional convolution clip by clip, then the
 * transformer blocks on the padded batch with key masks. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/threads.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/conv_grouped.h"
#include "ops/gemm.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/rowops.h"
#include "ops/scratch.h"
#include "pretrained/wav2vec2.h"
#include "pretrained/forward_tensor.h"
#include "pretrained/wavlm_bias.h"

#define CONV_NORM_EPS 1e-5f /* GroupNorm / LayerNorm of the feature encoder: PyTorch's default */

int64_t ser_wav2vec2_encoder_frames(const ser_wav2vec2_encoder *enc, int64_t n) {
  for (int l = 0; l < enc->cfg.n_conv; l++) {
    if (n < enc->cfg.conv_kernel[l]) return 0;
    n = (n - enc->cfg.conv_kernel[l]) / enc->cfg.conv_stride[l] + 1;
  }
  return n;
}

int ser_wav2vec2_encoder_check(const ser_wav2vec2_encoder *enc, int B, int64_t N, const int32_t *lengths) {
  const char *fam = ser_wav2vec2_family_name(enc->cfg.family);
  const int rf = enc->cfg.receptive_field;
  if (B < 1) return ser_error(SER_EINVAL, "%s encoder: empty batch (B = %d)", fam, B);
  if (N < rf || N > (1 << 26))
    return ser_error(SER_EINVAL, "%s encoder: input of %lld samples, expected %d..%d (at least one frame of %d samples, "
                     "%.0f ms at 16 kHz)", fam, (long long)N, rf, 1 << 26, rf, rf / 16.0);
  for (int b = 0; lengths && b < B; b++)
    if (lengths[b] < rf || lengths[b] > N)
      return ser_error(SER_EINVAL, "%s encoder: length of clip %d is %d samples, expected %d..%lld (at least one "
                       "frame; at most the input's samples)", fam, b + 1, (int)lengths[b], rf, (long long)N);
  return 0;
}

void ser_wav2vec2_frontend(const ser_wav2vec2_encoder *enc, float *out, const float *in, int64_t n) {
  if (!enc->cfg.do_normalize || n < 1) {
    if (out != in) memmove(out, in, sizeof(float) * (size_t)n);
    return;
  }
  double s = 0, ss = 0;
  for (int64_t i = 0; i < n; i++) s += in[i];
  const double mean = s / (double)n;
  for (int64_t i = 0; i < n; i++) ss += (in[i] - mean) * (in[i] - mean);
  const double inv = 1.0 / sqrt(ss / (double)n + 1e-7);
  for (int64_t i = 0; i < n; i++) out[i] = (float)((in[i] - mean) * inv);
}

/* x [C, T] in place: each channel normalised over its T frames (GroupNorm with one group per channel). */
static void group_norm(float *x, const float *w, const float *b, int C, int64_t T) {
#pragma omp parallel for schedule(static) num_threads(ser_num_threads()) if (C * T > 65536)
  for (int c = 0; c < C; c++) {
    float *r = x + (int64_t)c * T;
    double s = 0, ss = 0;
    for (int64_t t = 0; t < T; t++) s += r[t];
    const double m = s / (double)T;
    for (int64_t t = 0; t < T; t++) ss += (r[t] - m) * (r[t] - m);
    const float rs = (float)(1.0 / sqrt(ss / (double)T + CONV_NORM_EPS)), mf = (float)m;
    for (int64_t t = 0; t < T; t++) r[t] = (r[t] - mf) * rs * w[c] + b[c];
  }
}

/* x [C, T] in place: each frame normalised over its C channels (LayerNorm between transposes). */
static void channel_norm(float *x, const float *w, const float *b, int C, int64_t T) {
#pragma omp parallel for schedule(static) num_threads(ser_num_threads()) if (C * T > 65536)
  for (int64_t t0 = 0; t0 < T; t0 += 64) {
    const int64_t n = T - t0 < 64 ? T - t0 : 64;
    double s[64] = {0}, ss[64] = {0};
    for (int c = 0; c < C; c++)
      for (int64_t i = 0; i < n; i++) s[i] += x[(int64_t)c * T + t0 + i];
    for (int64_t i = 0; i < n; i++) s[i] /= C;
    for (int c = 0; c < C; c++)
      for (int64_t i = 0; i < n; i++) {
        const double dv = x[(int64_t)c * T + t0 + i] - s[i];
        ss[i] += dv * dv;
      }
    float rs[64], m[64];
    for (int64_t i = 0; i < n; i++) rs[i] = (float)(1.0 / sqrt(ss[i] / C + CONV_NORM_EPS)), m[i] = (float)s[i];
    for (int c = 0; c < C; c++)
      for (int64_t i = 0; i < n; i++) {
        float *p = x + (int64_t)c * T + t0 + i;
        *p = (*p - m[i]) * rs[i] * w[c] + b[c];
      }
  }
}

/* dst [cols, rows] = src [rows, cols] */
static void transpose(float *dst, const float *src, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) num_threads(ser_num_threads()) if (rows * cols > 65536)
  for (int64_t c = 0; c < cols; c++)
    for (int64_t r = 0; r < rows; r++) dst[c * rows + r] = src[r * cols + c];
}

/* C [rows, OUT] += A [rows, IN] W^T + bias */
static void linear_acc(float *C, const float *A, const float *W, const float *bias, int64_t rows, int IN, int OUT) {
  ser_gemm(0, 1, (int)rows, OUT, IN, 1.0f, A, IN, W, IN, 1.0f, C, OUT);
#pragma omp parallel for schedule(static) num_threads(ser_num_threads()) if (rows * OUT > 65536)
  for (int64_t r = 0; r < rows; r++)
    for (int o = 0; o < OUT; o++) C[r * OUT + o] += bias[o];
}

/* The stem of one clip: n samples -> h [frames, d] (the projected features plus
 * the positional embedding). ws: stem scratch (2 * stem_floats). */
static int stem(const ser_wav2vec2_encoder *enc, float *h, const float *wav, int64_t n, float *ws, size_t half) {
  const ser_wav2vec2_config *c = &enc->cfg;
  float *x = ws, *y = ws + half;
  const float *in = wav;
  int64_t len = n;
  int C = 1, rc;
  for (int l = 0; l < c->n_conv; l++) {
    ser_conv_geom g = {.B = 1, .C = C, .H = 1, .W = (int)len, .OC = c->conv_dim[l], .KH = 1, .KW = c->conv_kernel[l],
                       .sh = 1, .sw = c->conv_stride[l], .ph = 0, .pw = 0, .dh = 1, .dw = 1};
    if ((rc = ser_conv_geom_init(&g, "wav2vec2 feature encoder"))) return rc;
    if ((rc = ser_conv2d_forward(y, in, enc->conv_w[l], enc->conv_b[l], &g))) return rc;
    C = g.OC;
    len = g.OW;
    if (c->layer_extractor) channel_norm(y, enc->conv_ln_w[l], enc->conv_ln_b[l], C, len);
    else if (l == 0) group_norm(y, enc->conv_ln_w[0], enc->conv_ln_b[0], C, len);
    ser_gelu_forward(y, y, (int64_t)C * len);
    in = y;
    float *t = x;
    x = y;
    y = t;
  }
  /* x [C, T] -> rows [T, C] -> LayerNorm -> projection into h [T, d] */
  const int d = c->d_model;
  const int64_t T = len;
  transpose(y, x, C, T);
  if (c->proj_norm) ser_layernorm_forward(y, NULL, NULL, y, enc->proj_ln_w, enc->proj_ln_b, T, C, c->eps);
  ser_linear_forward(h, y, enc->proj_w, enc->proj_b, (int)T, C, d);
  /* positional embedding: GELU(grouped conv over [d, T], zero padded K/2 each side), its first T frames */
  transpose(x, h, T, d);
  ser_conv_geom g = {.B = 1, .C = d, .H = 1, .W = (int)T, .OC = d, .KH = 1, .KW = c->pos_kernel, .sh = 1, .sw = 1,
                     .ph = 0, .pw = c->pos_kernel / 2, .dh = 1, .dw = 1};
  if ((rc = ser_conv_geom_init(&g, "wav2vec2 positional convolution"))) return rc;
  if ((rc = ser_conv1d_grouped_forward(y, x, enc->pos_w, enc->pos_b, c->pos_groups, &g))) return rc;
  const int64_t OW = g.OW;
#pragma omp parallel for schedule(static) num_threads(ser_num_threads()) if (T * d > 65536)
  for (int64_t t = 0; t < T; t++)
    for (int o = 0; o < d; o++) {
      const float p = y[(int64_t)o * OW + t];
      h[t * d + o] += 0.5f * p * (1.0f + erff(p * (float)M_SQRT1_2));
    }
  return 0;
}

/* Floats of stem scratch per buffer for n samples: the largest conv output and
 * the [T, C] / [d, T + 1] buffers of the projection and positional conv. */
static size_t stem_floats(const ser_wav2vec2_encoder *enc, int64_t n) {
  const ser_wav2vec2_config *c = &enc->cfg;
  size_t most = 0;
  for (int l = 0; l < c->n_conv; l++) {
    n = (n - c->conv_kernel[l]) / c->conv_stride[l] + 1;
    const size_t s = (size_t)c->conv_dim[l] * (size_t)n;
    if (s > most) most = s;
  }
  const size_t p = (size_t)c->d_model * (size_t)(n + 2);
  return most > p ? most : p;
}

static void zero_tail(float *x, const int32_t *valid, int B, int64_t T, int d) {
  for (int b = 0; b < B; b++)
    if (valid[b] < T) memset(x + ((int64_t)b * T + valid[b]) * d, 0, sizeof(float) * (size_t)(T - valid[b]) * d);
}

static void save(float *hidden, int l, const float *h, const int32_t *valid, int B, int64_t T, int d) {
  if (!hidden) return;
  float *dst = hidden + (size_t)l * (size_t)B * (size_t)T * d;
  memcpy(dst, h, sizeof(float) * (size_t)B * (size_t)T * d);
  zero_tail(dst, valid, B, T, d);
}

int ser_wav2vec2_encoder_forward(const ser_wav2vec2_encoder *enc, float *out, float *hidden, const float *wav,
                                 const int32_t *lengths, int B, int64_t N) {
  int rc = ser_wav2vec2_encoder_check(enc, B, N, lengths);
  if (rc) return rc;
  const ser_wav2vec2_config *c = &enc->cfg;
  const char *fam = ser_wav2vec2_family_name(c->family);
  const int d = c->d_model, f = c->ffn, H = c->heads, Dh = d / H, wavlm = c->family == SER_W2V_WAVLM;
  const int64_t T = ser_wav2vec2_encoder_frames(enc, N), rows = (int64_t)B * T;
  const size_t n_row = (size_t)rows * d;
  const size_t floats = 6 * n_row + (size_t)rows * f + (size_t)rows * H + (wavlm ? (size_t)H * (2 * T - 1) : 0);
  float *buf = ser_scratch(SER_SCRATCH_W2V, floats * sizeof(float) + sizeof(int32_t) * (size_t)B);
  if (!buf) return ser_error_prefix(SER_ENOMEM, "%s encoder: batch [%d, %lld]", fam, B, (long long)N);
  float *h = buf, *a = h + n_row, *q = a + n_row, *k = q + n_row, *v = k + n_row, *att = v + n_row,
        *ff = att + n_row, *gate = ff + (size_t)rows * f, *relb = gate + (size_t)rows * H;
  int32_t *valid = (int32_t *)(relb + (wavlm ? (size_t)H * (2 * T - 1) : 0));
  int64_t longest = 0;
  for (int b = 0; b < B; b++) {
    const int64_t n = lengths ? lengths[b] : N;
    valid[b] = (int32_t)ser_wav2vec2_encoder_frames(enc, n);
    if (n > longest) longest = n;
  }
  const size_t half = stem_floats(enc, longest);
  float *ws = ser_scratch(SER_SCRATCH_W2V_STEM, 2 * half * sizeof(float));
  if (!ws) return ser_error_prefix(SER_ENOMEM, "%s encoder: feature encoder of %lld samples", fam, (long long)longest);
  memset(h, 0, sizeof(float) * n_row);
  for (int b = 0; b < B; b++)
    if ((rc = stem(enc, h + (int64_t)b * T * d, wav + (int64_t)b * N, lengths ? lengths[b] : N, ws, half)))
      return ser_error_prefix(rc, "%s encoder: clip %d", fam, b + 1);
  if (!c->stable_layer_norm) ser_layernorm_forward(h, NULL, NULL, h, enc->enc_ln_w, enc->enc_ln_b, rows, d, c->eps);
  save(hidden, 0, h, valid, B, T, d);
  if (wavlm) ser_wavlm_relative_bias(relb, enc->rel_embed, H, (int)T, c->num_buckets, c->max_distance);
  const float scale = 1.0f / sqrtf((float)Dh);
  for (int l = 0; l < c->layers; l++) {
    const ser_wav2vec2_block *blk = &enc->blocks[l];
    const float *in = h;
    if (c->stable_layer_norm) {
      ser_layernorm_forward(a, NULL, NULL, h, blk->ln1_w, blk->ln1_b, rows, d, c->eps);
      in = a;
    }
    ser_linear_forward(q, in, blk->q_w, blk->q_b, (int)rows, d, d);
    ser_linear_forward(k, in, blk->k_w, blk->k_b, (int)rows, d, d);
    ser_linear_forward(v, in, blk->v_w, blk->v_b, (int)rows, d, d);
    if (wavlm) {
      ser_wavlm_gate(gate, in, blk->gate_w, blk->gate_b, blk->gate_const, rows, H, Dh);
      rc = ser_wavlm_attention_forward(att, q, k, v, gate, relb, valid, B, (int)T, H, Dh, scale);
    } else {
      rc = ser_attention_forward(att, NULL, q, k, v, valid, B, (int)T, (int)T, H, Dh, scale);
    }
    if (rc) return ser_error_prefix(rc, "%s encoder: attention of layer %d", fam, l);
    linear_acc(h, att, blk->o_w, blk->o_b, rows, d, d);
    if (c->stable_layer_norm) {
      ser_layernorm_forward(a, NULL, NULL, h, blk->ln2_w, blk->ln2_b, rows, d, c->eps);
      in = a;
    } else {
      ser_layernorm_forward(h, NULL, NULL, h, blk->ln1_w, blk->ln1_b, rows, d, c->eps);
      in = h;
    }
    ser_gemm(0, 1, (int)rows, f, d, 1.0f, in, d, blk->fc1_w, d, 0.0f, ff, f);
#pragma omp parallel for schedule(static) num_threads(ser_num_threads()) if (rows * f > 65536)
    for (int64_t r = 0; r < rows; r++) ser_row_bias_gelu(ff + r * f, blk->fc1_b, f);
    linear_acc(h, ff, blk->fc2_w, blk->fc2_b, rows, f, d);
    if (!c->stable_layer_norm) ser_layernorm_forward(h, NULL, NULL, h, blk->ln2_w, blk->ln2_b, rows, d, c->eps);
    if (l + 1 < c->layers || !c->stable_layer_norm) save(hidden, l + 1, h, valid, B, T, d);
  }
  /* pre-LN: the final LayerNorm, which Hugging Face's last hidden state includes */
  if (c->stable_layer_norm) ser_layernorm_forward(h, NULL, NULL, h, enc->enc_ln_w, enc->enc_ln_b, rows, d, c->eps);
  if (c->stable_layer_norm) save(hidden, c->layers, h, valid, B, T, d);
  if (out) {
    memcpy(out, h, sizeof(float) * n_row);
    zero_tail(out, valid, B, T, d);
  }
  return 0;
}

/* ser_wav2vec2_encoder_forward as forward_tensor.h's ser_encoder_run_fn */
static int run_raw(const void *enc, float *y, float *hidden, const float *x, const int32_t *lengths, int B, int64_t N) {
  return ser_wav2vec2_encoder_forward(enc, y, hidden, x, lengths, B, N);
}

int ser_wav2vec2_encoder_forward_tensor(const ser_wav2vec2_encoder *enc, ser_tensor **out, ser_tensor **hidden,
                                        const ser_tensor *x, const int32_t *lengths) {
  *out = NULL;
  const ser_wav2vec2_config *c = &enc->cfg;
  const char *fam = ser_wav2vec2_family_name(c->family);
  if (x->ndim != 2)
    return ser_error(SER_EINVAL, "%s encoder: expected a batch of 16 kHz waveforms [B, N], got %s (one clip [N]: "
                     "view(1, -1))", fam, SER_SHAPE(x));
  if (x->shape[0] > (1 << 20) || x->shape[1] > (1 << 26))
    return ser_error(SER_EINVAL, "%s encoder: input %s is too large", fam, SER_SHAPE(x));
  const int B = (int)x->shape[0];
  const int64_t N = x->shape[1];
  int rc = ser_wav2vec2_encoder_check(enc, B, N, lengths);
  if (rc) return rc;
  const ser_encoder_dims d = {B, N, ser_wav2vec2_encoder_frames(enc, N), c->layers, c->d_model};
  return ser_encoder_forward_tensor(out, hidden, x, lengths, enc, run_raw, d, fam);
}
