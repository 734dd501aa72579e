/* The Whisper encoder from C (src/pretrained/whisper.h), without Lua: a small
 * random encoder written here as a Hugging Face-style float16 checkpoint with a
 * large decoder tensor beside it; loading must convert the weights and leave the
 * decoder on disk; a padded batch must equal its clips run alone; bad input must
 * fail with a message; config.json's parser takes what it should and refuses the
 * rest. (PyTorch parity is in tests/lua/pretrained_spec.lua.) */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fixture.h"
#include "pretrained/whisper_config.h"

static char dir[256];
enum { L = 2, D = 64, H = 4, M = 80, F = 256, P = 1500 };
static const int64_t DECODER = 2 * 1024 * 1024; /* 8 MB of float32 that must never be loaded */

static ser_tensor *randt(ser_rng *rng, float scale, float shift, int ndim, const int64_t *shape) {
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  ser_tensor_fill_normal(t, shift, scale, rng);
  return t;
}

static int setup(void **state) {
  snprintf(dir, sizeof dir, "/tmp/ser_whisper_test.XXXXXX");
  if (!mkdtemp(dir)) return -1;
  ser_rng rngs, *rng = &rngs;
  ser_rng_seed(rng, 7);
  const char *names[64];
  ser_tensor *ts[64];
  ser_st_dtype dts[64];
  char buf[64][128];
  int n = 0;
#define ADD(nm, scale, shift, ...)                                              \
  do {                                                                          \
    snprintf(buf[n], sizeof buf[n], "model.encoder.%s", nm);                    \
    names[n] = buf[n];                                                          \
    const int64_t sh[] = {__VA_ARGS__};                                         \
    ts[n] = randt(rng, scale, shift, (int)(sizeof sh / sizeof sh[0]), sh);      \
    dts[n++] = SER_ST_F16;                                                      \
  } while (0)
  ADD("conv1.weight", 0.05f, 0, D, M, 3);
  ADD("conv1.bias", 0.05f, 0, D);
  ADD("conv2.weight", 0.05f, 0, D, D, 3);
  ADD("conv2.bias", 0.05f, 0, D);
  ADD("embed_positions.weight", 0.5f, 0, P, D);
  ADD("layer_norm.weight", 0.1f, 1, D);
  ADD("layer_norm.bias", 0.1f, 0, D);
  char nm[64];
  for (int l = 0; l < L; l++) {
#define LAYER(suffix, scale, shift, ...)                       \
  snprintf(nm, sizeof nm, "layers.%d.%s", l, suffix);          \
  ADD(nm, scale, shift, __VA_ARGS__)
    LAYER("self_attn_layer_norm.weight", 0.1f, 1, D);
    LAYER("self_attn_layer_norm.bias", 0.1f, 0, D);
    LAYER("self_attn.q_proj.weight", 0.1f, 0, D, D);
    LAYER("self_attn.q_proj.bias", 0.1f, 0, D);
    LAYER("self_attn.k_proj.weight", 0.1f, 0, D, D);
    LAYER("self_attn.v_proj.weight", 0.1f, 0, D, D);
    LAYER("self_attn.v_proj.bias", 0.1f, 0, D);
    LAYER("self_attn.out_proj.weight", 0.1f, 0, D, D);
    LAYER("self_attn.out_proj.bias", 0.1f, 0, D);
    LAYER("final_layer_norm.weight", 0.1f, 1, D);
    LAYER("final_layer_norm.bias", 0.1f, 0, D);
    LAYER("fc1.weight", 0.1f, 0, F, D);
    LAYER("fc1.bias", 0.1f, 0, F);
    LAYER("fc2.weight", 0.05f, 0, D, F);
    LAYER("fc2.bias", 0.1f, 0, D);
  }
  names[n] = "model.decoder.embed_tokens.weight";
  ts[n] = ser_tensor_zeros(1, SER_DIMS(DECODER));
  dts[n++] = SER_ST_F32;
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  const int rc = ser_safetensors_write_as(path, n, names, ts, dts, 0, NULL, NULL);
  for (int i = 0; i < n; i++) ser_tensor_release(ts[i]);
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "{\"model_type\": \"whisper\", \"num_mel_bins\": %d, \"d_model\": %d, \"encoder_layers\": %d, "
             "\"encoder_attention_heads\": %d, \"encoder_ffn_dim\": %d, \"max_source_positions\": %d}\n",
          M, D, L, H, F, P);
  fclose(f);
  return rc;
}

static int teardown(void **state) {
  char p[512];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/config.json", dir);
  unlink(p);
  rmdir(dir);
  return 0;
}

