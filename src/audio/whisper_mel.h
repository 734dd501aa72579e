/* The log-mel front end of OpenAI's Whisper (openai/whisper audio.py,
 * Hugging Face WhisperFeatureExtractor), for 16 kHz audio:
 *
 *   STFT     n_fft 400, hop 160, periodic Hann, centred reflect padding;
 *            |X|^2, the last frame dropped: n // 160 frames
 *   mel      n_mels (80, or 128 for large-v3) Slaney-scale filters over 0-8 kHz
 *            with Slaney area normalisation (librosa.filters.mel's defaults)
 *   log      log10(max(mel, 1e-10)), clamped below at (max over the clip) - 8,
 *            then (x + 4) / 4
 *
 * The clip is not padded to 30 s (Whisper pads, so its maximum is taken over
 * the padded window; for a clip that is not silent the two agree). */
#ifndef SER_AUDIO_WHISPER_MEL_H
#define SER_AUDIO_WHISPER_MEL_H

#include <stdint.h>

#include "core/tensor.h"

#define SER_WHISPER_SR 16000
#define SER_WHISPER_N_FFT 400
#define SER_WHISPER_HOP 160

/* n // 160: the frames of a clip of n samples. */
int64_t ser_whisper_logmel_frames(int64_t n);
/* B clips of n samples (x [B][n]) -> out [B][n_mels][n // 160], threaded over
 * the clips. n must exceed 200 (reflect padding); n_mels in 1..512. */
int ser_whisper_logmel(float *out, const float *x, int64_t B, int64_t n, int n_mels);
/* Tensor front: [T] -> [n_mels, T // 160]; [B, T] -> [B, n_mels, T // 160]. */
int ser_whisper_logmel_tensor(ser_tensor **out, const ser_tensor *wav, int n_mels);

#endif
