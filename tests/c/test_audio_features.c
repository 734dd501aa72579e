/* Parity of the spectral front end with torchaudio 0.13 (../shared/fixtures),
 * with the tolerances:
 *   window and filterbank   1e-6 absolute
 *   STFT power, mel power   1e-4 relative (power spans ~12 decades: relative
 *                           to max(|want|, 1e-6 * peak) so bins at the noise
 *                           floor are judged against the matrix's scale)
 *   dB, normalised, MFCC    1e-3 absolute
 *   resample (sinc)         1e-5 absolute (same algorithm, float32 sums)
 * plus properties that need no fixture (shapes, batch == single, errors). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#include "audio/features.h"
#include "audio/fft.h"
#include "audio/mel.h"
#include "audio/resample.h"
#include "lib/fixture.h"

#define T4 64000
#define FR 251

static float *sig4(void) { return fixture_require("sig_4s", T4); }

static float peak_abs(const float *x, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
  return m;
}

static void test_hann(void **state) {
  (void)state;
  float *want = fixture_require("hann_1024", 1024);
  float got[1024];
  ser_hann_window(got, 1024);
  assert_close_abs("hann_1024", got, want, 1024, 1e-6);
  free(want);
}

static void test_mel_fbank(void **state) {
  (void)state;
  float *want = fixture_require("mel_fbank_64x513", 64 * 513);
  const ser_melbank *mb = ser_melbank_get(16000, 1024, 64, 20, 7600, 1, 0);
  assert_non_null(mb);
  assert_close_abs("mel_fbank_64x513", mb->dense, want, 64 * 513, 1e-6);
  /* The sparse bands cover every non-zero weight. */
  for (int m = 0; m < 64; m++)
    for (int k = 0; k < 513; k++)
      if (k < mb->lo[m] || k >= mb->lo[m] + mb->len[m]) assert_true(mb->dense[m * 513 + k] == 0.0f);
  free(want);
}

static void test_stft_power(void **state) {
  (void)state;
  float *x = sig4(), *want = fixture_require("stft_power_4s", 513 * FR);
  float *got = malloc(sizeof(float) * 513 * FR);
  ser_feat_opts o = ser_feat_opts_default();
  assert_int_equal(ser_power_clip(got, x, T4, &o), 0);
  /* Float FFT round-off is relative to the frame's energy, not to each bin:
   * torch's own result is 1.2e-4 off float64 at bins 1e-6 below the peak. */
  double floor = 1e-5 * peak_abs(want, 513 * FR);
  assert_close_rel("stft_power_4s", got, want, 513 * FR, floor, 1e-4);
  free(x), free(want), free(got);
}

static void test_mel_power(void **state) {
  (void)state;
  float *x = sig4(), *want = fixture_require("mel_power_4s", 64 * FR);
  float *got = malloc(sizeof(float) * 64 * FR);
  ser_feat_opts o = ser_feat_opts_default();
  assert_int_equal(ser_melpower_clip(got, x, T4, &o), 0);
  double floor = 1e-6 * peak_abs(want, 64 * FR);
  assert_close_rel("mel_power_4s", got, want, 64 * FR, floor, 1e-4);
  free(x), free(want), free(got);
}

static void test_mel_db_and_norm(void **state) {
  (void)state;
  float *x = sig4(), *db = fixture_require("mel_db_4s", 64 * FR), *nrm = fixture_require("mel_norm_4s", 64 * FR);
  float *got = malloc(sizeof(float) * 64 * FR);
  ser_feat_opts o = ser_feat_opts_default();
  o.floor_db = NAN;
  o.normalize = 0;
  assert_int_equal(ser_logmel_clip(got, x, T4, &o), 0);
  assert_close_abs("mel_db_4s", got, db, 64 * FR, 1e-3);
  o = ser_feat_opts_default(); /* floor -80 + normalise: the reference model input */
  assert_int_equal(ser_logmel_clip(got, x, T4, &o), 0);
  assert_close_abs("mel_norm_4s", got, nrm, 64 * FR, 1e-3);
  free(x), free(db), free(nrm), free(got);
}

