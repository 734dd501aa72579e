#include "mel.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audio/kernels.h"
#include "core/alloc.h"
#include "core/error.h"

double ser_hz_to_mel(double hz, int htk) {
  if (htk) return 2595.0 * log10(1.0 + hz / 700.0);
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = log(6.4) / 27.0;
  if (hz >= min_log_hz) return min_log_mel + log(hz / min_log_hz) / logstep;
  return hz / f_sp;
}

double ser_mel_to_hz(double mel, int htk) {
  if (htk) return 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = log(6.4) / 27.0;
  if (mel >= min_log_mel) return min_log_hz * exp(logstep * (mel - min_log_mel));
  return f_sp * mel;
}

/* torch.linspace on float32 as ATen 1.13 computes it on an AVX2 build, so that
 * the points round the same way: the first half counts up from start, the
 * second half down from end; whole 2x8-lane blocks take their base from an
 * FMA (start + step * i) and add lane * step, the tail is scalar FMA. */
static void linspace_f32(float *out, float start, float end, int steps) {
  if (steps == 1) {
    out[0] = start;
    return;
  }
  const int V = 8;
  float step = (end - start) / (float)(steps - 1);
  int half = steps / 2, nvec = steps / (2 * V) * (2 * V);
  for (int c = 0; c < nvec; c += V) {
    float base = c < half ? fmaf(step, (float)c, start) : fmaf(-step, (float)(steps - c - 1), end);
    for (int i = 0; i < V; i++) out[c + i] = base + (float)i * step;
  }
  for (int i = nvec; i < steps; i++)
    out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

/* torchaudio's _mel_to_hz on a float32 tensor; pow/exp are correctly rounded
 * from double, which is what torch's vectorised versions deliver here. */
static float mel_to_hz_f32(float mel, int htk) {
  if (htk) return 700.0f * ((float)pow(10.0, (double)(mel / 2595.0f)) - 1.0f);
  const float f_sp = (float)(200.0 / 3.0), min_log_mel = (float)(1000.0 / (200.0 / 3.0));
  const float logstep = (float)(log(6.4) / 27.0);
  if (mel >= min_log_mel) return 1000.0f * (float)exp((double)(logstep * (mel - min_log_mel)));
  return 0.0f + f_sp * mel;
}

static void free_melbank(ser_melbank *mb) {
  free(mb->dense);
  free(mb->lo);
  free(mb->len);
  free(mb->w);
  free(mb);
}

static ser_melbank *build(int sr, int n_fft, int n_mels, double fmin, double fmax, int htk, int slaney_norm) {
  int nf = n_fft / 2 + 1, np = n_mels + 2;
  ser_melbank *mb = calloc(1, sizeof *mb);
  float *freqs = malloc(sizeof(float) * (size_t)nf);
  float *m_pts = malloc(sizeof(float) * (size_t)np);
  float *f_pts = malloc(sizeof(float) * (size_t)np);
  if (mb) {
    mb->dense = calloc((size_t)n_mels * (size_t)nf, sizeof(float));
    mb->lo = calloc((size_t)n_mels, sizeof(int));
    mb->len = calloc((size_t)n_mels, sizeof(int));
    mb->w = calloc((size_t)n_mels, sizeof(float *));
  }
  if (!mb || !freqs || !m_pts || !f_pts || !mb->dense || !mb->lo || !mb->len || !mb->w) {
    if (mb) free_melbank(mb);
    free(freqs);
    free(m_pts);
    free(f_pts);
    ser_error(SER_ENOMEM, "melbank: out of memory for %d x %d", n_mels, nf);
    return NULL;
  }
  mb->n_mels = n_mels;
  mb->n_freqs = nf;
  mb->sr = sr;
  mb->fmin = fmin;
  mb->fmax = fmax;
  mb->htk = htk;
  mb->slaney_norm = slaney_norm;

  linspace_f32(freqs, 0.0f, (float)(sr / 2), nf);
  /* _hz_to_mel runs on Python floats (double); the linspace is float32. */
  linspace_f32(m_pts, (float)ser_hz_to_mel(fmin, htk), (float)ser_hz_to_mel(fmax, htk), np);
  for (int i = 0; i < np; i++) f_pts[i] = mel_to_hz_f32(m_pts[i], htk);
  for (int m = 0; m < n_mels; m++) {
    float d0 = f_pts[m + 1] - f_pts[m], d1 = f_pts[m + 2] - f_pts[m + 1];
    float enorm = slaney_norm ? 2.0f / (f_pts[m + 2] - f_pts[m]) : 1.0f;
    int lo = -1, hi = -1;
    for (int k = 0; k < nf; k++) {
      float down = (-1.0f * (f_pts[m] - freqs[k])) / d0;
      float up = (f_pts[m + 2] - freqs[k]) / d1;
      float v = fmaxf(0.0f, fminf(down, up));
      if (slaney_norm) v *= enorm;
      mb->dense[(size_t)m * nf + k] = v;
      if (v != 0.0f) {
        if (lo < 0) lo = k;
        hi = k;
      }
    }
    mb->lo[m] = lo < 0 ? 0 : lo;
    mb->len[m] = lo < 0 ? 0 : hi - lo + 1;
    mb->w[m] = mb->dense + (size_t)m * nf + mb->lo[m];
  }
  /* A filter narrower than the FFT bin spacing can fall between two bins and cover none: its
   * channel would be a constant at the dB floor. torchaudio and librosa only warn; here it is
   * an error, since such a channel is never what the caller meant. */
  int empty = 0, first_empty = -1;
  for (int m = 0; m < n_mels; m++)
    if (mb->len[m] == 0 && empty++ == 0) first_empty = m;
  if (empty) {
    ser_error(SER_EINVAL,
              "melbank: %d of %d mel filters cover no FFT bin (the lowest such spans %.1f-%.1f Hz; bins are %.1f Hz "
              "apart at n_fft %d and sr %d): use fewer mels, a larger n_fft or a higher fmin",
              empty, n_mels, (double)f_pts[first_empty], (double)f_pts[first_empty + 2],
              (double)sr / n_fft, n_fft, sr);
    free_melbank(mb);
    mb = NULL;
  }
  free(freqs);
  free(m_pts);
  free(f_pts);
  return mb;
}

#define MAX_BANKS 32
static ser_melbank *banks[MAX_BANKS];
static int nbanks;
static pthread_mutex_t bank_lock = PTHREAD_MUTEX_INITIALIZER;
/* Banks pushed out of the table: still referenced by callers that may hold them, so kept
 * alive, and listed here so that they stay reachable (a leak checker sees them as held). */
static ser_melbank **retired;
static size_t n_retired, cap_retired;
static void retire(ser_melbank *b) {
  if (n_retired == cap_retired) {
    size_t cap = cap_retired ? 2 * cap_retired : 16;
    ser_melbank **r = realloc(retired, cap * sizeof *r);
    if (!r) return; /* out of memory: the bank stays allocated, merely unlisted */
    retired = r;
    cap_retired = cap;
  }
  retired[n_retired++] = b;
}

const ser_melbank *ser_melbank_get(int sr, int n_fft, int n_mels, double fmin, double fmax, int htk,
                                   int slaney_norm) {
  if (sr < 1 || n_fft < 2 || n_mels < 1 || n_mels > 4096 || n_fft > (1 << 20)) {
    ser_error(SER_EINVAL, "melbank: need sr >= 1, 2 <= n_fft <= 2^20, 1 <= n_mels <= 4096; got sr %d, n_fft %d, n_mels %d",
              sr, n_fft, n_mels);
    return NULL;
  }
  if (!(fmin >= 0) || !(fmax > fmin) || fmax > sr / 2.0) {
    ser_error(SER_EINVAL, "melbank: need 0 <= fmin < fmax <= sr/2 = %g Hz; got fmin %g, fmax %g", sr / 2.0, fmin, fmax);
    return NULL;
  }
  htk = !!htk;
  slaney_norm = !!slaney_norm;
  int nf = n_fft / 2 + 1;
  pthread_mutex_lock(&bank_lock);
  for (int i = 0; i < nbanks; i++) {
    ser_melbank *b = banks[i];
    if (b->sr == sr && b->n_freqs == nf && b->n_mels == n_mels && b->fmin == fmin && b->fmax == fmax &&
        b->htk == htk && b->slaney_norm == slaney_norm) {
      pthread_mutex_unlock(&bank_lock);
      return b;
    }
  }
  ser_melbank *b = build(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm);
  if (b) {
    /* Past the table size the oldest entry's memory stays referenced by callers
     * that may still hold it, so it is kept alive (retired) rather than freed. */
    if (nbanks == MAX_BANKS) {
      retire(banks[0]);
      memmove(banks, banks + 1, sizeof(banks[0]) * (MAX_BANKS - 1));
      nbanks--;
    }
    banks[nbanks++] = b;
  }
  pthread_mutex_unlock(&bank_lock);
  return b;
}

void ser_melbank_apply(const ser_melbank *mb, const float *p, float *mel) {
  for (int m = 0; m < mb->n_mels; m++) {
    mel[m] = ser_k_dot(mb->w[m], p + mb->lo[m], mb->len[m]);
  }
}
