/* src/audio/stream.c from C, as a program without Lua would use it: PCM decoding with a partial
 * frame left over, windows every hop and the tail window after finish, the streamed resampler
 * against one-shot libsoxr output, a push bounded by the ring, and errors with messages. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audio/resample.h"
#include "audio/stream.h"
#include "core/error.h"
#include "lib/fixture.h"

static void test_pcm_decode(void **state) {
  (void)state;
  /* stereo s16: (0, 16384) (-32768, 32767), then one byte of a third frame */
  const unsigned char s16[] = {0x00, 0x00, 0x00, 0x40, 0x00, 0x80, 0xff, 0x7f, 0x11};
  float out[4];
  size_t used = 0;
  assert_int_equal(ser_pcm_decode(out, s16, sizeof s16, SER_PCM_S16, 2, &used), 2);
  assert_int_equal(used, 8);
  assert_true(out[0] == 0.25f);
  assert_true(out[1] == (-1.0f + 32767.0f / 32768.0f) / 2.0f);
  float f[2] = {0.5f, NAN};
  assert_int_equal(ser_pcm_decode(out, (const unsigned char *)f, 4, SER_PCM_F32, 1, &used), 1);
  assert_true(out[0] == 0.5f);
  assert_true(ser_pcm_decode(out, (const unsigned char *)f, 8, SER_PCM_F32, 1, &used) == SER_EFORMAT);
  assert_non_null(strstr(ser_errmsg(), "f32 sample at byte 4 of this block is NaN"));
  f[1] = 3e38f;
  assert_true(ser_pcm_decode(out, (const unsigned char *)f, 8, SER_PCM_F32, 1, &used) == SER_EFORMAT);
  assert_non_null(strstr(ser_errmsg(), "float PCM is expected within [-1, 1]"));
  assert_true(ser_pcm_decode(out, s16, 4, SER_PCM_S16, 0, &used) == SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "channels must be in 1..64, got 0"));
}

/* Pushes x in blocks, taking windows as they come; returns the count, checks each against ref
 * (the whole signal at the stream's rate) and that windows start on the hop grid. */
static int stream_all(ser_stream *s, const float *x, int64_t n, int64_t block, const float *ref, int64_t ref_n,
                      int64_t window, int64_t hop, int64_t *last_len) {
  float *w = malloc(sizeof(float) * (size_t)window);
  assert_non_null(w);
  int count = 0;
  int64_t start, len;
  for (int64_t at = 0; at < n;) {
    int64_t k = n - at < block ? n - at : block;
    int64_t t = ser_stream_push(s, x + at, k);
    assert_true(t >= 0);
    int got = 0;
    while (ser_stream_next_window(s, w, &start, &len)) {
      assert_int_equal(start, (int64_t)count * hop);
      assert_true(start + len <= ref_n);
      assert_memory_equal(w, ref + start, (size_t)len * sizeof(float));
      count++;
      got++;
      *last_len = len;
    }
    assert_true(t > 0 || got > 0); /* never stuck */
    at += t;
  }
  int rc;
  while ((rc = ser_stream_finish(s)) == 1)
    while (ser_stream_next_window(s, w, &start, &len)) count++, *last_len = len;
  assert_int_equal(rc, 0);
  while (ser_stream_next_window(s, w, &start, &len)) {
    assert_memory_equal(w, ref + start, (size_t)len * sizeof(float));
    count++;
    *last_len = len;
  }
  free(w);
  return count;
}

static void test_windows_and_tail(void **state) {
  (void)state;
  float x[1050];
  for (int i = 0; i < 1050; i++) x[i] = (float)i / 2048.0f;
  ser_stream *s = NULL;
  ser_stream_opts o = {.in_rate = 16000, .rate = 16000, .window = 300, .hop = 100};
  assert_int_equal(ser_stream_new(&s, &o), 0);
  int64_t last = 0;
  /* full windows at 0..700, then the tail [800, 1050) */
  assert_int_equal(stream_all(s, x, 1050, 77, x, 1050, 300, 100, &last), 9);
  assert_int_equal(last, 250);
  assert_int_equal(ser_stream_samples(s), 1050);
  assert_true(ser_stream_push(s, x, 1) == SER_ESTATE);
  ser_stream_free(s);
}

static void test_resampled_equals_oneshot(void **state) {
  (void)state;
  const int64_t n = 44100 * 2;
  float *x = malloc(sizeof(float) * (size_t)n);
  assert_non_null(x);
  for (int64_t i = 0; i < n; i++) x[i] = 0.3f * sinf(0.05f * (float)i) + 0.1f * sinf(0.31f * (float)i);
  int64_t rn = ser_resample_length(n, 44100, 16000, SER_RESAMPLE_SOXR);
  float *ref = malloc(sizeof(float) * (size_t)rn);
  assert_non_null(ref);
  assert_int_equal(ser_resample_soxr(ref, x, n, 44100, 16000), 0);
  ser_stream *s = NULL;
  ser_stream_opts o = {.in_rate = 44100, .rate = 16000, .window = 8000, .hop = 2000};
  assert_int_equal(ser_stream_new(&s, &o), 0);
  int64_t last = 0;
  int count = stream_all(s, x, n, 1234, ref, rn, 8000, 2000, &last);
  assert_int_equal(ser_stream_samples(s), rn);
  assert_int_equal(count, (int)((rn - 8000) / 2000) + 1 + ((rn - 8000) % 2000 ? 1 : 0));
  ser_stream_free(s);
  free(ref);
  free(x);
}

static void test_bounded_push_and_errors(void **state) {
  (void)state;
  ser_stream *s = NULL;
  ser_stream_opts o = {.in_rate = 16000, .rate = 16000, .window = 1000, .hop = 500};
  assert_int_equal(ser_stream_new(&s, &o), 0);
  float *x = calloc(100000, sizeof(float));
  assert_non_null(x);
  int64_t t = ser_stream_push(s, x, 100000);
  assert_true(t >= 1000 && t < 100000);
  assert_int_equal(ser_stream_push(s, x, 10), 0);
  x[3] = INFINITY;
  assert_true(ser_stream_push(s, x, 10) == SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "sample 4 of this push is infinite"));
  free(x);
  ser_stream_free(s);
  o.hop = 2000;
  assert_true(ser_stream_new(&s, &o) == SER_EINVAL);
  assert_null(s);
  assert_non_null(strstr(ser_errmsg(), "hop must be 1..1000 samples"));
  ser_stream_free(NULL);
}

static void test_frame_db(void **state) {
  (void)state;
  float x[400];
  for (int i = 0; i < 400; i++) x[i] = i < 160 ? 0.0f : i < 320 ? 0.1f : 1.0f;
  float db[3];
  ser_frame_db(db, x, 400, 160);
  assert_true(db[0] == -120.0f);
  assert_true(fabsf(db[1] + 20.0f) < 1e-4f);
  assert_true(fabsf(db[2]) < 1e-6f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pcm_decode),
      cmocka_unit_test(test_windows_and_tail),
      cmocka_unit_test(test_resampled_equals_oneshot),
      cmocka_unit_test(test_bounded_push_and_errors),
      cmocka_unit_test(test_frame_db),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
