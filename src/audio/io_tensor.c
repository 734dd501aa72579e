/* Tensor fronts of io.h: the decoded planes become a contiguous tensor. */
#include <string.h>

#include "audio/io.h"
#include "core/error.h"

int ser_audio_load_tensor(ser_tensor **out, int *sr_out, const char *path, const ser_audio_opts *opts) {
  ser_audio a;
  int rc = ser_audio_load(&a, path, opts);
  if (rc < 0) return rc;
  ser_tensor *t = a.channels == 1 ? ser_tensor_empty(1, SER_DIMS(a.frames))
                                  : ser_tensor_empty(2, SER_DIMS(a.channels, a.frames));
  if (!t) {
    ser_audio_free(&a);
    return SER_ENOMEM;
  }
  memcpy(ser_tensor_data(t), a.data, (size_t)(a.frames * a.channels) * sizeof(float));
  if (sr_out) *sr_out = a.sr;
  ser_audio_free(&a);
  *out = t;
  return 0;
}

int ser_audio_save_tensor(const char *path, const ser_tensor *wav, int sr) {
  if (wav->ndim != 1 && wav->ndim != 2)
    return ser_error(SER_EINVAL, "audio.save '%s': expected a [T] or [C, T] tensor, got %s", path, SER_SHAPE(wav));
  ser_tensor *c = ser_tensor_contiguous_raw((ser_tensor *)wav);
  if (!c) return SER_ENOMEM;
  int channels = wav->ndim == 1 ? 1 : (int)wav->shape[0];
  int64_t frames = wav->shape[wav->ndim - 1];
  int rc = ser_audio_save(path, ser_tensor_data(c), frames, channels, sr);
  ser_tensor_release(c);
  return rc;
}

int ser_audio_stack(ser_tensor **out, const ser_audio *clips, int n) {
  *out = NULL;
  if (n < 1) return ser_error(SER_EINVAL, "audio.stack: no clips to stack");
  int64_t T = clips[0].frames;
  for (int i = 0; i < n; i++)
    if (clips[i].frames != T || clips[i].channels != 1)
      return ser_error(SER_EINVAL, "audio.stack: clip %d is %d x %lld samples, clip 1 is 1 x %lld; expected mono clips of one length",
                       i + 1, clips[i].channels, (long long)clips[i].frames, (long long)T);
  ser_tensor *t = ser_tensor_empty(2, SER_DIMS(n, T));
  if (!t) return SER_ENOMEM;
  for (int i = 0; i < n; i++) memcpy(ser_tensor_data(t) + (int64_t)i * T, clips[i].data, (size_t)T * sizeof(float));
  *out = t;
  return 0;
}
