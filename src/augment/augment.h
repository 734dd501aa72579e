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
 * starts/widths (count entries) report them (width 0 when skipped). Returns
 * the number applied. */
int ser_aug_mask(float *spec, int64_t F, int64_t T, int axis, int count, int max_width, float value, float p,
                 ser_rng *rng, int64_t *starts, int64_t *widths);

/* Generator of example b of a batch (call in order b = 0, 1, ...). */
void ser_aug_derive(ser_rng *parent, uint64_t b, ser_rng *child);

#endif
