#include "features.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/fft.h"
#include "audio/kernels.h"
#include "audio/mel.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"

ser_feat_opts ser_feat_opts_default(void) {
  ser_feat_opts o = {.sr = 16000, .n_fft = 1024, .hop = 256, .n_mels = 64, .fmin = 20.0, .fmax = 7600.0,
                     .htk = 1, .slaney_norm = 0, .power = 2.0, .top_db = NAN, .floor_db = -80.0,
                     .normalize = 1, .n_mfcc = 40, .log_mels = 0};
  return o;
}

ser_feat_opts ser_feat_opts_for(ser_feat_kind kind) {
  ser_feat_opts o = ser_feat_opts_default();
  if (kind == SER_FEAT_MFCC) {
    o.top_db = 80.0;
    o.floor_db = NAN;
  } else {
    o.n_mfcc = 1;
  }
  return o;
}

int64_t ser_stft_frames(int64_t n, int hop) { return hop > 0 ? 1 + n / hop : 0; }

void ser_hann_window(float *w, int n) {
  for (int i = 0; i < n; i++) w[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * (double)i / (double)n));
}

int ser_feat_check(const ser_feat_opts *o, int64_t n, const char *fname) {
  if (o->sr < 1) return ser_error(SER_EINVAL, "%s: sr must be positive, got %d", fname, o->sr);
  if (o->n_fft < 2 || o->n_fft > (1 << 20))
    return ser_error(SER_EINVAL, "%s: n_fft must be in 2..1048576, got %d", fname, o->n_fft);
  if (o->hop < 1) return ser_error(SER_EINVAL, "%s: hop must be positive, got %d", fname, o->hop);
  if (o->n_mels < 1) return ser_error(SER_EINVAL, "%s: n_mels must be positive, got %d", fname, o->n_mels);
  if (!(o->power == 1.0 || o->power == 2.0))
    return ser_error(SER_EINVAL, "%s: power must be 1 (magnitude) or 2 (power), got %g", fname, o->power);
  if (!(o->fmin >= 0) || !(o->fmax > o->fmin) || o->fmax > o->sr / 2.0)
    return ser_error(SER_EINVAL, "%s: need 0 <= fmin < fmax <= sr/2 = %g Hz, got fmin %g, fmax %g", fname,
                     o->sr / 2.0, o->fmin, o->fmax);
  if (!isnan(o->top_db) && !(o->top_db >= 0))
    return ser_error(SER_EINVAL, "%s: top_db must be >= 0, got %g", fname, o->top_db);
  if (o->n_mfcc < 1 || o->n_mfcc > o->n_mels)
    return ser_error(SER_EINVAL, "%s: n_mfcc must be in 1..n_mels (%d), got %d", fname, o->n_mels, o->n_mfcc);
  if (n >= 0 && n <= o->n_fft / 2)
    return ser_error(SER_EINVAL,
                     "%s: signal of %lld samples is too short for n_fft %d: centred reflect padding needs more "
                     "than n_fft/2 = %d samples",
                     fname, (long long)n, o->n_fft, o->n_fft / 2);
  return 0;
}

/* Periodic Hann windows per size, built once (same lifetime rules as the FFT plans). */
#define MAX_WINDOWS 16
static struct {
  int n;
  float *w;
} windows[MAX_WINDOWS];
static int nwindows;
static pthread_mutex_t window_lock = PTHREAD_MUTEX_INITIALIZER;

static const float *hann_get(int n) {
  pthread_mutex_lock(&window_lock);
  for (int i = 0; i < nwindows; i++)
    if (windows[i].n == n) {
      pthread_mutex_unlock(&window_lock);
      return windows[i].w;
    }
  float *w = NULL;
  if (nwindows < MAX_WINDOWS && (w = malloc(sizeof(float) * (size_t)n))) {
    ser_hann_window(w, n);
    windows[nwindows].n = n;
    windows[nwindows++].w = w;
  }
  pthread_mutex_unlock(&window_lock);
  if (!w) ser_error(SER_ENOMEM, "stft: cannot keep a window of %d samples", n);
  return w;
}

/* Everything one clip needs: shared read-only tables plus private scratch. */
typedef struct clip_ws {
  const ser_feat_opts *o;
  const ser_fft_plan *plan;
  const ser_melbank *mb; /* NULL for stft/power */
  const float *win;
  float *dct;            /* [n_mfcc][n_mels], mfcc only */
  float *frame, *spec;
  float *pb;             /* [n_freqs][SER_K_BLOCK] power of a block of frames */
  float *melM;           /* [n_mels][frames], mfcc only (logmel works in its output) */
  int64_t frames;
  size_t melM_bytes;
} clip_ws;

static void ws_free(clip_ws *w) {
  ser_fft_free(w->frame);
  ser_fft_free(w->spec);
  ser_fft_free(w->pb);
  free(w->dct);
  if (w->melM) ser_free(w->melM, w->melM_bytes);
  memset(w, 0, sizeof *w);
}

