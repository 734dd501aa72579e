/* Audio files in and out: libsndfile for decoding/encoding, libsoxr for the
 * sample-rate conversion done while loading.
 *
 * Loading follows the reference pipeline (librosa.load(sr=16000, duration=4.0)
 * then a fixed 4.0 s): decode at the file's own rate, skip `offset` seconds,
 * keep at most `seconds` of it, mix to mono by averaging the channels,
 * resample, then pad with zeros or trim to exactly round(seconds * sr)
 * samples. Samples are float in [-1, 1] as libsndfile scales integer formats.
 * Every failure returns a negative SER_E* code with a message that names the
 * file and the reason (missing, a directory, empty, not audio, truncated,
 * non-finite samples). */
#ifndef SER_AUDIO_IO_H
#define SER_AUDIO_IO_H

#include <stdint.h>

#include "core/tensor.h"

typedef struct ser_audio_opts {
  int sr;          /* target rate in Hz; 0 keeps the file's rate */
  int mono;        /* 1: average all channels into one */
  double offset;   /* seconds skipped at the start (>= 0) */
  double seconds;  /* > 0: exactly round(seconds * sr) samples out (zero-padded or trimmed); 0: all */
  int normalize;   /* 1: scale so that max |x| == 1 (left alone for an all-zero signal) */
} ser_audio_opts;

/* The file name extensions read as audio (formats libsndfile decodes), lower case without the
 * dot, NULL-terminated: ser.data's corpus scan (Lua: ser.core.audio.extensions) and the classify
 * example pick audio files in a folder by them. */
extern const char *const ser_audio_extensions[];
/* 1 when the file name in path (after its last '/') ends in one of them, in any case; 0 for NULL. */
int ser_audio_has_extension(const char *path);

/* Defaults of the reference pipeline except `seconds` (0 = whole file): 16 kHz mono. */
ser_audio_opts ser_audio_opts_default(void);

/* Decoded audio, channel-major [channels][frames] (torchaudio's [C, T]). */
typedef struct ser_audio {
  float *data;       /* ser_alloc'd; ser_audio_free releases it */
  int64_t frames;
  int channels;
  int sr;
} ser_audio;

typedef struct ser_audio_info {
  int64_t frames;
  int channels;
  int sr;
  int format;        /* libsndfile SF_FORMAT_* */
  char format_name[64];  /* e.g. "WAV (Microsoft) / Signed 16 bit PCM" */
} ser_audio_info;

int ser_audio_info_get(ser_audio_info *out, const char *path);
int ser_audio_load(ser_audio *out, const char *path, const ser_audio_opts *opts);
void ser_audio_free(ser_audio *a);

/* [n, T]: n decoded mono clips of the same length T, one a row (ser_audio_load_many's
 * results made a matrix). */
int ser_audio_stack(ser_tensor **out, const ser_audio *clips, int n);
/* Tensor front: [T] when mono (or a one-channel file), else [C, T]. */
int ser_audio_load_tensor(ser_tensor **out, int *sr_out, const char *path, const ser_audio_opts *opts);

/* Writes [channels][frames] channel-major samples. The format follows the
 * extension: .wav (32-bit float), .flac (16-bit), .aif/.aiff (16-bit), .ogg
 * (Vorbis), .mp3 (when libsndfile was built with LAME, as Debian's is). Atomic: written to a temporary file in the same folder, then
 * renamed over `path`. Non-finite samples are refused. */
int ser_audio_save(const char *path, const float *data, int64_t frames, int channels, int sr);
/* Tensor front: [T] (mono) or [C, T]. */
int ser_audio_save_tensor(const char *path, const ser_tensor *wav, int sr);

/* Index of the first non-finite value in x[0..n), or -1; *count gets how many. */
int64_t ser_audio_find_nonfinite(const float *x, int64_t n, int64_t *count);
/* Peak normalisation in place (max |x| -> 1); no-op on silence. */
void ser_audio_peak_normalize(float *x, int64_t n);

#endif
