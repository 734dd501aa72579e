/* Augmentation: each transform is measured against what it claims. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/fft.h"
#include "augment/augment.h"
#include "core/error.h"
#include "core/threads.h"
#include "lib/fixture.h"

#define SR 16000
#define N (4 * SR)

static float *tone(double hz, int64_t n, float amp) {
  float *x = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = amp * (float)sin(2 * M_PI * hz * (double)i / SR);
  return x;
}

/* Frequency of the strongest component: Hann-windowed FFT over the middle of
 * the clip (edges of a shifted clip carry the vocoder's ramp), parabolic
 * interpolation on the log magnitude around the peak bin. */
static double peak_hz(const float *x, int64_t n) {
  int64_t m = 32768, s = (n - m) / 2; /* the middle (a power of two: quick to plan) */
  const ser_fft_plan *p = ser_fft_r2c((int)m);
  float *in = ser_fft_alloc((size_t)m), *out = ser_fft_alloc((size_t)m + 2);
  for (int64_t i = 0; i < m; i++) in[i] = x[s + i] * (float)(0.5 - 0.5 * cos(2 * M_PI * (double)i / (double)m));
  ser_fft_exec_r2c(p, in, out);
  int64_t best = 1;
  double bm = 0;
  for (int64_t k = 1; k < m / 2; k++) {
    double v = hypot(out[2 * k], out[2 * k + 1]);
    if (v > bm) bm = v, best = k;
  }
  double a = log(hypot(out[2 * best - 2], out[2 * best - 1])), b = log(bm),
         c = log(hypot(out[2 * best + 2], out[2 * best + 3]));
  double d = 0.5 * (a - c) / (a - 2 * b + c);
  ser_fft_free(in), ser_fft_free(out);
  return ((double)best + d) * SR / (double)m;
}

static void test_pitch_shift_440_up_2(void **state) {
  (void)state;
  float *x = tone(440.0, N, 0.5f);
  float *y = malloc(sizeof(float) * N);
  assert_int_equal(ser_pitch_shift(y, x, N, SR, 2.0), 0); /* output length is the input's by contract */
  double want = 440.0 * pow(2.0, 2.0 / 12.0), got = peak_hz(y, N);
  printf("  +2 semitones: peak %.2f Hz, want %.2f Hz (%.3f%%)\n", got, want, 100 * fabs(got / want - 1));
  assert_true(fabs(got / want - 1) < 0.005);
  /* Level in the middle of the clip. librosa's phase vocoder loses some
   * amplitude on a tone between bins: the same algorithm in numpy (librosa
   * 0.10's phase_vocoder/istft transcribed) gives rms 0.3210 for this signal
   * stretched by 2^(-2/12), against 0.3536 in. */
  double e = 0;
  for (int i = N / 4; i < 3 * N / 4; i++) e += (double)y[i] * y[i];
  double rms = sqrt(e / (N / 2));
  printf("  rms %.4f (librosa's algorithm 0.3210, input %.4f)\n", rms, 0.5 / sqrt(2));
  assert_true(fabs(rms - 0.3210) < 0.005);
  assert_int_equal(ser_pitch_shift(y, x, N, SR, -2.0), 0);
  want = 440.0 * pow(2.0, -2.0 / 12.0), got = peak_hz(y, N);
  printf("  -2 semitones: peak %.2f Hz, want %.2f Hz\n", got, want);
  assert_true(fabs(got / want - 1) < 0.005);
  /* In place works and equals out-of-place. */
  float *z = malloc(sizeof(float) * N);
  memcpy(z, x, sizeof(float) * N);
  assert_int_equal(ser_pitch_shift(z, z, N, SR, -2.0), 0);
  assert_memory_equal(z, y, sizeof(float) * N);
  assert_int_equal(ser_pitch_shift(y, x, N, SR, 40.0), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "semitones"));
  free(x), free(y), free(z);
}

static void test_noise_snr(void **state) {
  (void)state;
  ser_rng r;
  ser_rng_seed(&r, 7);
  const float targets[] = {0.0f, 10.0f, 20.0f, 30.0f};
  for (int t = 0; t < 4; t++) {
    float *x = tone(300.0, N, 0.3f), *y = tone(300.0, N, 0.3f);
    float std;
    assert_int_equal(ser_aug_noise_snr(y, N, targets[t], 1.0f, &r, &std), 1);
    double ps = 0, pn = 0;
    for (int i = 0; i < N; i++) ps += (double)x[i] * x[i], pn += (double)(y[i] - x[i]) * (y[i] - x[i]);
    double snr = 10 * log10(ps / pn);
    printf("  target %.0f dB: measured %.3f dB (std %.5f)\n", targets[t], snr, std);
    assert_true(fabs(snr - targets[t]) < 0.5);
    free(x), free(y);
  }
}

