/* libFuzzer target: the config.json parser of the Whisper loader
 * (src/pretrained/whisper_config.c) on arbitrary bytes. It must fail with a
 * message naming the file and leave every field unset, or succeed with every
 * field either unset (-1) or a whole number in [1, 1e6], the range the loader's
 * shape checks rely on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pretrained/whisper_config.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_whisper_config: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  whisper_config_fields c;
  ser_error_clear();
  const int rc = ser_whisper_config_parse(&c, (const char *)data, size, "fuzz.json");
  const int fields[6] = {c.n_mels, c.d_model, c.heads, c.layers, c.ffn, c.max_positions};
  for (int i = 0; i < 6; i++) {
    if (rc < 0 && fields[i] != -1) fail("a field set although the parse failed");
    if (fields[i] != -1 && (fields[i] < 1 || fields[i] > 1000000)) fail("a field out of range");
  }
  if (rc < 0) {
    const char *msg = ser_errmsg();
    if (!msg || !strstr(msg, "fuzz.json")) fail("failure without a message naming the file");
  } else if (rc != 0) {
    fail("a return code other than 0 or an error");
  }
  return 0;
}
