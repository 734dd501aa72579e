/* Loading, saving, the decode cache and bad files. Test audio is generated
 * here and written with libsndfile into a temporary folder; the RAVDESS check
 * reads ../shared/data when present and skips otherwise. */
#include <dirent.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/audio.h"
#include "lib/fixture.h"

static char tmpdir[256];

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ser_audio_io_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  char p[512];
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name), unlink(p);
  if (d) closedir(d);
  rmdir(tmpdir);
  return 0;
}

static const char *tmp(const char *name) {
  static char p[8][512];
  static int k;
  k = (k + 1) % 8;
  snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
  return p[k];
}

/* Writes frames of a `hz` tone (amplitude amp) in channel 0; channel c gets amp * (1 - c / 2). */
static void write_tone(const char *path, int format, int sr, int channels, int64_t frames, double hz, double amp) {
  SF_INFO info = {.samplerate = sr, .channels = channels, .format = format};
  SNDFILE *f = sf_open(path, SFM_WRITE, &info);
  assert_non_null(f);
  float *buf = malloc(sizeof(float) * (size_t)(frames * channels));
  for (int64_t t = 0; t < frames; t++)
    for (int c = 0; c < channels; c++)
      buf[t * channels + c] = (float)(amp * (1.0 - c / 2.0) * sin(2 * M_PI * hz * (double)t / sr));
  assert_int_equal(sf_writef_float(f, buf, frames), frames);
  sf_close(f);
  free(buf);
}

static double rms(const float *x, int64_t a, int64_t b) {
  double s = 0;
  for (int64_t i = a; i < b; i++) s += (double)x[i] * x[i];
  return sqrt(s / (double)(b - a));
}

/* Every format libsndfile writes here, 44.1 kHz stereo, loads as 16 kHz mono
 * with the channels averaged: channel amplitudes 0.5 and 0.25 -> 0.375. */
