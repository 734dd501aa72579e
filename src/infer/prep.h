/* A clip as the model's input value: the `input` part of the graph description
 * (docs/graph.md) parsed, and applied to mono float PCM at any rate exactly as
 * experiments/predict.lua prepares a file (read window, libsoxr resampling, silence
 * trimming, features and their normalisation). */
#ifndef SER_INFER_PREP_H
#define SER_INFER_PREP_H
#include <stdint.h>
#include "audio/features.h"
#include "audio/trim.h"
#include "core/tensor.h"

typedef enum { SER_PREP_LOGMEL, SER_PREP_MFCC, SER_PREP_WAVEFORM, SER_PREP_WHISPER } ser_prep_kind;
/* input.normalize: per clip, or with a speaker's statistics over all of the speaker's clips --
 * of the spectral features (one mean and std over every bin, or one per bin; ser_prep_run then
 * leaves them un-normalised) or, for the whisper family, of the encoder's pooled output. */
typedef enum { SER_PREP_NORM_CLIP, SER_PREP_NORM_SPEAKER, SER_PREP_NORM_SPEAKER_BINS } ser_prep_norm;

typedef struct ser_prep {
  int sr;
  double seconds, read_seconds;
  int at_most;            /* window "at_most" (whisper family) instead of "fixed" */
  int has_trim;
  ser_trim_opts trim;
  ser_prep_norm normalize; /* not CLIP: the model needs a speaker's statistics (ser_speaker, infer.h) */
  ser_prep_kind kind;
  ser_feat_opts feat;     /* logmel / mfcc */
  int znorm;              /* waveform: z-normalise the clip */
  int n_mels;             /* whisper_logmel */
  double context;         /* whisper_logmel: seconds of window the clip is zero-padded to (0: none) */
} ser_prep;

/* Reads the graph JSON's `input`; a message naming the field on failure. */
int ser_prep_parse(ser_prep *out, const char *graph_json);
/* Largest PCM length ser_prep_run takes (2^31 - 1 samples, about 12 h at 48 kHz). */
#define SER_PREP_MAX_SAMPLES 2147483647LL
/* Lowest and highest sample rates accepted (Hz). */
#define SER_PREP_MIN_RATE 1000
#define SER_PREP_MAX_RATE 768000
/* pcm[n] mono at rate Hz -> *out, the graph's input value for one clip ([1, 1, F, frames],
 * [1, 1, samples] or [1, n_mels, frames]). *own_frames: the clip's own frames at the start of
 * *out when input.context pads it into a longer window (the whisper encoder pools those), else 0. */
int ser_prep_run(ser_tensor **out, int64_t *own_frames, const ser_prep *p, const float *pcm, int64_t n, int rate);

#endif
