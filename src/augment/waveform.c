/* The cheap waveform transforms: gain, noise, time shift. */
#include <math.h>
#include <string.h>

#include "augment/augment.h"

static ser_rng *pick(ser_rng *r) { return r ? r : ser_rng_global(); }

static int skip(float p, ser_rng *r) { return p < 1.0f && ser_rng_uniform(r) >= p; }

void ser_aug_derive(ser_rng *parent, uint64_t b, ser_rng *child) { ser_rng_derive(pick(parent), b, child); }

int ser_aug_gain(float *x, int64_t n, float lo, float hi, float p, ser_rng *rng, float *gain) {
  rng = pick(rng);
  if (gain) *gain = 1.0f;
  if (skip(p, rng)) return 0;
  float g = lo + (hi - lo) * ser_rng_uniform(rng);
  for (int64_t i = 0; i < n; i++) x[i] *= g;
  if (gain) *gain = g;
  return 1;
}

int ser_aug_noise(float *x, int64_t n, float std, float p, ser_rng *rng) {
  rng = pick(rng);
  if (skip(p, rng)) return 0;
  for (int64_t i = 0; i < n; i++) x[i] += std * ser_rng_normal(rng);
  return 1;
}

int ser_aug_noise_snr(float *x, int64_t n, float snr_db, float p, ser_rng *rng, float *std_out) {
  rng = pick(rng);
  if (std_out) *std_out = 0.0f;
  if (skip(p, rng)) return 0;
  double ps = 0.0;
  for (int64_t i = 0; i < n; i++) ps += (double)x[i] * x[i];
  ps /= n > 0 ? (double)n : 1.0;
  if (ps <= 0.0) return 1; /* silence has no SNR to aim at */
  float std = (float)sqrt(ps / pow(10.0, snr_db / 10.0));
  for (int64_t i = 0; i < n; i++) x[i] += std * ser_rng_normal(rng);
  if (std_out) *std_out = std;
  return 1;
}

int ser_aug_time_shift(float *x, int64_t n, int64_t max_shift, int roll, float p, ser_rng *rng, int64_t *shift) {
  rng = pick(rng);
  if (shift) *shift = 0;
  if (skip(p, rng) || max_shift <= 0 || n <= 0) return 0;
  if (max_shift > n) max_shift = n;
  int64_t s = (int64_t)ser_rng_below(rng, (uint32_t)(2 * max_shift + 1)) - max_shift;
  if (shift) *shift = s;
  if (s == 0) return 1;
  int64_t a = s > 0 ? s : -s;
  if (roll) {
    /* Rotate right by s (mod n) with three reversals: no scratch buffer. */
    int64_t k = ((s % n) + n) % n;
    for (int64_t i = 0, j = n - 1; i < j; i++, j--) { float t = x[i]; x[i] = x[j]; x[j] = t; }
    for (int64_t i = 0, j = k - 1; i < j; i++, j--) { float t = x[i]; x[i] = x[j]; x[j] = t; }
    for (int64_t i = k, j = n - 1; i < j; i++, j--) { float t = x[i]; x[i] = x[j]; x[j] = t; }
  } else if (s > 0) {
    memmove(x + a, x, (size_t)(n - a) * sizeof *x);
    memset(x, 0, (size_t)a * sizeof *x);
  } else {
    memmove(x, x + a, (size_t)(n - a) * sizeof *x);
    memset(x + n - a, 0, (size_t)a * sizeof *x);
  }
  return 1;
}