static void test_noise_std_and_probability(void **state) {
  (void)state;
  ser_rng r;
  ser_rng_seed(&r, 11);
  float *x = calloc(N, sizeof(float));
  assert_int_equal(ser_aug_noise(x, N, 0.005f, 1.0f, &r), 1);
  double s = 0;
  for (int i = 0; i < N; i++) s += (double)x[i] * x[i];
  double sd = sqrt(s / N);
  printf("  noise std %.6f (want 0.005)\n", sd);
  assert_true(fabs(sd / 0.005 - 1) < 0.02);
  int applied = 0;
  float one = 1.0f;
  for (int i = 0; i < 2000; i++) applied += ser_aug_noise(&one, 1, 0.0f, 0.3f, &r);
  printf("  p 0.3: applied %d of 2000\n", applied);
  assert_true(applied > 520 && applied < 680); /* 600 +- 4.5 sigma */
  assert_int_equal(ser_aug_noise(x, N, 1.0f, 0.0f, &r), 0);
  free(x);
}

static void test_gain_range_and_reproducible(void **state) {
  (void)state;
  ser_rng a, b;
  ser_rng_seed(&a, 42), ser_rng_seed(&b, 42);
  float lo = 10, hi = 0;
  for (int i = 0; i < 1000; i++) {
    float x = 1.0f, y = 1.0f, g;
    assert_int_equal(ser_aug_gain(&x, 1, 0.8f, 1.2f, 1.0f, &a, &g), 1);
    ser_aug_gain(&y, 1, 0.8f, 1.2f, 1.0f, &b, NULL);
    assert_true(x == g && x == y);
    lo = fminf(lo, g), hi = fmaxf(hi, g);
  }
  assert_true(lo >= 0.8f && lo < 0.81f && hi < 1.2f && hi > 1.19f);
}

static void test_time_shift(void **state) {
  (void)state;
  ser_rng r;
  ser_rng_seed(&r, 3);
  float x[100], y[100];
  for (int trial = 0; trial < 50; trial++) {
    for (int i = 0; i < 100; i++) x[i] = y[i] = (float)(i + 1);
    int64_t s;
    ser_aug_time_shift(x, 100, 30, 0, 1.0f, &r, &s);
    assert_true(s >= -30 && s <= 30);
    for (int i = 0; i < 100; i++) {
      int j = i - (int)s;
      assert_true(x[i] == (j >= 0 && j < 100 ? y[j] : 0.0f));
    }
    for (int i = 0; i < 100; i++) x[i] = (float)(i + 1);
    ser_aug_time_shift(x, 100, 30, 1, 1.0f, &r, &s);
    for (int i = 0; i < 100; i++) assert_true(x[i] == y[((i - (int)s) % 100 + 100) % 100]);
  }
}

static void test_speed(void **state) {
  (void)state;
  float *x = tone(440.0, N, 0.5f), *o;
  int64_t no;
  assert_int_equal(ser_speed(&o, &no, x, N, SR, 1.1, 0), 0);
  assert_int_equal(no, (int64_t)llround(N / 1.1));
  double got = peak_hz(o, no - (no & 1));
  printf("  speed 1.1: %lld samples, peak %.2f Hz (want %.2f)\n", (long long)no, got, 440 * 1.1);
  assert_true(fabs(got / (440 * 1.1) - 1) < 0.002);
  ser_free(o, (size_t)no * sizeof(float));
  assert_int_equal(ser_speed(&o, &no, x, N, SR, 0.9, 1), 0);
  assert_int_equal(no, N);
  ser_free(o, (size_t)no * sizeof(float));
  assert_int_equal(ser_speed(&o, &no, x, N, SR, 0.0, 1), SER_EINVAL);
  free(x);
}

