/* Data augmentation on raw float buffers (no Lua).
 *
 * Waveform transforms work on one clip x[n] in place and keep its length
 * (speed perturbation trims/pads back to n unless asked not to). Spectrogram
 * masks work on one example spec[F][T] in place. Every random transform takes
 * a ser_rng (NULL = the global generator) and a probability p of being
 * applied, draws its parameters from that generator only, and reports what it
 * did (the returned value is 1 when applied, 0 when skipped by p).
 *
 * Batches: ser_aug_derive gives example b its own generator derived from the
 * caller's in a fixed order, so results depend on the seed only — not on the
 * number of threads that process the examples. */
#ifndef SER_AUGMENT_AUGMENT_H
#define SER_AUGMENT_AUGMENT_H

#include <stdint.h>

#include "core/rng.h"

/* x *= g, g ~ U[lo, hi]. */
int ser_aug_gain(float *x, int64_t n, float lo, float hi, float p, ser_rng *rng, float *gain);
/* x += N(0, std^2) noise. */
int ser_aug_noise(float *x, int64_t n, float std, float p, ser_rng *rng);
/* x += noise at a target SNR: std = sqrt(mean(x^2) / 10^(snr_db/10)); *std_out
 * gets it (0 on silence, where no noise is added). */
int ser_aug_noise_snr(float *x, int64_t n, float snr_db, float p, ser_rng *rng, float *std_out);
/* Shift by s ~ U{-max..max} samples: positive delays. roll: circular, else zero fill. */
int ser_aug_time_shift(float *x, int64_t n, int64_t max_shift, int roll, float p, ser_rng *rng, int64_t *shift);

/* Pitch shift by `semitones` keeping the duration (librosa 0.10's algorithm:
 * phase-vocoder time stretch by rate 2^(-semitones/12) with n_fft 2048 / hop
 * 512 periodic-Hann STFT, then soxr HQ resampling from sr/rate to sr, then
 * trim/pad to n). The phase vocoder advances phase with unit phasors instead
 * of angle()/exp(), the same arithmetic without transcendental calls.
 * out may equal x. */
int ser_pitch_shift(float *out, const float *x, int64_t n, int sr, double semitones);
/* Random pitch shift by U[-max, max] semitones. */
int ser_aug_pitch(float *x, int64_t n, int sr, float max_semitones, float p, ser_rng *rng, float *semitones);

/* Speed perturbation (tempo and pitch together, as sox `speed`): resample as
 * if recorded at sr*factor. Output length round(n / factor); with keep_length
 * it is trimmed or zero-padded back to n. *out is ser_alloc'd (n_out floats). */
int ser_speed(float **out, int64_t *n_out, const float *x, int64_t n, int sr, double factor, int keep_length);
/* In place, length kept: factor drawn uniformly from factors[0..nf). */
int ser_aug_speed(float *x, int64_t n, int sr, const float *factors, int nf, float p, ser_rng *rng, float *factor);

/* SpecAugment mask along one axis of spec[F][T] (axis 0: frequency bins,
 * axis 1: time frames), torchaudio's mask_along_axis: v = u1 * max_width,
 * s = u2 * (size - v), the range [floor(s), floor(s + v)) is set to value
 * (so at most max_width wide). count masks, each applied with probability p;
 * starts/widths (count entries, or NULL) report them (width 0 when skipped). Returns
 * the number applied. */
int ser_aug_mask(float *spec, int64_t F, int64_t T, int axis, int count, int max_width, float value, float p,
                 ser_rng *rng, int64_t *starts, int64_t *widths);

/* Generator of example b of a batch (call in order b = 0, 1, ...). */
void ser_aug_derive(ser_rng *parent, uint64_t b, ser_rng *child);

/* ---- recipes of waveform steps, clip by clip and batched (src/augment/batch.c) ---- */

typedef enum {
  SER_AUG_GAIN,      /* a = lo, b = hi (ser_aug_gain) */
  SER_AUG_NOISE,     /* a = std (ser_aug_noise) */
  SER_AUG_NOISE_SNR, /* a = snr dB (ser_aug_noise_snr) */
  SER_AUG_PITCH,     /* a = max semitones (ser_aug_pitch) */
  SER_AUG_SPEED,     /* factors[0..nf) (ser_aug_speed) */
  SER_AUG_SHIFT      /* a = max shift in samples, roll (ser_aug_time_shift) */
} ser_aug_kind;

#define SER_AUG_MAX_FACTORS 32

/* One random waveform transform and its parameters, applied with probability p. */
typedef struct {
  ser_aug_kind kind;
  float p;      /* probability of applying the step */
  double a, b;  /* the kind's parameters (see ser_aug_kind), cast to each transform's type */
  float factors[SER_AUG_MAX_FACTORS];
  int nf, roll;
} ser_aug_step;

/* Applies steps[0..n_steps) in order to one clip x[n] in place, all drawing from rng.
 * report (n_steps entries, may be NULL) gets what each step drew: the gain, the noise std
 * (0 when skipped), the semitones, the speed factor, the shift in samples. */
int ser_aug_apply(float *x, int64_t n, int sr, const ser_aug_step *steps, int n_steps, ser_rng *rng, float *report);

/* The batch loop: row b of x[B][n] gets its own generator, derived from parent in order
 * b = 0, 1, ... before any row runs (rngs[b], B entries, may be NULL; after the call each
 * holds its row's stream where the steps left it, for masks that follow), then
 * ser_aug_apply on each row. Rows run on up to `threads` OpenMP threads (<= 0: all of
 * ser_num_threads() when a step is pitch or speed, one otherwise: the cheap transforms are
 * memory-bound). The result depends on the seed only, never on the thread count. report:
 * B * n_steps entries (row-major) or NULL. On failure the message names the first row that
 * failed. */
int ser_aug_batch(float *x, int64_t B, int64_t n, int sr, const ser_aug_step *steps, int n_steps, ser_rng *parent,
                  ser_rng *rngs, float *report, int threads);

/* ser_pitch_shift on every row of x[B][n] in place, rows spread over ser_num_threads(). */
int ser_pitch_shift_batch(float *x, int64_t B, int64_t n, int sr, double semitones);

/* ser_aug_mask on every example spec[B][F][T], example b drawing from its own generator
 * derived from parent in order. starts/widths: B * count entries (row-major), or NULL. */
void ser_aug_mask_batch(float *spec, int64_t B, int64_t F, int64_t T, int axis, int count, int max_width, float value,
                        float p, ser_rng *parent, int64_t *starts, int64_t *widths);

#endif