static void test_formats_resample_mono(void **state) {
  (void)state;
  struct {
    const char *name;
    int format;
    double tol;
  } fm[] = {
      {"a16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1e-3}, {"a24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 1e-3},
      {"a32.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 1e-3}, {"u8.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 1e-2},
      {"f32.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1e-3},  {"a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1e-3},
      {"a.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 1e-3}, {"a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 2e-2},
      {"a.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 2e-2},
  };
  for (size_t i = 0; i < sizeof fm / sizeof fm[0]; i++) {
    SF_INFO chk = {.samplerate = 44100, .channels = 2, .format = fm[i].format};
    if (!sf_format_check(&chk)) {
      printf("  %s: this libsndfile cannot write it, skipped\n", fm[i].name);
      continue;
    }
    write_tone(tmp(fm[i].name), fm[i].format, 44100, 2, 44100, 1000.0, 0.5);
    ser_audio a;
    ser_audio_opts o = ser_audio_opts_default();
    int rc = ser_audio_load(&a, tmp(fm[i].name), &o);
    if (rc) printf("  %s: %s\n", fm[i].name, ser_errmsg());
    assert_int_equal(rc, 0);
    assert_int_equal(a.sr, 16000);
    assert_int_equal(a.channels, 1);
    assert_int_equal(a.frames, 16000); /* ceil(44100 * 16000 / 44100) */
    double r = rms(a.data, 2000, 14000), want = 0.375 / sqrt(2);
    printf("  %-7s rms %.5f (want %.5f)\n", fm[i].name, r, want);
    assert_true(fabs(r - want) < fm[i].tol);
    ser_audio_free(&a);
  }
  /* mono = false keeps [C][T] planes. */
  ser_audio a;
  ser_audio_opts o = ser_audio_opts_default();
  o.mono = 0;
  o.sr = 0;
  assert_int_equal(ser_audio_load(&a, tmp("f32.wav"), &o), 0);
  assert_int_equal(a.channels, 2);
  assert_int_equal(a.sr, 44100);
  assert_true(fabs(rms(a.data, 0, 44100) - 0.5 / sqrt(2)) < 1e-3);
  assert_true(fabs(rms(a.data + 44100, 0, 44100) - 0.25 / sqrt(2)) < 1e-3);
  ser_audio_free(&a);
}

static void test_seconds_offset_normalize(void **state) {
  (void)state;
  write_tone(tmp("one.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, 16000, 440.0, 0.25);
  ser_audio a;
  ser_audio_opts o = ser_audio_opts_default();
  o.seconds = 4.0;
  assert_int_equal(ser_audio_load(&a, tmp("one.wav"), &o), 0);
  assert_int_equal(a.frames, 64000); /* padded */
  assert_true(rms(a.data, 0, 16000) > 0.17);
  assert_true(rms(a.data, 16000, 64000) == 0.0);
  ser_audio_free(&a);
  o.seconds = 0.5;
  o.offset = 0.25;
  o.normalize = 1;
  assert_int_equal(ser_audio_load(&a, tmp("one.wav"), &o), 0);
  assert_int_equal(a.frames, 8000); /* trimmed */
  float peak = 0;
  for (int64_t i = 0; i < a.frames; i++) peak = fmaxf(peak, fabsf(a.data[i]));
  assert_true(fabsf(peak - 1.0f) < 1e-6f);
  /* offset 0.25 s of a 440 Hz tone starting at phase 0: sample 0 is sin(2 pi 440 * 0.25) = 0 */
  assert_true(fabsf(a.data[0]) < 1e-5f);
  ser_audio_free(&a);
  o = ser_audio_opts_default();
  o.offset = 5.0;
  o.seconds = 4.0;
  assert_int_equal(ser_audio_load(&a, tmp("one.wav"), &o), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "past the end (1.000 s"));
  o = ser_audio_opts_default();
  o.offset = -1;
  assert_int_equal(ser_audio_load(&a, tmp("one.wav"), &o), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "offset"));
}

static void expect_fail(const char *path, const char *fragment) {
  ser_audio a;
  ser_audio_opts o = ser_audio_opts_default();
  int rc = ser_audio_load(&a, path, &o);
  printf("  %s -> %s\n", path, ser_errmsg());
  assert_true(rc < 0);
  assert_non_null(strstr(ser_errmsg(), path));
  assert_non_null(strstr(ser_errmsg(), fragment));
}

static void test_bad_files(void **state) {
  (void)state;
  expect_fail(tmp("missing.wav"), "No such file");
  expect_fail(tmpdir, "directory");
  FILE *f = fopen(tmp("empty.wav"), "wb");
  fclose(f);
  expect_fail(tmp("empty.wav"), "empty");
  f = fopen(tmp("text.wav"), "wb");
  fputs("this is not audio, just text renamed to .wav\n", f);
  fclose(f);
  expect_fail(tmp("text.wav"), "cannot decode");
  /* Truncated WAV: half the data chunk cut off. */
  write_tone(tmp("cut.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 16000, 440.0, 0.5);
  assert_int_equal(truncate(tmp("cut.wav"), 44 + 16000), 0);
  expect_fail(tmp("cut.wav"), "truncated");
  /* Truncated FLAC of a noise-like signal (does not compress away). */
  SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16};
  SNDFILE *s = sf_open(tmp("cut.flac"), SFM_WRITE, &info);
  float *x = malloc(sizeof(float) * 64000);
  uint32_t r = 1;
  for (int i = 0; i < 64000; i++) r = r * 1664525u + 1013904223u, x[i] = (float)(r >> 8) / 16777216.0f - 0.5f;
  sf_writef_float(s, x, 64000);
  sf_close(s);
  free(x);
  struct stat st;
  stat(tmp("cut.flac"), &st);
  assert_int_equal(truncate(tmp("cut.flac"), st.st_size / 2), 0);
  expect_fail(tmp("cut.flac"), "cannot decode");
  /* Float WAV with a NaN: reported, not propagated. */
  info = (SF_INFO){.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
  s = sf_open(tmp("nan.wav"), SFM_WRITE, &info);
  float y[1000] = {0};
  y[123] = NAN;
  y[500] = INFINITY;
  sf_writef_float(s, y, 1000);
  sf_close(s);
  expect_fail(tmp("nan.wav"), "2 non-finite samples (NaN/Inf), the first at frame 123");
}

static void test_save_roundtrip_atomic(void **state) {
  (void)state;
  float x[3000];
  for (int i = 0; i < 3000; i++) x[i] = 0.9f * sinf(0.01f * (float)i) * (i < 1500 ? 1.0f : -0.5f);
  assert_int_equal(ser_audio_save(tmp("s.wav"), x, 3000, 1, 22050), 0);
  assert_int_equal(ser_audio_save(tmp("s.flac"), x, 1500, 2, 22050), 0);
  ser_audio a;
  ser_audio_opts o = ser_audio_opts_default();
  o.sr = 0;
  assert_int_equal(ser_audio_load(&a, tmp("s.wav"), &o), 0);
  assert_int_equal(a.sr, 22050);
  assert_memory_equal(a.data, x, sizeof x); /* float WAV: exact */
  ser_audio_free(&a);
  o.mono = 0;
  assert_int_equal(ser_audio_load(&a, tmp("s.flac"), &o), 0);
  assert_int_equal(a.channels, 2);
  assert_close_abs("flac 16-bit roundtrip", a.data, x, 3000, 1.0 / 32768 + 1e-7);
  ser_audio_free(&a);
  /* No temporary files left behind; failures are clear. */
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp."));
  closedir(d);
  assert_int_equal(ser_audio_save("/nonexistent-dir/x.wav", x, 10, 1, 16000), SER_EIO);
  assert_non_null(strstr(ser_errmsg(), "/nonexistent-dir/x.wav"));
  assert_int_equal(ser_audio_save(tmp("x.mp4"), x, 10, 1, 16000), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), ".mp4"));
  x[7] = NAN;
  assert_int_equal(ser_audio_save(tmp("n.wav"), x, 10, 1, 16000), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "non-finite"));
}