static int ws_init(clip_ws *w, const ser_feat_opts *o, int64_t n, ser_feat_kind kind) {
  memset(w, 0, sizeof *w);
  w->o = o;
  w->frames = ser_stft_frames(n, o->hop);
  int nf = o->n_fft / 2 + 1;
  if (!(w->plan = ser_fft_r2c(o->n_fft)) || !(w->win = hann_get(o->n_fft))) return SER_ENOMEM;
  if (kind != SER_FEAT_POWER) {
    w->mb = ser_melbank_get(o->sr, o->n_fft, o->n_mels, o->fmin, o->fmax, o->htk, o->slaney_norm);
    if (!w->mb) return SER_EINVAL;
  }
  if (kind == SER_FEAT_MFCC) {
    w->melM_bytes = (size_t)w->frames * (size_t)o->n_mels * sizeof(float);
    if (!(w->melM = ser_alloc(w->melM_bytes))) return SER_ENOMEM;
    if (!(w->dct = malloc(sizeof(float) * (size_t)o->n_mfcc * (size_t)o->n_mels)))
      return ser_error(SER_ENOMEM, "mfcc: out of memory");
    ser_dct_matrix(w->dct, o->n_mfcc, o->n_mels);
  }
  w->frame = ser_fft_alloc((size_t)o->n_fft);
  w->spec = ser_fft_alloc((size_t)nf * 2);
  w->pb = ser_fft_alloc((size_t)nf * SER_K_BLOCK);
  if (!w->frame || !w->spec || !w->pb) return ser_error(SER_ENOMEM, "stft: out of memory for n_fft %d", o->n_fft);
  return 0;
}

/* Windowed frame starting at `start` of the unpadded signal (negative or past
 * the end near the edges, where numpy-style reflection applies). */
static void load_frame(float *dst, const float *x, int64_t n, int64_t start, int nfft, const float *win) {
  if (start >= 0 && start + nfft <= n) {
    ser_k_window(dst, x + start, win, nfft);
    return;
  }
  for (int i = 0; i < nfft; i++) {
    int64_t j = start + i;
    if (j < 0) j = -j;
    if (j >= n) j = 2 * (n - 1) - j;
    dst[i] = x[j] * win[i];
  }
}

enum { OUT_COMPLEX, OUT_POWER, OUT_MEL };

/* Runs the STFT over the clip, writing out[n_freqs][frames][2] (complex),
 * out[n_freqs][frames] (power) or out[n_mels][frames] (mel power). Frames go
 * in blocks of SER_K_BLOCK so that the filterbank runs across frames. */
static void spectra(clip_ws *w, const float *x, int64_t n, int what, float *out) {
  const ser_feat_opts *o = w->o;
  int nfft = o->n_fft, nf = nfft / 2 + 1, pad = nfft / 2;
  int64_t frames = w->frames;
  int magnitude = o->power == 1.0;
  for (int64_t f0 = 0; f0 < frames; f0 += SER_K_BLOCK) {
    int jn = frames - f0 < SER_K_BLOCK ? (int)(frames - f0) : SER_K_BLOCK;
    for (int j = 0; j < jn; j++) {
      int64_t f = f0 + j;
      load_frame(w->frame, x, n, f * o->hop - pad, nfft, w->win);
      ser_fft_exec_r2c(w->plan, w->frame, w->spec);
      if (what == OUT_COMPLEX) {
        const float *s = w->spec;
        for (int k = 0; k < nf; k++) {
          out[((int64_t)k * frames + f) * 2] = s[2 * k];
          out[((int64_t)k * frames + f) * 2 + 1] = s[2 * k + 1];
        }
      } else {
        ser_k_power_lane(w->pb, w->spec, nf, j, magnitude);
      }
    }
    if (what == OUT_POWER) {
      for (int k = 0; k < nf; k++)
        for (int j = 0; j < jn; j++) out[(int64_t)k * frames + f0 + j] = w->pb[k * SER_K_BLOCK + j];
    } else if (what == OUT_MEL) {
      const ser_melbank *mb = w->mb;
      ser_k_mel_block(out + f0, frames, w->pb, mb->n_mels, mb->w, mb->lo, mb->len, jn);
    }
  }
}

void ser_amplitude_to_db(float *x, int64_t n, double top_db, double floor_db) {
  float mx = ser_k_db(x, n);
  float lo = -INFINITY;
  if (!isnan(top_db)) lo = mx - (float)top_db;
  if (!isnan(floor_db) && (float)floor_db > lo) lo = (float)floor_db;
  if (lo > -INFINITY) ser_k_clamp_min(x, n, lo);
}

void ser_feat_normalize(float *x, int64_t n) {
  if (n < 2) return; /* unbiased std undefined; torch would give NaN, we leave x alone */
  double mean = ser_k_sum(x, n) / (double)n;
  double sd = sqrt(ser_k_sqdev(x, n, mean) / (double)(n - 1));
  ser_k_affine(x, n, (float)mean, (float)(1.0 / (sd + 1e-6)));
}

void ser_feat_normalize_rows(float *x, int64_t rows, int64_t per) {
  for (int64_t r = 0; r < rows; r++) ser_feat_normalize(x + r * per, per);
}

/* torchaudio.functional.create_dct evaluated in float32 as torch does it
 * (argument rounded to float before the cosine), so it matches to an ulp. */