/* Masks set exactly the reported ranges and nothing else. */
static void test_masks_zero_what_they_report(void **state) {
  (void)state;
  ser_rng r;
  ser_rng_seed(&r, 5);
  const int F = 64, T = 251;
  float *s = malloc(sizeof(float) * F * T);
  int widths_seen[17] = {0};
  for (int trial = 0; trial < 300; trial++) {
    for (int i = 0; i < F * T; i++) s[i] = 1.0f + (float)i; /* never 0 */
    int64_t ts[2], tw[2], fs[1], fw[1];
    ser_aug_mask(s, F, T, 1, 2, 16, 0.0f, 1.0f, &r, ts, tw);
    ser_aug_mask(s, F, T, 0, 1, 8, 0.0f, 1.0f, &r, fs, fw);
    for (int c = 0; c < 2; c++) {
      assert_true(tw[c] >= 0 && tw[c] <= 16 && ts[c] >= 0 && ts[c] + tw[c] <= T);
      widths_seen[tw[c]]++;
    }
    assert_true(fw[0] >= 0 && fw[0] <= 8 && fs[0] + fw[0] <= F);
    int wrong = 0;
    for (int f = 0; f < F; f++)
      for (int t = 0; t < T; t++) {
        int masked = (f >= fs[0] && f < fs[0] + fw[0]) || (t >= ts[0] && t < ts[0] + tw[0]) ||
                     (t >= ts[1] && t < ts[1] + tw[1]);
        wrong += (s[f * T + t] == 0.0f) != masked;
      }
    assert_int_equal(wrong, 0);
  }
  /* Widths cover 0..15, rarely 16: torchaudio's floor(start + U * 16) - floor(start). */
  for (int w = 0; w < 16; w++) assert_true(widths_seen[w] > 0);
  /* p = 0: nothing masked, widths reported 0. */
  int64_t a[1], b[1];
  assert_int_equal(ser_aug_mask(s, F, T, 1, 1, 16, 0.0f, 0.0f, &r, a, b), 0);
  assert_int_equal(b[0], 0);
  free(s);
}

static void test_derive_independent_of_order(void **state) {
  (void)state;
  ser_rng p1, p2, c1[4], c2[4];
  ser_rng_seed(&p1, 9), ser_rng_seed(&p2, 9);
  for (int b = 0; b < 4; b++) ser_aug_derive(&p1, (uint64_t)b, &c1[b]);
  for (int b = 0; b < 4; b++) ser_aug_derive(&p2, (uint64_t)b, &c2[b]);
  /* Consuming child 3 first does not change child 0's stream. */
  float last = ser_rng_uniform(&c2[3]);
  (void)last;
  for (int b = 0; b < 3; b++) assert_true(ser_rng_uniform(&c1[b]) == ser_rng_uniform(&c2[b]));
}

/* The batch loop: row b runs the steps with the generator derived b-th from the parent,
 * whatever the thread count; the report holds what each step drew; rngs come back where
 * the steps left them. */
