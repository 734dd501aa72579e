/* Sample-rate conversion, two algorithms:
 *
 * - soxr: libsoxr's high-quality recipe (SOXR_HQ), what loading uses; output
 *   length ceil(n * to / from), as librosa's soxr path.
 * - sinc: torchaudio.functional.resample's default (sinc_interpolation,
 *   lowpass_filter_width 6, rolloff 0.99), bit-for-bit the same algorithm so
 *   that features match the PyTorch pipeline: reduce the rates by their gcd,
 *   one windowed-sinc kernel per output phase, input zero-padded by `width`
 *   left and `width + orig` right, correlation with stride `orig`, phases
 *   interleaved, output ceil(new * n / orig) samples. */
#ifndef SER_AUDIO_RESAMPLE_H
#define SER_AUDIO_RESAMPLE_H

#include <stdint.h>

#include "core/tensor.h"

typedef enum { SER_RESAMPLE_SINC = 0, SER_RESAMPLE_SOXR = 1 } ser_resample_method;

/* Output length for n input samples. */
int64_t ser_resample_length(int64_t n, int from, int to, ser_resample_method method);
/* out must hold ser_resample_length(n, ...) samples. Rates must be positive. */
int ser_resample_soxr(float *out, const float *in, int64_t n, double from, double to);
/* The first olen samples of the soxr output (the stream is the same, it just stops early). */
int ser_resample_soxr_n(float *out, int64_t olen, const float *in, int64_t n, double from, double to);
int ser_resample_sinc(float *out, const float *in, int64_t n, int from, int to);

/* Tensor front: [T] -> [T'], or [B, T] -> [B, T'] (rows in parallel). */
int ser_resample_tensor(ser_tensor **out, const ser_tensor *wav, int from, int to,
                        ser_resample_method method);

#endif