static void test_mfcc(void **state) {
  (void)state;
  float *x = sig4(), *dct_want = fixture_require("mfcc_dct_64x40", 64 * 40);
  float *mdb = fixture_require("mfcc_mel_db_top80_4s", 64 * FR);
  float *mf = fixture_require("mfcc_4s", 40 * FR), *mfn = fixture_require("mfcc_norm_4s", 40 * FR);
  /* create_dct is [n_mels, n_mfcc]; ours is [n_mfcc][n_mels]. */
  float dct[40 * 64], dct_t[64 * 40];
  ser_dct_matrix(dct, 40, 64);
  for (int k = 0; k < 40; k++)
    for (int m = 0; m < 64; m++) dct_t[m * 40 + k] = dct[k * 64 + m];
  assert_close_abs("mfcc_dct_64x40", dct_t, dct_want, 64 * 40, 1e-6);

  float *got = malloc(sizeof(float) * 64 * FR);
  ser_feat_opts o = ser_feat_opts_default();
  o.top_db = 80;
  o.floor_db = NAN;
  o.normalize = 0;
  assert_int_equal(ser_logmel_clip(got, x, T4, &o), 0);
  assert_close_abs("mfcc_mel_db_top80_4s", got, mdb, 64 * FR, 1e-3);

  o = ser_feat_opts_default();
  o.top_db = 80;
  o.normalize = 0;
  assert_int_equal(ser_mfcc_clip(got, x, T4, &o), 0);
  assert_close_abs("mfcc_4s", got, mf, 40 * FR, 1e-3);
  o.normalize = 1;
  assert_int_equal(ser_mfcc_clip(got, x, T4, &o), 0);
  assert_close_abs("mfcc_norm_4s", got, mfn, 40 * FR, 1e-3);
  free(x), free(dct_want), free(mdb), free(mf), free(mfn), free(got);
}

static void test_resample_sinc(void **state) {
  (void)state;
  float *in48 = fixture_require("resample_in_48k", 24000), *out16 = fixture_require("resample_out_16k", 8000);
  float *in44 = fixture_require("resample_in_44k1", 22050), *out44 = fixture_require("resample_out_44k1_16k", 8000);
  float got[8000];
  assert_int_equal(ser_resample_length(24000, 48000, 16000, SER_RESAMPLE_SINC), 8000);
  assert_int_equal(ser_resample_sinc(got, in48, 24000, 48000, 16000), 0);
  assert_close_abs("resample_out_16k", got, out16, 8000, 1e-5);
  assert_int_equal(ser_resample_length(22050, 44100, 16000, SER_RESAMPLE_SINC), 8000);
  assert_int_equal(ser_resample_sinc(got, in44, 22050, 44100, 16000), 0);
  assert_close_abs("resample_out_44k1_16k", got, out44, 8000, 1e-5);
  free(in48), free(out16), free(in44), free(out44);
}

/* Amplitude of the tone at f Hz over x[0..n) (n spans whole cycles). */
static double tone_amp(const float *x, int n, double f, double sr) {
  double re = 0, im = 0;
  for (int i = 0; i < n; i++) {
    re += x[i] * cos(2 * M_PI * f * i / sr);
    im += x[i] * sin(2 * M_PI * f * i / sr);
  }
  return 2 * sqrt(re * re + im * im) / n;
}

/* soxr HQ: a different filter from torchaudio's, so it is judged on what a
 * resampler must do with resample_in_48k's tones (0.3 @ 440 Hz, 0.2 @ 3 kHz,
 * 0.1 @ 7 kHz, 0.1 @ 12 kHz above the new Nyquist): pass the first three
 * within 0.05 dB, and keep the 12 kHz alias (at 4 kHz) below -50 dB. */