/* Loads only the encoder: memory held afterwards is the float32 weights, not the decoder. */
static void load_reads_the_encoder_only(void **state) {
  const size_t live0 = ser_memory_live();
  ser_memory_reset_peak();
  ser_whisper_encoder *enc;
  assert_int_equal(ser_whisper_encoder_load(&enc, dir), 0);
  const int64_t params = (int64_t)D * M * 3 + D + D * D * 3 + D + (int64_t)P * D + 2 * D +
                         L * (4 * D + 4 * D * D + 3 * D + 2 * D * F + F + D);
  assert_int_equal(enc->n_params, params);
  assert_int_equal(enc->cfg.layers, L);
  assert_int_equal(enc->cfg.heads, H);
  assert_int_equal(enc->cfg.ffn, F);
  assert_true(enc->has_config);
  const size_t held = ser_memory_live() - live0, peak = ser_memory_peak() - live0;
  printf("  %lld parameters; %zu bytes held after load, peak %zu (the decoder tensor: %lld bytes)\n",
         (long long)params, held, peak, (long long)DECODER * 4);
  assert_true(peak < (size_t)params * 4 + 65536);
  /* float16 values converted exactly: conv1.bias equals its F16 rounding */
  for (int i = 0; i < D; i++) assert_true(enc->conv1_b[i] == ser_f16_to_f32(ser_f32_to_f16(enc->conv1_b[i])));
  ser_whisper_encoder_free(enc);
  assert_int_equal(ser_memory_live(), live0);
}

/* A padded batch equals its clips run alone; rows past a clip are zero; NULL outputs are allowed. */
static void batch_equals_alone(void **state) {
  ser_whisper_encoder *enc;
  assert_int_equal(ser_whisper_encoder_load(&enc, dir), 0);
  enum { B = 3, T = 37 };
  const int32_t len[B] = {37, 20, 9};
  const int T2 = (int)ser_whisper_encoder_frames(T);
  assert_int_equal(T2, 19);
  float *x = malloc(sizeof(float) * B * M * T);
  ser_rng rng;
  ser_rng_seed(&rng, 3);
  for (int i = 0; i < B * M * T; i++) x[i] = ser_rng_normal(&rng);
  float *out = malloc(sizeof(float) * B * T2 * D), *hid = malloc(sizeof(float) * (L + 1) * B * T2 * D);
  assert_int_equal(ser_whisper_encoder_forward(enc, out, hid, x, len, B, T), 0);
  for (int b = 0; b < B; b++) {
    const int n2 = (len[b] + 1) / 2;
    float *o1 = malloc(sizeof(float) * n2 * D), *h1 = malloc(sizeof(float) * (L + 1) * n2 * D);
    float *x1 = malloc(sizeof(float) * M * len[b]);
    for (int m = 0; m < M; m++) memcpy(x1 + m * len[b], x + ((size_t)b * M + m) * T, sizeof(float) * len[b]);
    assert_int_equal(ser_whisper_encoder_forward(enc, o1, h1, x1, NULL, 1, len[b]), 0);
    char label[64];
    snprintf(label, sizeof label, "clip %d", b + 1);
    assert_close_rel(label, out + (size_t)b * T2 * D, o1, (size_t)n2 * D, 1.0, 1e-5);
    for (int l = 0; l <= L; l++)
      assert_close_rel(label, hid + ((size_t)l * B + b) * T2 * D, h1 + (size_t)l * n2 * D, (size_t)n2 * D, 1.0, 1e-5);
    for (int i = n2 * D; i < T2 * D; i++) assert_true(out[(size_t)b * T2 * D + i] == 0.0f);
    free(o1);
    free(h1);
    free(x1);
  }
  /* only the hidden states, or only the output */
  assert_int_equal(ser_whisper_encoder_forward(enc, NULL, hid, x, len, B, T), 0);
  assert_int_equal(ser_whisper_encoder_forward(enc, out, NULL, x, len, B, T), 0);
  free(x);
  free(out);
  free(hid);
  ser_whisper_encoder_free(enc);
}

static void bad_input(void **state) {
  ser_whisper_encoder *enc;
  assert_int_equal(ser_whisper_encoder_load(&enc, dir), 0);
  float x[M * 4] = {0};
  const int32_t bad[1] = {5};
  assert_int_equal(ser_whisper_encoder_forward(enc, x, NULL, x, bad, 1, 4), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "length of clip 1 is 5 frames, expected 1..4"));
  assert_int_equal(ser_whisper_encoder_check(enc, 1, 3001, NULL), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "longer than Whisper's 30 s window"));
  ser_tensor *t = ser_tensor_zeros(3, SER_DIMS(1, 128, 10)), *y = NULL;
  assert_int_equal(ser_whisper_encoder_forward_tensor(enc, &y, NULL, t, NULL), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "[B, 80, T] (80 mel bins), got [1,128,10]"));
  assert_null(y);
  ser_tensor_release(t);
  ser_whisper_encoder_free(enc);
  ser_whisper_encoder *none = (ser_whisper_encoder *)1;
  assert_int_equal(ser_whisper_encoder_load(&none, "/nonexistent/whisper"), SER_EIO);
  assert_null(none);
  printf("  %s\n", ser_errmsg());
}

