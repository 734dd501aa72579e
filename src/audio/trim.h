/* Silence trimming as librosa.effects.trim does it: frame energies (centred
 * frames, zero padding), in dB relative to the loudest frame; frames quieter
 * than -top_db are silence; the kept region runs from the first loud frame's
 * start to the last loud frame's end.
 *
 * RAVDESS clips are about 1 s of silence, 2 s of speech, 1 s of silence: a
 * fixed 4 s window is half silence, which dilutes the models' time-averaged
 * features. Trimming first lets a shorter window hold all of the speech. */
#ifndef SER_AUDIO_TRIM_H
#define SER_AUDIO_TRIM_H

#include <stdint.h>

#include "core/tensor.h"

typedef struct ser_trim_opts {
  double top_db;     /* > 0; librosa's default is 60 */
  int frame_length;  /* samples per energy frame (librosa 2048) */
  int hop_length;    /* samples between frames (librosa 512) */
} ser_trim_opts;

ser_trim_opts ser_trim_opts_default(void);

/* Bounds [*start, *end) of the non-silent part of channel-major audio
 * x[channels][frames] (the frame energies are averaged over channels). As in
 * librosa, an all-zero signal is kept whole: every frame is 0 dB relative to
 * a zero peak. Returns 0, or a
 * negative SER_E* code with a message for invalid options. */
int ser_audio_trim_bounds(int64_t *start, int64_t *end, const float *x, int channels, int64_t frames,
                          const ser_trim_opts *opts);
/* Tensor front: w [T] or [C, T] (any strides) -> *out, the kept part [end - start] or
 * [C, end - start]; *start, *end as ser_audio_trim_bounds. */
int ser_audio_trim_tensor(ser_tensor **out, int64_t *start, int64_t *end, ser_tensor *w, const ser_trim_opts *opts);

#endif
