/* librosa.effects.trim's bounds (librosa 0.10: rms with center=True and
 * pad_mode="constant", power_to_db with ref=max and amin=1e-10), computed in
 * O(frames) from a running sum of squares instead of framing the signal. */
#include "audio/trim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

ser_trim_opts ser_trim_opts_default(void) {
  return (ser_trim_opts){.top_db = 60.0, .frame_length = 2048, .hop_length = 512};
}

int ser_audio_trim_bounds(int64_t *start, int64_t *end, const float *x, int channels, int64_t frames,
                          const ser_trim_opts *o) {
  *start = *end = 0;
  if (!(o->top_db > 0) || !isfinite(o->top_db))
    return ser_error(SER_EINVAL, "audio.trim: top_db must be a finite number > 0, got %g", o->top_db);
  if (o->frame_length < 1 || o->hop_length < 1)
    return ser_error(SER_EINVAL, "audio.trim: frame_length and hop_length must be >= 1, got %d and %d",
                     o->frame_length, o->hop_length);
  if (channels < 1 || frames < 0)
    return ser_error(SER_EINVAL, "audio.trim: expected at least one channel, got %d", channels);
  if (frames == 0) return 0;

  /* csum[i] = sum over channels of x[c][0..i) squared, in double so that the
   * differences of long prefixes keep their precision. */
  double *csum = malloc((size_t)(frames + 1) * sizeof(double));
  if (!csum) return ser_error(SER_ENOMEM, "audio.trim: out of memory for %lld samples", (long long)frames);
  csum[0] = 0.0;
  for (int64_t i = 0; i < frames; i++) {
    double s = 0.0;
    for (int c = 0; c < channels; c++) {
      double v = x[(int64_t)c * frames + i];
      s += v * v;
    }
    csum[i + 1] = csum[i] + s;
  }
  const int64_t fl = o->frame_length, hop = o->hop_length, half = fl / 2;
  /* Frames of the zero-padded signal: 1 + (frames + 2*half - fl) / hop. */
  int64_t padded = frames + 2 * half;
  int64_t n_frames = 1 + (padded - fl) / hop;  /* padded >= fl since frames >= 1 */
  double *mse = malloc((size_t)n_frames * sizeof(double));
  if (!mse) {
    free(csum);
    return ser_error(SER_ENOMEM, "audio.trim: out of memory for %lld frames", (long long)n_frames);
  }
  double peak = 0.0;
  for (int64_t f = 0; f < n_frames; f++) {
    int64_t a = f * hop - half, b = a + fl;
    if (a < 0) a = 0;
    if (b > frames) b = frames;
    double e = b > a ? csum[b] - csum[a] : 0.0;
    if (e < 0) e = 0;  /* rounding of the running sum */
    mse[f] = e / ((double)fl * channels);
    if (mse[f] > peak) peak = mse[f];
  }
  /* db = 10 log10(max(amin, mse)) - 10 log10(max(amin, peak)) > -top_db */
  const double amin = 1e-10;
  double ref_db = 10.0 * log10(peak > amin ? peak : amin);
  int64_t first = -1, last = -1;
  for (int64_t f = 0; f < n_frames; f++) {
    double db = 10.0 * log10(mse[f] > amin ? mse[f] : amin) - ref_db;
    if (db > -o->top_db) {
      if (first < 0) first = f;
      last = f;
    }
  }
  free(mse);
  free(csum);
  if (first < 0) return 0;  /* only with NaN samples: the loudest frame is always kept */
  *start = first * hop;
  if (*start > frames) *start = frames;
  int64_t e = (last + 1) * hop;
  *end = e < frames ? e : frames;
  return 0;
}

int ser_audio_trim_tensor(ser_tensor **out, int64_t *start, int64_t *end, ser_tensor *w, const ser_trim_opts *opts) {
  *out = NULL;
  if (w->ndim != 1 && w->ndim != 2)
    return ser_error(SER_EINVAL, "audio.trim: expected a waveform [T] or [C, T], got %s", SER_SHAPE(w));
  int channels = w->ndim == 2 ? (int)w->shape[0] : 1;
  int64_t frames = w->shape[w->ndim - 1];
  ser_tensor *c = ser_tensor_contiguous_raw(w);
  if (!c) return SER_ENOMEM;
  int rc = ser_audio_trim_bounds(start, end, ser_tensor_data(c), channels, frames, opts);
  if (rc < 0) {
    ser_tensor_release(c);
    return rc;
  }
  int64_t kept = *end - *start;
  ser_tensor *t = w->ndim == 1 ? ser_tensor_empty(1, SER_DIMS(kept)) : ser_tensor_empty(2, SER_DIMS(channels, kept));
  if (t)
    for (int ch = 0; ch < channels; ch++)
      memcpy(ser_tensor_data(t) + (int64_t)ch * kept, ser_tensor_data(c) + (int64_t)ch * frames + *start,
             (size_t)kept * sizeof(float));
  ser_tensor_release(c);
  if (!t) return SER_ENOMEM;
  *out = t;
  return 0;
}
