/* Raw little-endian PCM -> float waveform (pcm.h). */
#include "pcm.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"

int ser_pcm_format_parse(ser_pcm_format *out, const char *name) {
  if (name && strcmp(name, "f32") == 0) *out = SER_PCM_F32;
  else if (name && strcmp(name, "s16") == 0) *out = SER_PCM_S16;
  else return ser_error(SER_EINVAL, "pcm: unknown sample format '%s' (expected f32 or s16)", name ? name : "(none)");
  return 0;
}

int ser_pcm_decode(ser_tensor **out, const void *bytes, size_t nbytes, ser_pcm_format fmt) {
  *out = NULL;
  size_t width = fmt == SER_PCM_F32 ? 4 : 2;
  const char *name = fmt == SER_PCM_F32 ? "f32" : "s16";
  if (nbytes % width)
    return ser_error(SER_EFORMAT, "pcm: %zu bytes are not a whole number of %s samples (%zu bytes each)", nbytes,
                     name, width);
  int64_t n = (int64_t)(nbytes / width);
  const unsigned char *b = bytes;
  /* checked before allocating, so a refused body costs nothing */
  if (fmt == SER_PCM_F32) {
    for (int64_t i = 0; i < n; i++) {
      uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                   (uint32_t)b[4 * i + 3] << 24;
      float v;
      memcpy(&v, &u, 4);
      if (!isfinite(v))
        return ser_error(SER_EFORMAT, "pcm: sample %lld of %lld is not a finite number (expected float32 audio)",
                         (long long)i + 1, (long long)n);
    }
  }
  int64_t shape[1] = {n};
  ser_tensor *t = ser_tensor_empty(1, shape);
  if (!t) return SER_ENOMEM;
  float *x = ser_tensor_data(t);
  for (int64_t i = 0; i < n; i++) {
    if (fmt == SER_PCM_F32) {
      uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                   (uint32_t)b[4 * i + 3] << 24;
      memcpy(&x[i], &u, 4);
    } else {
      int16_t v = (int16_t)(uint16_t)((uint16_t)b[2 * i] | (uint16_t)b[2 * i + 1] << 8);
      x[i] = (float)v / 32768.0f;
    }
  }
  *out = t;
  return 0;
}