static void test_resample_soxr_tones(void **state) {
  (void)state;
  float *in48 = fixture_require("resample_in_48k", 24000), *out16 = fixture_require("resample_out_16k", 8000);
  float got[8000];
  assert_int_equal(ser_resample_length(24000, 48000, 16000, SER_RESAMPLE_SOXR), 8000);
  assert_int_equal(ser_resample_soxr(got, in48, 24000, 48000, 16000), 0);
  const double f[] = {440, 3000, 7000}, amp[] = {0.3, 0.2, 0.1};
  for (int i = 0; i < 3; i++) {
    double a = tone_amp(got + 200, 7600, f[i], 16000), t = tone_amp(out16 + 200, 7600, f[i], 16000);
    printf("  %5.0f Hz: soxr %.2f dB, torchaudio sinc %.2f dB (re. input)\n", f[i], 20 * log10(a / amp[i]),
           20 * log10(t / amp[i]));
    assert_true(fabs(20 * log10(a / amp[i])) < 0.05);
  }
  /* The input's 0.01 N(0,1) noise alone reads about -57 dB in this bin. */
  double alias = tone_amp(got + 200, 7600, 4000, 16000), ref = tone_amp(out16 + 200, 7600, 4000, 16000);
  printf("  4 kHz bin (12 kHz alias + noise): soxr %.1f dB, torchaudio %.1f dB\n", 20 * log10(alias / 0.1),
         20 * log10(ref / 0.1));
  assert_true(20 * log10(alias / 0.1) < -50);
  free(in48), free(out16);
}

/* Generated signal (no fixture): batch output equals per-clip output exactly,
 * for every kind, and shapes follow 1 + T/hop. */
static void test_batch_equals_single(void **state) {
  (void)state;
  const int B = 3, n = 20000;
  float *x = malloc(sizeof(float) * B * n);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++) x[b * n + i] = 0.3f * sinf(0.01f * (float)(i * (b + 1))) + 0.01f * (float)((i * 7919 + b) % 13 - 6);
  ser_feat_opts o = ser_feat_opts_default();
  int64_t frames = ser_stft_frames(n, o.hop);
  assert_int_equal(frames, 1 + n / 256);
  ser_feat_kind kinds[] = {SER_FEAT_POWER, SER_FEAT_MELPOWER, SER_FEAT_LOGMEL, SER_FEAT_MFCC};
  int rows[] = {513, 64, 64, 40};
  for (int k = 0; k < 4; k++) {
    int64_t per = rows[k] * frames;
    float *bo = malloc(sizeof(float) * B * per), *so = malloc(sizeof(float) * per);
    assert_int_equal(ser_feat_batch(bo, x, B, n, kinds[k], &o), 0);
    for (int b = 0; b < B; b++) {
      int rc = kinds[k] == SER_FEAT_POWER      ? ser_power_clip(so, x + b * n, n, &o)
               : kinds[k] == SER_FEAT_MELPOWER ? ser_melpower_clip(so, x + b * n, n, &o)
               : kinds[k] == SER_FEAT_LOGMEL   ? ser_logmel_clip(so, x + b * n, n, &o)
                                               : ser_mfcc_clip(so, x + b * n, n, &o);
      assert_int_equal(rc, 0);
      assert_memory_equal(so, bo + b * per, sizeof(float) * per);
    }
    free(bo), free(so);
  }
  free(x);
}

static void test_slaney(void **state) {
  (void)state;
  /* Slaney scale is linear below 1 kHz and continuous at the break. */
  assert_true(fabs(ser_hz_to_mel(500, 0) - 7.5) < 1e-12);
  assert_true(fabs(ser_mel_to_hz(ser_hz_to_mel(3000, 0), 0) - 3000) < 1e-9);
  assert_true(fabs(ser_mel_to_hz(ser_hz_to_mel(3000, 1), 1) - 3000) < 1e-9);
  /* Slaney area norm: each triangle integrates to ~1 over Hz (2/(f2-f0) * (f2-f0)/2). */
  const ser_melbank *mb = ser_melbank_get(16000, 4096, 40, 0, 8000, 0, 1);
  assert_non_null(mb);
  double hz_per_bin = 8000.0 / 2048;
  for (int m = 5; m < 40; m++) {
    double area = 0;
    for (int k = 0; k < mb->n_freqs; k++) area += mb->dense[m * mb->n_freqs + k] * hz_per_bin;
    assert_true(fabs(area - 1.0) < 0.02);
  }
}

