/* Spectral features of the reference pipeline (torchaudio 0.13):
 *
 *   STFT     centred (reflect padding n_fft/2 each side, numpy 'reflect' that
 *            excludes the edge sample), periodic Hann window of n_fft samples,
 *            frame i starts at i*hop of the padded signal: 1 + T/hop frames;
 *            one-sided, unnormalised. power = |X|^power_exp (2: power, 1: magnitude).
 *   mel      filterbank of mel.h applied to the power spectrum.
 *   dB       10·log10(max(x, 1e-10)) (AmplitudeToDB, stype power, ref 1);
 *            top_db: max(x, max_over_the_clip - top_db); floor: max(x, floor).
 *   norm     (x - mean) / (std + 1e-6) over the clip's whole matrix, std unbiased.
 *   MFCC     DCT-II (ortho) of the dB mels after AmplitudeToDB with top_db 80, as
 *            T.MFCC; or of log(mel + 1e-6) when log_mels is set.
 *
 * Layouts: one clip x[T] -> out[n_mels][frames] (or [n_mfcc][frames],
 * [n_freqs][frames]); a batch x[B][T] -> out[B][...] with the clips spread
 * over ser_num_threads() threads. top_db and normalisation are per clip (the
 * reference computes features one clip at a time). */
#ifndef SER_AUDIO_FEATURES_H
#define SER_AUDIO_FEATURES_H

#include <stdint.h>

#include "core/tensor.h"

/* The floor of a speaker's spread of spectral features in speaker normalisation, as
 * ser.data.speaker_norm (Lua: ser.core.features.SPEAKER_STD_FLOOR) and the C inference API's
 * ser_speaker apply it: a spread below it is taken as the floor, so a flat bin is not blown up. */
#define SER_SPEAKER_STD_FLOOR 1e-2

typedef struct ser_feat_opts {
  int sr, n_fft, hop, n_mels;
  double fmin, fmax;
  int htk;            /* 1: HTK mel scale (torchaudio default), 0: Slaney */
  int slaney_norm;    /* 1: Slaney area normalisation, 0: none */
  double power;       /* exponent of |X|: 2 (power) or 1 (magnitude) */
  /* logmel / mfcc post-processing; NAN disables a step */
  double top_db;      /* logmel default NAN; mfcc uses 80 as T.MFCC */
  double floor_db;    /* logmel default -80 (the reference clamp); NAN: none */
  int normalize;      /* per-clip mean/std normalisation */
  int n_mfcc;         /* mfcc only */
  int log_mels;       /* mfcc only: log(mel + 1e-6) instead of dB */
} ser_feat_opts;

/* The reference pipeline: sr 16000, n_fft 1024, hop 256, n_mels 64, fmin 20,
 * fmax 7600, HTK, no norm, power 2; logmel floor -80 and normalised; 40 MFCCs
 * with top_db 80, normalised. */
ser_feat_opts ser_feat_opts_default(void);
typedef enum { SER_FEAT_POWER, SER_FEAT_MELPOWER, SER_FEAT_LOGMEL, SER_FEAT_MFCC } ser_feat_kind;
/* The defaults of one kind, the ones every front end (ser.features, the loader's prefetch
 * worker) starts from: ser_feat_opts_default(), and for MFCC top_db 80 and no floor (as
 * T.MFCC), for the others n_mfcc 1 (unused; n_mels below 40 then passes ser_feat_check). */
ser_feat_opts ser_feat_opts_for(ser_feat_kind kind);
/* Checks the options against each other and the signal length n (n > n_fft/2
 * for reflect padding). */
int ser_feat_check(const ser_feat_opts *o, int64_t n, const char *fname);

int64_t ser_stft_frames(int64_t n, int hop);    /* 1 + n / hop */
void ser_hann_window(float *w, int n);           /* periodic */

/* One clip. */
int ser_stft_clip(float *out /* [n_freqs][frames][2] re,im */, const float *x, int64_t n, const ser_feat_opts *o);
int ser_power_clip(float *out /* [n_freqs][frames] */, const float *x, int64_t n, const ser_feat_opts *o);
int ser_melpower_clip(float *out /* [n_mels][frames] */, const float *x, int64_t n, const ser_feat_opts *o);
int ser_logmel_clip(float *out /* [n_mels][frames] */, const float *x, int64_t n, const ser_feat_opts *o);
int ser_mfcc_clip(float *out /* [n_mfcc][frames] */, const float *x, int64_t n, const ser_feat_opts *o);

/* A batch of B clips of n samples each, threaded over the batch. */
int ser_feat_batch(float *out, const float *x, int64_t B, int64_t n, ser_feat_kind kind, const ser_feat_opts *o);

/* Post-processing steps on a [rows][cols] matrix, exposed for AmplitudeToDB-style use. */
void ser_amplitude_to_db(float *x, int64_t n, double top_db, double floor_db);
void ser_feat_normalize(float *x, int64_t n);          /* (x - mean) / (std_unbiased + 1e-6) */
/* ser_feat_normalize on each of the rows x[rows][per] (per-clip z-normalisation). */
void ser_feat_normalize_rows(float *x, int64_t rows, int64_t per);
/* DCT-II ortho matrix as torchaudio.functional.create_dct: dct[k][m] (n_mfcc x n_mels). */
void ser_dct_matrix(float *dct, int n_mfcc, int n_mels);

/* Tensor fronts: [T] -> [F, frames]; [B, T] -> [B, 1, F, frames]. stft gives
 * [n_freqs, frames, 2] / [B, n_freqs, frames, 2]; melbank [n_mels, n_freqs]. */
int ser_features_tensor(ser_tensor **out, const ser_tensor *wav, ser_feat_kind kind, const ser_feat_opts *o);
int ser_stft_tensor(ser_tensor **out, const ser_tensor *wav, const ser_feat_opts *o);
int ser_melbank_tensor(ser_tensor **out, const ser_feat_opts *o);

#endif