static void test_cache_and_load_many(void **state) {
  (void)state;
  ser_audio_cache_clear();
  const int n = 6;
  const char *paths[7];
  char names[7][32];
  for (int i = 0; i < n; i++) {
    snprintf(names[i], sizeof names[i], "m%d.wav", i);
    paths[i] = strdup(tmp(names[i]));
    write_tone(paths[i], SF_FORMAT_WAV | SF_FORMAT_PCM_16, 48000, 1, 48000 + 4800 * i, 200.0 + 100 * i, 0.4);
  }
  paths[n] = strdup(tmp("not-there.wav"));
  ser_audio out[7];
  int rc[7];
  char *msg[7];
  ser_audio_opts o = ser_audio_opts_default();
  o.seconds = 1.5;
  int fails = ser_audio_load_many(out, rc, msg, paths, n + 1, &o, 1);
  assert_int_equal(fails, 1);
  assert_true(rc[n] < 0);
  assert_non_null(strstr(msg[n], "not-there.wav"));
  free(msg[n]);
  for (int i = 0; i < n; i++) {
    assert_int_equal(rc[i], 0);
    assert_int_equal(out[i].frames, 24000);
    ser_audio single;
    assert_int_equal(ser_audio_load(&single, paths[i], &o), 0);
    assert_memory_equal(single.data, out[i].data, sizeof(float) * 24000);
    ser_audio_free(&single);
    ser_audio_free(&out[i]);
  }
  ser_audio_cache_stats st;
  ser_audio_cache_get_stats(&st);
  assert_int_equal(st.entries, n);
  assert_int_equal(st.misses, n + 0); /* the missing file is not a cache lookup */
  fails = ser_audio_load_many(out, rc, msg, paths, n, &o, 1);
  assert_int_equal(fails, 0);
  ser_audio_cache_get_stats(&st);
  assert_int_equal(st.hits, n);
  for (int i = 0; i < n; i++) ser_audio_free(&out[i]);
  /* A file rewritten on disk is decoded again, not served stale. */
  sleep(0); /* mtime has nanoseconds; the size changes anyway */
  write_tone(paths[0], SF_FORMAT_WAV | SF_FORMAT_PCM_16, 48000, 1, 12000, 300.0, 0.1);
  ser_audio a;
  assert_int_equal(ser_audio_load_cached(&a, paths[0], &o, 1), 0);
  assert_true(rms(a.data, 0, 4000) < 0.1);
  ser_audio_free(&a);
  /* Different options are a different entry. */
  o.seconds = 1.0;
  assert_int_equal(ser_audio_load_cached(&a, paths[1], &o, 1), 0);
  assert_int_equal(a.frames, 16000);
  ser_audio_free(&a);
  /* A zero limit keeps nothing new. */
  ser_audio_cache_clear();
  ser_audio_cache_set_limit(0);
  assert_int_equal(ser_audio_load_cached(&a, paths[1], &o, 1), 0);
  ser_audio_free(&a);
  ser_audio_cache_get_stats(&st);
  assert_int_equal(st.entries, 0);
  assert_int_equal(st.rejected, 1);
  ser_audio_cache_set_limit((size_t)512 << 20);
  for (int i = 0; i <= n; i++) free((void *)paths[i]);
}

/* The 48 kHz originals, decoded and resampled here (soxr HQ), against the
 * 16 kHz FLAC copies made by another tool: log-mels (dB, floor -80, not
 * normalised) should agree closely. Prints the measured difference. */
