/* libFuzzer target: the config.json / preprocessor_config.json parser of the
 * wav2vec2-family loader (src/pretrained/wav2vec2_config.c) on arbitrary bytes;
 * the first byte picks the parser (even: config.json, odd: preprocessor). It
 * must fail with a message naming the file, or succeed with every field either
 * unset (-1 / 0) or inside the range the loader relies on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pretrained/wav2vec2_config.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_w2v_config: %s\n", what);
  abort();
}

static void check_int(int v, int hi, const char *name) {
  if (v != -1 && (v < 1 || v > hi)) fail(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  w2v_config_fields cf;
  ser_w2v_config_init(&cf);
  ser_error_clear();
  const char *text = (const char *)data + 1;
  const int rc = data[0] % 2 ? ser_w2v_preprocessor_parse(&cf, text, size - 1, "fuzz.json")
                             : ser_w2v_config_parse(&cf, text, size - 1, "fuzz.json");
  if (rc < 0) {
    const char *msg = ser_errmsg();
    if (!msg || !strstr(msg, "fuzz.json")) fail("failure without a message naming the file");
    return 0;
  }
  if (cf.family < -1 || cf.family > 2) fail("family out of range");
  if (cf.n_conv != -1 && (cf.n_conv < 1 || cf.n_conv > SER_W2V_MAX_CONV)) fail("n_conv out of range");
  for (int i = 0; i < SER_W2V_MAX_CONV; i++) {
    const int inside = i < cf.n_conv;
    if (cf.conv_dim[i] < 0 || cf.conv_dim[i] > 65536 || (!inside && cf.conv_dim[i])) fail("conv_dim out of range");
    if (cf.conv_kernel[i] < 0 || cf.conv_kernel[i] > 65536 || (!inside && cf.conv_kernel[i])) fail("conv_kernel");
    if (cf.conv_stride[i] < 0 || cf.conv_stride[i] > 65536 || (!inside && cf.conv_stride[i])) fail("conv_stride");
  }
  const int flags[5] = {cf.conv_bias, cf.layer_extractor, cf.proj_norm, cf.stable_layer_norm, cf.do_normalize};
  for (int i = 0; i < 5; i++)
    if (flags[i] < -1 || flags[i] > 1) fail("a flag out of range");
  check_int(cf.d_model, 1000000, "hidden_size");
  check_int(cf.heads, 1000000, "heads");
  check_int(cf.layers, 1000000, "layers");
  check_int(cf.ffn, 1000000, "ffn");
  check_int(cf.pos_kernel, 1000000, "pos_kernel");
  check_int(cf.pos_groups, 1000000, "pos_groups");
  check_int(cf.num_buckets, 1000000, "num_buckets");
  check_int(cf.max_distance, 1000000, "max_distance");
  if (cf.eps != -1 && !(cf.eps > 0 && cf.eps <= 1)) fail("eps out of range");
  return 0;
}
