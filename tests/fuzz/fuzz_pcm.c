/* libFuzzer target: raw PCM from outside (experiments/stream.lua reading stdin) through the
 * stream front end of src/audio/stream.c: ser_pcm_decode block by block (the bytes of an
 * incomplete frame carried into the next block, as ser.stream.input does), ser_stream_push
 * (resampling when the rates differ), the windows and their frame levels, and finish.
 *
 * The first byte chooses the options: bit 0 the format (s16, f32), bits 1-2 the channels
 * (1, 2, 3, 6), bits 3-4 the input rate (16000 = no resampling, 8000, 44100, 48000), bits 5-7
 * the block size. Every decode must consume whole frames only; f32 input may fail (a
 * non-finite sample) with a message, s16 never; windows must hold finite samples, start on the
 * hop grid and be no longer than the window; the samples received must match the decoded count
 * when no resampling happens. */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/stream.h"
#include "core/error.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_pcm: %s\n", what);
  abort();
}

enum { WINDOW = 1600, HOP = 400 };

static float win[WINDOW];
static float db[WINDOW];

static int drain(ser_stream *s) {
  int64_t start, len;
  int count = 0;
  while (ser_stream_next_window(s, win, &start, &len)) {
    count++;
    if (len < 1 || len > WINDOW) fail("window length out of range");
    if (start % HOP != 0) fail("window start off the hop grid");
    for (int64_t i = 0; i < len; i++)
      if (!isfinite(win[i])) fail("non-finite sample in a window");
    ser_frame_db(db, win, len, 160);
    for (int64_t i = 0; i < (len + 159) / 160; i++)
      if (!isfinite(db[i])) fail("non-finite frame level");
  }
  return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  const ser_pcm_format fmt = (sel & 1) ? SER_PCM_F32 : SER_PCM_S16;
  static const int chans[4] = {1, 2, 3, 6};
  static const double rates[4] = {16000, 8000, 44100, 48000};
  static const size_t blocks[8] = {1, 2, 3, 7, 64, 500, 4096, 16384};
  const int channels = chans[(sel >> 1) & 3];
  const double in_rate = rates[(sel >> 3) & 3];
  const size_t block = blocks[(sel >> 5) & 7];
  data++;
  size--;

  ser_stream *s = NULL;
  ser_stream_opts o = {.in_rate = in_rate, .rate = 16000, .window = WINDOW, .hop = HOP};
  if (ser_stream_new(&s, &o) < 0) fail(ser_errmsg());

  const size_t fbytes = (size_t)ser_pcm_sample_bytes(fmt) * (size_t)channels;
  unsigned char *buf = malloc(block + fbytes);
  float *x = malloc(sizeof(float) * ((block + fbytes) / fbytes + 1));
  if (!buf || !x) fail("out of memory");
  size_t carry = 0, at = 0;
  int64_t decoded = 0;
  int failed = 0;
  while (at < size && !failed) {
    size_t take = size - at < block ? size - at : block;
    memcpy(buf + carry, data + at, take);
    at += take;
    size_t have = carry + take, used = 0;
    int64_t n = ser_pcm_decode(x, buf, have, fmt, channels, &used);
    if (n < 0) {
      if (fmt == SER_PCM_S16) fail("s16 decoding failed");
      if (strstr(ser_errmsg(), "f32 sample at byte") == NULL) fail("f32 failure without a message about the sample");
      failed = 1;
      break;
    }
    if (used % fbytes != 0 || used > have || have - used >= fbytes) fail("decode did not consume whole frames");
    if ((size_t)n != used / fbytes) fail("decoded count does not match the bytes used");
    decoded += n;
    carry = have - used;
    memmove(buf, buf + used, carry);
    for (int64_t i = 0; i < n;) {
      int64_t t = ser_stream_push(s, x + i, n - i);
      if (t < 0) fail(ser_errmsg());
      /* a push that takes nothing must leave a window to take (the ring is full of one) */
      if (drain(s) == 0 && t == 0) fail("push took nothing and no window was ready");
      i += t;
    }
  }
  if (!failed) {
    int guard = 0;
    for (;;) {
      int rc = ser_stream_finish(s);
      if (rc < 0) fail(ser_errmsg());
      drain(s);
      if (rc == 0) break;
      if (++guard > 1000000) fail("finish never completed");
    }
    drain(s);
    if (in_rate == 16000 && ser_stream_samples(s) != decoded) fail("samples received differ from samples decoded");
    if (ser_stream_push(s, x, 0) >= 0) fail("push after finish was accepted");
  }
  ser_stream_free(s);
  free(buf);
  free(x);
  return 0;
}