static void test_ravdess_48k_vs_16k(void **state) {
  (void)state;
  const char *d48 = "../shared/data/ravdess48k-sample/Actor_01", *d16 = "../shared/data/ravdess16k/Actor_01";
  DIR *d = opendir(d48);
  if (!d) {
    printf("skip: %s not found\n", d48);
    skip();
  }
  struct dirent *e;
  ser_feat_opts fo = ser_feat_opts_default();
  fo.normalize = 0;
  int files = 0;
  double worst_mean = 0;
  float *m48 = malloc(sizeof(float) * 64 * 251), *m16 = malloc(sizeof(float) * 64 * 251);
  while ((e = readdir(d))) {
    size_t L = strlen(e->d_name);
    if (L < 5 || strcmp(e->d_name + L - 4, ".wav")) continue;
    char p48[512], p16[512];
    snprintf(p48, sizeof p48, "%s/%s", d48, e->d_name);
    snprintf(p16, sizeof p16, "%s/%.*s.flac", d16, (int)(L - 4), e->d_name);
    ser_audio a, b;
    ser_audio_opts o = ser_audio_opts_default();
    o.seconds = 4.0;
    assert_int_equal(ser_audio_load(&a, p48, &o), 0);
    assert_int_equal(ser_audio_load(&b, p16, &o), 0);
    assert_int_equal(ser_logmel_clip(m48, a.data, 64000, &fo), 0);
    assert_int_equal(ser_logmel_clip(m16, b.data, 64000, &fo), 0);
    /* Silence in these recordings sits near the 16-bit quantisation floor,
     * where the copies' requantisation changes the dB values a lot and means
     * nothing; judge the bins within 50 dB of the clip's loudest, and report
     * all bins too. */
    float top = -1e30f;
    for (int i = 0; i < 64 * 251; i++) top = fmaxf(top, m48[i]);
    double sum = 0, mx = 0, wd = 0, all = 0;
    int cnt = 0;
    for (int i = 0; i < 64 * 251; i++) {
      double df = fabs(m48[i] - m16[i]);
      all += df;
      if (m48[i] < top - 50) continue;
      sum += df, cnt++;
      mx = fmax(mx, df);
    }
    for (int i = 0; i < 64000; i++) wd = fmax(wd, fabs(a.data[i] - b.data[i]));
    double mean = sum / cnt;
    printf("  %s: log-mel within 50 dB of peak (%d bins): mean |diff| %.4f dB, max %.3f dB; all bins mean %.3f dB; "
           "waveform max |diff| %.1e\n",
           e->d_name, cnt, mean, mx, all / (64 * 251), wd);
    worst_mean = fmax(worst_mean, mean);
    assert_true(mean < 0.1);
    assert_true(mx < 1.0);
    files++;
    ser_audio_free(&a);
    ser_audio_free(&b);
  }
  closedir(d);
  free(m48), free(m16);
  printf("  %d files, worst mean |diff| %.4f dB\n", files, worst_mean);
  assert_true(files == 8);
}

/* The extension list picks audio by the file name's last suffix, in any case, and never by a
 * dot in a folder name. */
static void test_audio_extensions(void **state) {
  (void)state;
  assert_true(ser_audio_has_extension("a.wav"));
  assert_true(ser_audio_has_extension("dir/b.FLAC"));
  assert_true(ser_audio_has_extension("/x/y/c.Aif"));
  assert_false(ser_audio_has_extension("notes.txt"));
  assert_false(ser_audio_has_extension("archive.wav.gz"));
  assert_false(ser_audio_has_extension("folder.wav/readme"));
  assert_false(ser_audio_has_extension("wav"));
  assert_false(ser_audio_has_extension("trailing."));
  assert_false(ser_audio_has_extension(NULL));
  int n = 0;
  for (const char *const *e = ser_audio_extensions; *e; e++) {
    char name[32];
    snprintf(name, sizeof name, "clip.%s", *e);
    assert_true(ser_audio_has_extension(name));
    n++;
  }
  assert_int_equal(n, 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_formats_resample_mono), cmocka_unit_test(test_seconds_offset_normalize),
      cmocka_unit_test(test_bad_files),             cmocka_unit_test(test_save_roundtrip_atomic),
      cmocka_unit_test(test_cache_and_load_many),   cmocka_unit_test(test_ravdess_48k_vs_16k),
      cmocka_unit_test(test_audio_extensions),
  };
  return cmocka_run_group_tests_name("audio_io", tests, setup, teardown);
}