void ser_dct_matrix(float *dct, int n_mfcc, int n_mels) {
  float a = (float)(M_PI / (double)n_mels), s = (float)sqrt(2.0 / (double)n_mels), s0 = (float)(1.0 / sqrt(2.0));
  for (int k = 0; k < n_mfcc; k++)
    for (int m = 0; m < n_mels; m++) {
      float v = (float)cos((double)(a * ((float)m + 0.5f) * (float)k));
      if (k == 0) v *= s0;
      dct[(size_t)k * n_mels + m] = v * s;
    }
}

/* The per-clip work for every kind, on a prepared workspace. */
static void run_clip(clip_ws *w, float *out, const float *x, int64_t n, ser_feat_kind kind) {
  const ser_feat_opts *o = w->o;
  int64_t frames = w->frames, cnt = frames * o->n_mels;
  if (kind == SER_FEAT_POWER) {
    spectra(w, x, n, OUT_POWER, out);
    return;
  }
  if (kind != SER_FEAT_MFCC) {
    spectra(w, x, n, OUT_MEL, out);
    if (kind == SER_FEAT_LOGMEL) {
      ser_amplitude_to_db(out, cnt, o->top_db, o->floor_db);
      if (o->normalize) ser_feat_normalize(out, cnt);
    }
    return;
  }
  float *mm = w->melM;
  spectra(w, x, n, OUT_MEL, mm);
  if (o->log_mels)
    for (int64_t i = 0; i < cnt; i++) mm[i] = logf(mm[i] + 1e-6f);
  else
    ser_amplitude_to_db(mm, cnt, o->top_db, NAN);
  ser_k_matmul_cols(out, w->dct, mm, o->n_mfcc, o->n_mels, frames);
  if (o->normalize) ser_feat_normalize(out, (int64_t)o->n_mfcc * frames);
}

static const char *kind_name(ser_feat_kind k) {
  switch (k) {
    case SER_FEAT_POWER: return "features.power";
    case SER_FEAT_MELPOWER: return "features.melpower";
    case SER_FEAT_LOGMEL: return "features.logmel";
    default: return "features.mfcc";
  }
}

static int one_clip(float *out, const float *x, int64_t n, const ser_feat_opts *o, ser_feat_kind kind) {
  int rc = ser_feat_check(o, n, kind_name(kind));
  if (rc < 0) return rc;
  clip_ws w;
  rc = ws_init(&w, o, n, kind);
  if (rc == 0) run_clip(&w, out, x, n, kind);
  ws_free(&w);
  return rc;
}

int ser_power_clip(float *out, const float *x, int64_t n, const ser_feat_opts *o) {
  return one_clip(out, x, n, o, SER_FEAT_POWER);
}
int ser_melpower_clip(float *out, const float *x, int64_t n, const ser_feat_opts *o) {
  return one_clip(out, x, n, o, SER_FEAT_MELPOWER);
}
int ser_logmel_clip(float *out, const float *x, int64_t n, const ser_feat_opts *o) {
  return one_clip(out, x, n, o, SER_FEAT_LOGMEL);
}
int ser_mfcc_clip(float *out, const float *x, int64_t n, const ser_feat_opts *o) {
  return one_clip(out, x, n, o, SER_FEAT_MFCC);
}

int ser_stft_clip(float *out, const float *x, int64_t n, const ser_feat_opts *o) {
  int rc = ser_feat_check(o, n, "features.stft");
  if (rc < 0) return rc;
  clip_ws w;
  rc = ws_init(&w, o, n, SER_FEAT_POWER);
  if (rc == 0) spectra(&w, x, n, OUT_COMPLEX, out);
  ws_free(&w);
  return rc;
}

int ser_feat_batch(float *out, const float *x, int64_t B, int64_t n, ser_feat_kind kind, const ser_feat_opts *o) {
  int rc = ser_feat_check(o, n, kind_name(kind));
  if (rc < 0) return rc;
  int64_t frames = ser_stft_frames(n, o->hop);
  int rows = kind == SER_FEAT_POWER ? o->n_fft / 2 + 1 : kind == SER_FEAT_MFCC ? o->n_mfcc : o->n_mels;
  int64_t per = (int64_t)rows * frames;
  int nt = ser_num_threads();
  if (nt > B) nt = (int)B;
  if (nt < 1) nt = 1;
  /* Build the shared plan, window and bank before the threads start. */
  clip_ws probe;
  rc = ws_init(&probe, o, n, kind);
  ws_free(&probe);
  if (rc < 0) return rc;
  int failed = 0;
  char msg[256] = "";
#pragma omp parallel num_threads(nt)
  {
    clip_ws w;
    int wrc = ws_init(&w, o, n, kind);
    if (wrc < 0) {
#pragma omp critical(ser_feat_err)
      {
        failed = wrc;
        snprintf(msg, sizeof msg, "%s", ser_errmsg());
      }
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++)
      if (wrc == 0) run_clip(&w, out + b * per, x + b * n, n, kind);
    ws_free(&w);
  }
  if (failed) return ser_error(failed, "%s", msg);
  return 0;
}
