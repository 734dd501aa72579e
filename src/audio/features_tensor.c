/* Tensor fronts of features.h and resample.h: shape checks, output allocation,
 * then the raw kernels on contiguous data. */
#include <stdio.h>
#include <string.h>

#include "audio/features.h"
#include "audio/mel.h"
#include "audio/resample.h"
#include "core/error.h"
#include "core/threads.h"

static const char *kind_fname(ser_feat_kind k) {
  return k == SER_FEAT_POWER ? "features.power" : k == SER_FEAT_MELPOWER ? "features.melpower"
                                              : k == SER_FEAT_LOGMEL   ? "features.logmel"
                                                                       : "features.mfcc";
}

/* [T] or [B, T] -> a contiguous reference, B and T. */
static int wave_in(ser_tensor **c, int64_t *B, int64_t *T, const ser_tensor *wav, const char *fname) {
  if (wav->ndim != 1 && wav->ndim != 2)
    return ser_error(SER_EINVAL, "%s: expected a waveform [T] or a batch [B, T], got %s", fname, SER_SHAPE(wav));
  *B = wav->ndim == 2 ? wav->shape[0] : 1;
  *T = wav->shape[wav->ndim - 1];
  if (*B < 1) return ser_error(SER_EINVAL, "%s: empty batch %s", fname, SER_SHAPE(wav));
  *c = ser_tensor_contiguous_raw((ser_tensor *)wav);
  return *c ? 0 : SER_ENOMEM;
}

int ser_features_tensor(ser_tensor **out, const ser_tensor *wav, ser_feat_kind kind, const ser_feat_opts *o) {
  const char *fname = kind_fname(kind);
  int64_t B, T;
  ser_tensor *c;
  int rc = ser_feat_check(o, wav->ndim >= 1 ? wav->shape[wav->ndim - 1] : 0, fname);
  if (rc < 0) return rc;
  if ((rc = wave_in(&c, &B, &T, wav, fname)) < 0) return rc;
  int64_t frames = ser_stft_frames(T, o->hop);
  int64_t rows = kind == SER_FEAT_POWER ? o->n_fft / 2 + 1 : kind == SER_FEAT_MFCC ? o->n_mfcc : o->n_mels;
  ser_tensor *t = wav->ndim == 1 ? ser_tensor_empty(2, SER_DIMS(rows, frames))
                                 : ser_tensor_empty(4, SER_DIMS(B, 1, rows, frames));
  if (!t) {
    ser_tensor_release(c);
    return SER_ENOMEM;
  }
  rc = ser_feat_batch(ser_tensor_data(t), ser_tensor_data(c), B, T, kind, o);
  ser_tensor_release(c);
  if (rc < 0) {
    ser_tensor_release(t);
    return rc;
  }
  *out = t;
  return 0;
}

int ser_stft_tensor(ser_tensor **out, const ser_tensor *wav, const ser_feat_opts *o) {
  int64_t B, T;
  ser_tensor *c;
  int rc = ser_feat_check(o, wav->ndim >= 1 ? wav->shape[wav->ndim - 1] : 0, "features.stft");
  if (rc < 0) return rc;
  if ((rc = wave_in(&c, &B, &T, wav, "features.stft")) < 0) return rc;
  int64_t frames = ser_stft_frames(T, o->hop), nf = o->n_fft / 2 + 1;
  ser_tensor *t = wav->ndim == 1 ? ser_tensor_empty(3, SER_DIMS(nf, frames, 2))
                                 : ser_tensor_empty(4, SER_DIMS(B, nf, frames, 2));
  if (!t) {
    ser_tensor_release(c);
    return SER_ENOMEM;
  }
  for (int64_t b = 0; b < B && rc == 0; b++)
    rc = ser_stft_clip(ser_tensor_data(t) + b * nf * frames * 2, ser_tensor_data(c) + b * T, T, o);
  ser_tensor_release(c);
  if (rc < 0) {
    ser_tensor_release(t);
    return rc;
  }
  *out = t;
  return 0;
}

int ser_melbank_tensor(ser_tensor **out, const ser_feat_opts *o) {
  const ser_melbank *mb = ser_melbank_get(o->sr, o->n_fft, o->n_mels, o->fmin, o->fmax, o->htk, o->slaney_norm);
  if (!mb) return SER_EINVAL;
  ser_tensor *t = ser_tensor_from_data(2, SER_DIMS(mb->n_mels, mb->n_freqs), mb->dense);
  if (!t) return SER_ENOMEM;
  *out = t;
  return 0;
}

int ser_resample_tensor(ser_tensor **out, const ser_tensor *wav, int from, int to, ser_resample_method method) {
  int64_t B, T;
  ser_tensor *c;
  if (from <= 0 || to <= 0)
    return ser_error(SER_EINVAL, "audio.resample: rates must be positive, got %d -> %d Hz", from, to);
  int rc = wave_in(&c, &B, &T, wav, "audio.resample");
  if (rc < 0) return rc;
  int64_t n2 = ser_resample_length(T, from, to, method);
  ser_tensor *t = wav->ndim == 1 ? ser_tensor_empty(1, SER_DIMS(n2)) : ser_tensor_empty(2, SER_DIMS(B, n2));
  if (!t) {
    ser_tensor_release(c);
    return SER_ENOMEM;
  }
  const float *src = ser_tensor_data(c);
  float *dst = ser_tensor_data(t);
  int nt = ser_num_threads(), failed = 0;
  if (nt > B) nt = (int)B;
  char msg[256] = "";
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; b++) {
    int r = method == SER_RESAMPLE_SINC ? ser_resample_sinc(dst + b * n2, src + b * T, T, from, to)
                                        : ser_resample_soxr(dst + b * n2, src + b * T, T, from, to);
    if (r < 0) {
#pragma omp critical(ser_resample_err)
      {
        failed = r;
        snprintf(msg, sizeof msg, "%s", ser_errmsg());
      }
    }
  }
  ser_tensor_release(c);
  if (failed) {
    ser_tensor_release(t);
    return ser_error(failed, "%s", msg);
  }
  *out = t;
  return 0;
}
