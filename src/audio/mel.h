/* Mel filterbanks as torchaudio.functional.melscale_fbanks (0.13) builds them:
 * bin frequencies linspace(0, sr // 2, n_freqs), n_mels + 2 points equally
 * spaced on the mel scale (HTK 2595·log10(1 + f/700), or Slaney: linear below
 * 1 kHz, logarithmic above), triangles max(0, min(down, up)), optional Slaney
 * area norm 2 / (f[m+2] - f[m]). Evaluated in float32 step by step as torch
 * does, so the weights agree to float rounding.
 *
 * Each filter also records its non-zero band [lo, lo + len) so applying the
 * bank costs about 2 multiply-adds per frequency bin instead of n_mels. */
#ifndef SER_AUDIO_MEL_H
#define SER_AUDIO_MEL_H

typedef struct ser_melbank {
  int n_mels, n_freqs, sr;
  double fmin, fmax;
  int htk, slaney_norm;
  float *dense;  /* [n_mels][n_freqs] */
  int *lo, *len; /* non-zero band per filter */
  float **w;     /* w[m] points into dense at lo[m] */
} ser_melbank;

/* A cached bank (built once per parameter set, shared, never freed). Checks
 * the parameters: fmin >= 0, fmin < fmax <= sr/2, n_mels >= 1. */
const ser_melbank *ser_melbank_get(int sr, int n_fft, int n_mels, double fmin, double fmax, int htk,
                                   int slaney_norm);
/* mel[m] = sum_k fb[m][k] * p[k] for one frame (p has n_freqs values). */
void ser_melbank_apply(const ser_melbank *mb, const float *p, float *mel);

double ser_hz_to_mel(double hz, int htk);
double ser_mel_to_hz(double mel, int htk);

#endif