static void test_batch_equals_rows_by_hand(void **state) {
  (void)state;
  enum { B = 5, n = 12000 };
  const ser_aug_step steps[4] = {
    { .kind = SER_AUG_GAIN, .p = 0.6f, .a = 0.5, .b = 1.5 },
    { .kind = SER_AUG_NOISE, .p = 0.5f, .a = 0.01 },
    { .kind = SER_AUG_PITCH, .p = 1, .a = 2 },
    { .kind = SER_AUG_SHIFT, .p = 1, .a = 300, .roll = 0 },
  };
  float *x = malloc(sizeof(float) * B * n), *want = malloc(sizeof(float) * B * n), *got = malloc(sizeof(float) * B * n);
  for (int b = 0; b < B; b++) {
    float *t = tone(200.0 + 50.0 * b, n, 0.4f);
    memcpy(x + b * n, t, sizeof(float) * n);
    free(t);
  }
  float want_rep[B * 4], rep[B * 4];
  ser_rng parent, rngs[B], after[B];
  ser_rng_seed(&parent, 77);
  memcpy(want, x, sizeof(float) * B * n);
  for (int b = 0; b < B; b++) {
    ser_aug_derive(&parent, (uint64_t)b, &rngs[b]);
  }
  for (int b = 0; b < B; b++) {
    assert_int_equal(ser_aug_apply(want + b * n, n, SR, steps, 4, &rngs[b], want_rep + b * 4), 0);
    after[b] = rngs[b];
  }
  for (int threads = 0; threads <= 3; threads++) {
    memcpy(got, x, sizeof(float) * B * n);
    ser_rng_seed(&parent, 77);
    ser_rng out_rngs[B];
    assert_int_equal(ser_aug_batch(got, B, n, SR, steps, 4, &parent, out_rngs, rep, threads), 0);
    assert_memory_equal(got, want, sizeof(float) * B * n);
    assert_memory_equal(rep, want_rep, sizeof rep);
    for (int b = 0; b < B; b++) {
      ser_rng a = after[b];
      assert_int_equal(ser_rng_u32(&out_rngs[b]), ser_rng_u32(&a));
    }
  }
  /* the report: a gain in range or 1 when skipped, the noise std or 0, the shift applied */
  for (int b = 0; b < B; b++) {
    assert_true(rep[b * 4] == 1.0f || (rep[b * 4] >= 0.5f && rep[b * 4] <= 1.5f));
    assert_true(rep[b * 4 + 1] == 0.0f || rep[b * 4 + 1] == 0.01f);
    assert_true(fabsf(rep[b * 4 + 2]) <= 2.0f);
    assert_true(fabsf(rep[b * 4 + 3]) <= 300.0f && rep[b * 4 + 3] == floorf(rep[b * 4 + 3]));
  }
  ser_rng_seed(&parent, 77);
  assert_int_equal(ser_aug_batch(got, 0, n, SR, steps, 4, &parent, NULL, NULL, 0), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "augment: empty batch of 0 rows"));
  ser_aug_step bad = { .kind = (ser_aug_kind)42, .p = 1 };
  assert_int_equal(ser_aug_batch(got, B, n, SR, &bad, 1, &parent, NULL, NULL, 2), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "example 1 of 5: augment: step 1 has an unknown kind 42"));

  /* pitch_shift_batch: ser_pitch_shift on every row */
  memcpy(got, x, sizeof(float) * B * n);
  memcpy(want, x, sizeof(float) * B * n);
  assert_int_equal(ser_pitch_shift_batch(got, B, n, SR, -1.5), 0);
  for (int b = 0; b < B; b++) assert_int_equal(ser_pitch_shift(want + b * n, want + b * n, n, SR, -1.5), 0);
  assert_memory_equal(got, want, sizeof(float) * B * n);
  free(x);
  free(want);
  free(got);
}

static void test_mask_batch_equals_examples_by_hand(void **state) {
  (void)state;
  enum { B = 3, F = 10, T = 40 };
  float got[B * F * T], want[B * F * T];
  for (int i = 0; i < B * F * T; i++) got[i] = want[i] = (float)i;
  int64_t st[B * 2], wd[B * 2], st1[2], wd1[2];
  ser_rng parent, r;
  ser_rng_seed(&parent, 9);
  ser_aug_mask_batch(got, B, F, T, 1, 2, 8, -1.0f, 0.9f, &parent, st, wd);
  ser_rng_seed(&parent, 9);
  for (int b = 0; b < B; b++) {
    ser_aug_derive(&parent, (uint64_t)b, &r);
    ser_aug_mask(want + b * F * T, F, T, 1, 2, 8, -1.0f, 0.9f, &r, st1, wd1);
    assert_memory_equal(st + b * 2, st1, sizeof st1);
    assert_memory_equal(wd + b * 2, wd1, sizeof wd1);
  }
  assert_memory_equal(got, want, sizeof got);
  ser_rng_seed(&parent, 9);
  float again[B * F * T];
  for (int i = 0; i < B * F * T; i++) again[i] = (float)i;
  ser_aug_mask_batch(again, B, F, T, 1, 2, 8, -1.0f, 0.9f, &parent, NULL, NULL); /* no report wanted */
  assert_memory_equal(again, want, sizeof again);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pitch_shift_440_up_2), cmocka_unit_test(test_noise_snr),
      cmocka_unit_test(test_noise_std_and_probability), cmocka_unit_test(test_gain_range_and_reproducible),
      cmocka_unit_test(test_time_shift), cmocka_unit_test(test_speed),
      cmocka_unit_test(test_masks_zero_what_they_report), cmocka_unit_test(test_derive_independent_of_order),
      cmocka_unit_test(test_batch_equals_rows_by_hand), cmocka_unit_test(test_mask_batch_equals_examples_by_hand),
  };
  return cmocka_run_group_tests_name("augment", tests, NULL, NULL);
}
