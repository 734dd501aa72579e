/* Whisper's log-mel (see whisper_mel.h): the mel power spectrum of
 * features.c with Whisper's settings, then the last frame dropped and
 * Whisper's log scaling per clip. */
#include "audio/whisper_mel.h"

#include <math.h>
#include <string.h>

#include "audio/features.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"

int64_t ser_whisper_logmel_frames(int64_t n) { return n > 0 ? n / SER_WHISPER_HOP : 0; }

static int check(int64_t n, int n_mels) {
  if (n_mels < 1 || n_mels > 512)
    return ser_error(SER_EINVAL, "features.whisper_logmel: n_mels must be in 1..512 (Whisper uses 80, large-v3 128), got %d",
                     n_mels);
  if (n <= SER_WHISPER_N_FFT / 2)
    return ser_error(SER_EINVAL, "features.whisper_logmel: a clip of %lld samples is too short: centred reflect padding "
                     "needs more than %d samples (%.4f s at 16 kHz)", (long long)n, SER_WHISPER_N_FFT / 2,
                     (SER_WHISPER_N_FFT / 2 + 1) / (double)SER_WHISPER_SR);
  return 0;
}

/* One clip's mel power [n_mels][frames + 1] -> out [n_mels][frames]. */
static void log_scale(float *out, const float *mel, int n_mels, int64_t frames) {
  float mx = -INFINITY;
  for (int m = 0; m < n_mels; m++) {
    const float *src = mel + (int64_t)m * (frames + 1);
    float *dst = out + (int64_t)m * frames;
    for (int64_t t = 0; t < frames; t++) {
      const float v = log10f(src[t] > 1e-10f ? src[t] : 1e-10f);
      dst[t] = v;
      if (v > mx) mx = v;
    }
  }
  const float lo = mx - 8.0f;
  const int64_t cnt = (int64_t)n_mels * frames;
  for (int64_t i = 0; i < cnt; i++) out[i] = ((out[i] > lo ? out[i] : lo) + 4.0f) / 4.0f;
}

int ser_whisper_logmel(float *out, const float *x, int64_t B, int64_t n, int n_mels) {
  int rc = check(n, n_mels);
  if (rc < 0) return rc;
  ser_feat_opts o = ser_feat_opts_default();
  o.sr = SER_WHISPER_SR;
  o.n_fft = SER_WHISPER_N_FFT;
  o.hop = SER_WHISPER_HOP;
  o.n_mels = n_mels;
  o.fmin = 0.0;
  o.fmax = SER_WHISPER_SR / 2.0;
  o.htk = 0;
  o.slaney_norm = 1;
  o.power = 2.0;
  const int64_t frames = ser_whisper_logmel_frames(n), per = (int64_t)n_mels * (frames + 1);
  const size_t bytes = (size_t)B * (size_t)per * sizeof(float);
  float *mel = ser_alloc(bytes);
  if (!mel) return ser_error_prefix(SER_ENOMEM, "whisper_logmel");
  rc = ser_feat_batch(mel, x, B, n, SER_FEAT_MELPOWER, &o);
  if (rc == 0) {
#pragma omp parallel for num_threads(ser_num_threads()) if (B > 1)
    for (int64_t b = 0; b < B; b++) log_scale(out + b * n_mels * frames, mel + b * per, n_mels, frames);
  }
  ser_free(mel, bytes);
  return rc;
}

int ser_whisper_logmel_tensor(ser_tensor **out, const ser_tensor *wav, int n_mels) {
  *out = NULL;
  if (wav->ndim != 1 && wav->ndim != 2)
    return ser_error(SER_EINVAL, "features.whisper_logmel: expected a 16 kHz waveform [T] or a batch [B, T], got %s",
                     SER_SHAPE(wav));
  const int64_t B = wav->ndim == 2 ? wav->shape[0] : 1, T = wav->shape[wav->ndim - 1];
  if (B < 1) return ser_error(SER_EINVAL, "features.whisper_logmel: empty batch %s", SER_SHAPE(wav));
  int rc = check(T, n_mels);
  if (rc < 0) return rc;
  const int64_t frames = ser_whisper_logmel_frames(T);
  ser_tensor *c = ser_tensor_contiguous_raw((ser_tensor *)wav);
  ser_tensor *t = !c ? NULL
                  : wav->ndim == 1 ? ser_tensor_empty(2, SER_DIMS(n_mels, frames))
                                   : ser_tensor_empty(3, SER_DIMS(B, n_mels, frames));
  if (!t) {
    ser_tensor_release(c);
    return SER_ENOMEM;
  }
  rc = ser_whisper_logmel(ser_tensor_data(t), ser_tensor_data(c), B, T, n_mels);
  ser_tensor_release(c);
  if (rc < 0) {
    ser_tensor_release(t);
    return rc;
  }
  *out = t;
  return 0;
}
