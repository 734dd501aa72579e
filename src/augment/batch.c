/* Recipes of waveform steps and the batched loops over examples (see augment.h): the one
 * place where a batch is spread over threads with per-example generators, used by the
 * ser.augment bindings and by the data loader's prefetch worker (src/data/prefetch.c). */
#include <stdio.h>
#include <string.h>

#include "augment/augment.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"

int ser_aug_apply(float *x, int64_t n, int sr, const ser_aug_step *steps, int n_steps, ser_rng *rng, float *report) {
  for (int i = 0; i < n_steps; i++) {
    const ser_aug_step *s = &steps[i];
    int rc = 0;
    float v = 0.0f;
    int64_t shift = 0;
    switch (s->kind) {
      case SER_AUG_GAIN: rc = ser_aug_gain(x, n, (float)s->a, (float)s->b, s->p, rng, &v); break;
      case SER_AUG_NOISE:
        rc = ser_aug_noise(x, n, (float)s->a, s->p, rng);
        v = rc > 0 ? (float)s->a : 0.0f;
        break;
      case SER_AUG_NOISE_SNR: rc = ser_aug_noise_snr(x, n, (float)s->a, s->p, rng, &v); break;
      case SER_AUG_PITCH: rc = ser_aug_pitch(x, n, sr, (float)s->a, s->p, rng, &v); break;
      case SER_AUG_SPEED: rc = ser_aug_speed(x, n, sr, s->factors, s->nf, s->p, rng, &v); break;
      case SER_AUG_SHIFT:
        rc = ser_aug_time_shift(x, n, (int64_t)s->a, s->roll, s->p, rng, &shift);
        v = (float)shift;
        break;
      default: return ser_error(SER_EINVAL, "augment: step %d has an unknown kind %d", i + 1, (int)s->kind);
    }
    if (rc < 0) return rc;
    if (report) report[i] = v;
  }
  return 0;
}

/* The failure of the lowest-numbered row, kept across the threads of one batch loop (the
 * message lives in each thread's own error state, so it is copied out). */
typedef struct {
  int64_t row;
  int rc;
  char msg[256];
} first_failure;

static void note_failure(first_failure *f, int64_t row, int rc) {
#pragma omp critical(ser_aug_batch_err)
  if (f->row < 0 || row < f->row) {
    f->row = row;
    f->rc = rc;
    snprintf(f->msg, sizeof f->msg, "%s", ser_errmsg());
  }
}

static int pick_threads(int threads, int64_t B, const ser_aug_step *steps, int n_steps) {
  if (threads <= 0) {
    threads = 1;
    for (int i = 0; i < n_steps; i++)
      if (steps[i].kind == SER_AUG_PITCH || steps[i].kind == SER_AUG_SPEED) threads = ser_num_threads();
  }
  return threads > B ? (int)B : threads;
}

int ser_aug_batch(float *x, int64_t B, int64_t n, int sr, const ser_aug_step *steps, int n_steps, ser_rng *parent,
                  ser_rng *rngs, float *report, int threads) {
  if (B < 1 || n < 1)
    return ser_error(SER_EINVAL, "augment: empty batch of %lld rows x %lld samples", (long long)B, (long long)n);
  if (n_steps < 0 || (n_steps > 0 && !steps))
    return ser_error(SER_EINVAL, "augment: %d steps given without a step list", n_steps);
  ser_rng *own = NULL;
  size_t own_bytes = (size_t)B * sizeof *own;
  if (!rngs) {
    own = ser_alloc(own_bytes);
    if (!own) return ser_error(SER_ENOMEM, "augment: out of memory for %lld generators", (long long)B);
    rngs = own;
  }
  for (int64_t b = 0; b < B; b++) ser_aug_derive(parent, (uint64_t)b, &rngs[b]);
  first_failure fail = {.row = -1};
  int nt = pick_threads(threads, B, steps, n_steps);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; b++) {
    int rc = ser_aug_apply(x + b * n, n, sr, steps, n_steps, &rngs[b], report ? report + b * n_steps : NULL);
    if (rc < 0) note_failure(&fail, b, rc);
  }
  if (own) ser_free(own, own_bytes);
  if (fail.row >= 0) return ser_error(fail.rc, "example %lld of %lld: %s", (long long)fail.row + 1, (long long)B, fail.msg);
  return 0;
}

int ser_pitch_shift_batch(float *x, int64_t B, int64_t n, int sr, double semitones) {
  if (B < 1) return 0;
  first_failure fail = {.row = -1};
  int nt = ser_num_threads();
  if (nt > B) nt = (int)B;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; b++) {
    int rc = ser_pitch_shift(x + b * n, x + b * n, n, sr, semitones);
    if (rc < 0) note_failure(&fail, b, rc);
  }
  if (fail.row >= 0) return ser_error(fail.rc, "%s", fail.msg);
  return 0;
}

void ser_aug_mask_batch(float *spec, int64_t B, int64_t F, int64_t T, int axis, int count, int max_width, float value,
                        float p, ser_rng *parent, int64_t *starts, int64_t *widths) {
  for (int64_t b = 0; b < B; b++) {
    ser_rng r;
    ser_aug_derive(parent, (uint64_t)b, &r);
    ser_aug_mask(spec + b * F * T, F, T, axis, count, max_width, value, p, &r, starts ? starts + b * count : NULL,
                 widths ? widths + b * count : NULL);
  }
}
