/* libFuzzer target: the raw PCM decoder of serve.lua's live chunks (src/http/pcm.c) on
 * arbitrary bytes, as f32 and as s16. It must accept exactly the bodies that are a whole
 * number of samples (and, for f32, all finite), give that many samples with the values
 * the bytes say, refuse the rest with a message, and leave no memory behind. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/tensor.h"
#include "http/pcm.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_pcm: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const size_t live0 = ser_memory_live();
  for (int f = 0; f < 2; f++) {
    ser_pcm_format fmt = f ? SER_PCM_S16 : SER_PCM_F32;
    size_t width = f ? 2 : 4;
    int finite = 1;
    for (size_t i = 0; !f && i + 4 <= size; i += 4) {
      float v;
      memcpy(&v, data + i, 4); /* little-endian host (x86-64) */
      if (!isfinite(v)) finite = 0;
    }
    int valid = size % width == 0 && finite;
    ser_tensor *t = NULL;
    ser_error_clear();
    int rc = ser_pcm_decode(&t, data, size, fmt);
    if (valid != (rc == 0)) fail(valid ? "refused a valid body" : "accepted an invalid body");
    if (rc < 0) {
      if (t) fail("a refusal left a tensor");
      if (!ser_errmsg()[0]) fail("a refusal without a message");
      continue;
    }
    if (ser_tensor_numel(t) != (int64_t)(size / width)) fail("wrong sample count");
    const float *x = ser_tensor_data(t);
    for (int64_t i = 0; i < ser_tensor_numel(t); i++) {
      float want;
      if (f) {
        int16_t v;
        memcpy(&v, data + 2 * i, 2);
        want = (float)v / 32768.0f;
      } else {
        memcpy(&want, data + 4 * i, 4);
      }
      if (memcmp(&want, &x[i], 4) != 0) fail("a sample differs from its bytes");
      if (f && (x[i] < -1.0f || x[i] >= 1.0f)) fail("an s16 sample outside [-1, 1)");
    }
    ser_tensor_release(t);
  }
  if (ser_memory_live() != live0) fail("memory left allocated");
  return 0;
}
