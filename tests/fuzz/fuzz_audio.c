/* libFuzzer target: the audio loader (ser_audio_load in src/audio/io.c, which
 * decodes through libsndfile and resamples through libsoxr) on arbitrary bytes.
 *
 * The loader takes a path, so the input is placed in a memfd and loaded through
 * /proc/self/fd/N (no files on disk, nothing to clean up between runs). The first
 * byte chooses the options so that every path of the loader is reached: target
 * rate (keep / 16 kHz / 8 kHz), mono or all channels, a fixed duration or the whole
 * file, an offset. A successful load must hold finite samples of the promised
 * shape; a failure must carry a message naming the file. */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "audio/io.h"
#include "core/alloc.h"
#include "core/error.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_audio: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  data++, size--;
  int fd = memfd_create("fuzz-audio", 0);
  if (fd < 0) fail("memfd_create failed");
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0) fail("write to memfd failed");
    off += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

  static const int rates[4] = {0, 16000, 8000, 16000};
  ser_audio_opts o = ser_audio_opts_default();
  o.sr = rates[sel & 3];
  o.mono = (sel >> 2) & 1;
  /* A bounded duration for most inputs: the loader must not need more memory than
   * that, whatever frame count the header claims. */
  o.seconds = ((sel >> 3) & 3) == 0 ? 0.0 : 0.25 * ((sel >> 3) & 3);
  o.offset = (sel >> 5) & 1 ? 0.01 : 0.0;
  o.normalize = (sel >> 6) & 1;

  const size_t live0 = ser_memory_live();
  ser_audio a;
  ser_error_clear();
  const int rc = ser_audio_load(&a, path, &o);
  if (rc < 0) {
    const char *msg = ser_errmsg();
    if (!msg || !*msg) fail("failure without a message");
    if (!strstr(msg, path)) fail("message does not name the file");
    if (a.data) fail("failure left data behind");
  } else {
    if (!a.data || a.frames < 1 || a.channels < 1 || a.sr < 1) fail("success with an empty result");
    if (o.mono && a.channels != 1) fail("mono requested, more than one channel returned");
    if (o.sr && a.sr != o.sr) fail("rate differs from the requested one");
    if (o.seconds > 0 && a.frames != (int64_t)llround(o.seconds * a.sr)) fail("length differs from round(seconds * sr)");
    for (int64_t i = 0; i < a.frames * a.channels; i++)
      if (!isfinite(a.data[i])) fail("non-finite sample in a successful load");
    ser_audio_free(&a);
  }
  if (ser_memory_live() != live0) fail("ser_alloc accounting does not return to its start (leak)");
  close(fd);
  return 0;
}