/* config.json: the fields read, what is refused (with the file named), parsed by length
 * (a 0 byte inside does not end it), and the size bound of the file reader. */
static void config_parser(void **state) {
  whisper_config_fields c;
  static const char ok[] = "{\"model_type\": \"whisper\", \"activation_function\": \"gelu\", \"num_mel_bins\": 128, "
                           "\"d_model\": 1280, \"encoder_attention_heads\": 20, \"encoder_layers\": 32, "
                           "\"encoder_ffn_dim\": 5120, \"max_source_positions\": 1500, \"vocab_size\": 51866}";
  assert_int_equal(ser_whisper_config_parse(&c, ok, sizeof ok - 1, "ok.json"), 0);
  assert_int_equal(c.n_mels, 128);
  assert_int_equal(c.d_model, 1280);
  assert_int_equal(c.heads, 20);
  assert_int_equal(c.layers, 32);
  assert_int_equal(c.ffn, 5120);
  assert_int_equal(c.max_positions, 1500);
  static const char partial[] = "{\"d_model\": 384}";
  assert_int_equal(ser_whisper_config_parse(&c, partial, sizeof partial - 1, "p.json"), 0);
  assert_int_equal(c.d_model, 384);
  assert_int_equal(c.heads, -1);
  static const struct { const char *text; int rc; const char *msg; } bad[] = {
      {"{\"model_type\": \"wav2vec2\"}", SER_EFORMAT, "'bad.json' describes a model of type 'wav2vec2', not 'whisper'"},
      {"{\"model_type\": 3}", SER_EFORMAT, "of type '(not a string)'"},
      {"{\"activation_function\": \"relu\"}", SER_EUNSUPPORTED, "activation_function 'relu'; only 'gelu'"},
      {"{\"d_model\": 1.5}", SER_EFORMAT, "d_model must be a whole number in [1, 1000000]"},
      {"{\"encoder_layers\": \"6\"}", SER_EFORMAT, "encoder_layers must be a whole number"},
      {"{\"encoder_ffn_dim\": 0}", SER_EFORMAT, "encoder_ffn_dim must be a whole number"},
      {"{\"num_mel_bins\": 1e300}", SER_EFORMAT, "num_mel_bins must be a whole number"},
      {"[1, 2]", SER_EFORMAT, "'bad.json' is not a JSON object"},
      {"", SER_EFORMAT, "is not a JSON object"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(ser_whisper_config_parse(&c, bad[i].text, strlen(bad[i].text), "bad.json"), bad[i].rc);
    if (!strstr(ser_errmsg(), bad[i].msg)) fail_msg("case %zu: '%s' lacks '%s'", i, ser_errmsg(), bad[i].msg);
    assert_int_equal(c.d_model, -1);   /* nothing half-read is left behind */
  }
  /* read to its length: cJSON takes a 0 byte for white space, so what follows it still counts */
  static const char nul[] = "{\"d_model\": 512\0, \"encoder_layers\": 4}";
  assert_int_equal(ser_whisper_config_parse(&c, nul, sizeof nul - 1, "nul.json"), 0);
  assert_int_equal(c.layers, 4);

  /* the reader: 64 KiB exactly is read, one byte more refused; a missing file named */
  char path[512];
  snprintf(path, sizeof path, "%s/big.json", dir);
  for (int extra = 0; extra <= 1; extra++) {
    FILE *f = fopen(path, "w");
    fputs(partial, f);
    for (size_t k = sizeof partial - 1; k < (1u << 16) + (size_t)extra; k++) fputc(' ', f);
    fclose(f);
    const int rc = ser_whisper_config_read(&c, path);
    if (extra) {
      assert_int_equal(rc, SER_EFORMAT);
      assert_non_null(strstr(ser_errmsg(), "is larger than 64 KiB; expected a Hugging Face config.json"));
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(c.d_model, 384);
    }
  }
  unlink(path);
  assert_int_equal(ser_whisper_config_read(&c, "/nonexistent/config.json"), SER_EIO);
  assert_non_null(strstr(ser_errmsg(), "whisper: cannot open '/nonexistent/config.json'"));
  assert_int_equal(ser_whisper_config_read(&c, dir), SER_EIO);   /* a folder opens, but cannot be read */
  assert_non_null(strstr(ser_errmsg(), "Is a directory"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(load_reads_the_encoder_only),
      cmocka_unit_test(batch_equals_alone),
      cmocka_unit_test(bad_input),
      cmocka_unit_test(config_parser),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