/* Our plans are the ones FFTW_ESTIMATE picks, the same in every process: with
 * FFTW_MEASURE a busy machine can pick another algorithm per process, and the
 * features (and a seeded training run) then differ in their last bits. (When
 * MEASURE happens to time ESTIMATE's choice fastest this cannot tell them
 * apart; on a busy machine it usually does not.) The sizes: the models' n_fft
 * (1024), 25 ms windows (400), the pitch shifter's frames (2048), an inverse. */
static void test_fft_plans_are_deterministic(void **state) {
  unsetenv("SER_FFTW_MEASURE");
  const int sizes[] = {400, 1024, 2048};
  for (int k = 0; k < 4; k++) {
    const int n = sizes[k % 3], inverse = k == 3;
    const ser_fft_plan *ours = inverse ? ser_fft_c2r(n) : ser_fft_r2c(n);
    assert_non_null(ours);
    float *a = fftwf_malloc(sizeof(float) * (size_t)(n + 2)), *b = fftwf_malloc(sizeof(float) * (size_t)(n + 2));
    fftwf_plan ref = inverse ? fftwf_plan_dft_c2r_1d(n, (fftwf_complex *)a, b, FFTW_ESTIMATE | FFTW_DESTROY_INPUT)
                             : fftwf_plan_dft_r2c_1d(n, a, (fftwf_complex *)b, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
    char *got = ser_fft_plan_text(ours), *want = fftwf_sprint_plan(ref);
    assert_string_equal(got, want);
    free(got);
    free(want);
    fftwf_destroy_plan(ref);
    fftwf_free(a);
    fftwf_free(b);
  }
}

static void test_bad_options(void **state) {
  (void)state;
  float x[2000] = {0};
  float out[64 * 10];
  ser_feat_opts o = ser_feat_opts_default();
  assert_int_equal(ser_logmel_clip(out, x, 400, &o), SER_EINVAL); /* shorter than n_fft/2 */
  assert_non_null(strstr(ser_errmsg(), "too short"));
  o.fmax = 9000;
  assert_int_equal(ser_logmel_clip(out, x, 2000, &o), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "fmax 9000"));
  o = ser_feat_opts_default();
  o.hop = 0;
  assert_int_equal(ser_logmel_clip(out, x, 2000, &o), SER_EINVAL);
  o = ser_feat_opts_default();
  o.n_mfcc = 65;
  assert_int_equal(ser_mfcc_clip(out, x, 2000, &o), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "n_mfcc"));
  /* More mels than the FFT bins can carry: filters below ~100 Hz fall between bins. */
  assert_null(ser_melbank_get(16000, 1024, 600, 20, 7600, 1, 0));
  assert_non_null(strstr(ser_errmsg(), "87 of 600 mel filters cover no FFT bin"));
  o = ser_feat_opts_default();
  o.n_mels = 128;
  o.n_fft = 400;
  float wide[128 * 10]; /* room for what a wrongly accepted call would write (8 frames) */
  assert_int_equal(ser_logmel_clip(wide, x, 2000, &o), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "use fewer mels, a larger n_fft or a higher fmin"));
  /* Silence: dB floor everywhere, normalisation leaves a constant matrix finite. */
  o = ser_feat_opts_default();
  float *s = malloc(sizeof(float) * 64 * 8);
  assert_int_equal(ser_logmel_clip(s, x, 1792, &o), 0);
  for (int i = 0; i < 64 * 8; i++) assert_true(isfinite(s[i]));
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hann),
      cmocka_unit_test(test_mel_fbank),
      cmocka_unit_test(test_stft_power),
      cmocka_unit_test(test_mel_power),
      cmocka_unit_test(test_mel_db_and_norm),
      cmocka_unit_test(test_mfcc),
      cmocka_unit_test(test_resample_sinc),
      cmocka_unit_test(test_resample_soxr_tones),
      cmocka_unit_test(test_batch_equals_single),
      cmocka_unit_test(test_slaney),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_fft_plans_are_deterministic),
  };
  return cmocka_run_group_tests_name("audio_features", tests, NULL, NULL);
}
