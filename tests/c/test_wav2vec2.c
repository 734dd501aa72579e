/* wav2vec 2.0 / HuBERT / WavLM from C (src/pretrained/wav2vec2.h), without Lua:
 * WavLM's buckets at their edges, the grouped convolution against a plain loop,
 * and a committed random WavLM (tests/data/wav2vec2/wavlm_group) loaded and run
 * by the C API against its PyTorch reference (the full parity tests are in
 * tests/lua/wav2vec2_spec.lua). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fixture.h"
#include "pretrained/wavlm_bias.h"

#define FIXTURE "tests/data/wav2vec2/"

/* modeling_wavlm.py's buckets for 320 buckets, distance 800: 80 exact per side, then log-spaced
 * to the last bucket of each half (159 / 319) */
static void wavlm_buckets(void **state) {
  (void)state;
  const int64_t r[] = {0, 1, -1, 79, -79, 80, -80, 100, 799, 800, -800, 100000};
  const int want[] = {0, 161, 1, 239, 79, 240, 80, 160 + 80 + (int)(logf(100.0f / 80) / log(10.0) * 80), 319, 319, 159,
                      319};
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
    const int got = ser_wavlm_bucket(r[i], 320, 800);
    if (got != want[i]) fail_msg("bucket(%lld) = %d, expected %d", (long long)r[i], got, want[i]);
  }
}

/* grouped conv1d against the definition, with stride, padding and dilation */
static void grouped_conv_definition(void **state) {
  (void)state;
  enum { B = 2, C = 6, W = 13, OC = 4, G = 2, K = 4 };
  ser_conv_geom g = {.B = B, .C = C, .H = 1, .W = W, .OC = OC, .KH = 1, .KW = K, .sh = 1, .sw = 2, .ph = 0, .pw = 2,
                     .dh = 1, .dw = 2};
  assert_int_equal(0, ser_conv_geom_init(&g, "test"));
  float in[B * C * W], w[OC * (C / G) * K], bias[OC], out[B * OC * 16];
  for (int i = 0; i < B * C * W; i++) in[i] = sinf(0.37f * i);
  for (int i = 0; i < OC * (C / G) * K; i++) w[i] = cosf(0.21f * i);
  for (int i = 0; i < OC; i++) bias[i] = 0.1f * i;
  assert_int_equal(0, ser_conv1d_grouped_forward(out, in, w, bias, G, &g));
  double worst = 0;
  for (int b = 0; b < B; b++)
    for (int o = 0; o < OC; o++)
      for (int t = 0; t < g.OW; t++) {
        const int grp = o / (OC / G);
        double s = bias[o];
        for (int c = 0; c < C / G; c++)
          for (int k = 0; k < K; k++) {
            const int x = t * 2 - 2 + 2 * k;
            if (x >= 0 && x < W) s += (double)w[(o * (C / G) + c) * K + k] * in[(b * C + grp * (C / G) + c) * W + x];
          }
        worst = fmax(worst, fabs(s - out[(b * OC + o) * g.OW + t]));
      }
  if (worst > 1e-5) fail_msg("grouped conv differs from the definition by %g", worst);
  assert_int_not_equal(0, ser_conv1d_grouped_forward(out, in, w, bias, 4, &g)); /* 4 does not divide 6 */
  assert_non_null(strstr(ser_errmsg(), "4 groups must divide the 6 input and 4 output channels"));
}

static void wavlm_from_c(void **state) {
  (void)state;
  if (access(FIXTURE "wavlm_group/model.safetensors", R_OK) != 0) skip();
  ser_wav2vec2_encoder *enc = NULL;
  assert_int_equal(0, ser_wav2vec2_encoder_load(&enc, FIXTURE "wavlm_group"));
  assert_int_equal(SER_W2V_WAVLM, enc->cfg.family);
  assert_int_equal(1, ser_wav2vec2_detect(FIXTURE "wavlm_group"));
  assert_int_equal(0, ser_wav2vec2_detect(FIXTURE "clips.safetensors"));
  ser_safetensors *clips = NULL, *ref = NULL;
  assert_int_equal(0, ser_safetensors_read(&clips, FIXTURE "clips.safetensors"));
  assert_int_equal(0, ser_safetensors_read(&ref, FIXTURE "wavlm_group/ref.safetensors"));
  const ser_tensor *clip = NULL;
  for (int i = 0; i < clips->n; i++)
    if (strcmp(clips->names[i], "clip.2") == 0) clip = clips->tensors[i];
  assert_non_null(clip);
  const int64_t n = clip->shape[0], T = ser_wav2vec2_encoder_frames(enc, n);
  const int L = enc->cfg.layers, d = enc->cfg.d_model;
  float *wav = malloc(sizeof(float) * (size_t)n), *hidden = malloc(sizeof(float) * (size_t)((L + 1) * T * d));
  ser_wav2vec2_frontend(enc, wav, ser_tensor_data((ser_tensor *)clip), n);
  assert_int_equal(0, ser_wav2vec2_encoder_forward(enc, NULL, hidden, wav, NULL, 1, n));
  for (int l = 0; l <= L; l++) {
    char name[32];
    snprintf(name, sizeof name, "hs.2.%d", l + 1);
    const ser_tensor *want = NULL;
    for (int i = 0; i < ref->n; i++)
      if (strcmp(ref->names[i], name) == 0) want = ref->tensors[i];
    assert_non_null(want);
    assert_int_equal(T * d, ser_tensor_numel(want));
    const float *w = ser_tensor_data((ser_tensor *)want);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < T * d; i++) {
      worst = fmax(worst, fabs(hidden[(int64_t)l * T * d + i] - w[i]));
      scale = fmax(scale, fabs(w[i]));
    }
    if (worst > 1e-4 * scale) fail_msg("hidden state %d: max error %g (max |ref| %g)", l, worst, scale);
  }
  /* bad input: too short */
  assert_int_not_equal(0, ser_wav2vec2_encoder_forward(enc, NULL, hidden, wav, NULL, 1, 399));
  assert_non_null(strstr(ser_errmsg(), "input of 399 samples, expected 400"));
  free(wav);
  free(hidden);
  ser_safetensors_free(clips);
  ser_safetensors_free(ref);
  ser_wav2vec2_encoder_free(enc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(wavlm_buckets),
      cmocka_unit_test(grouped_conv_definition),
      cmocka_unit_test(wavlm_from_c),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
