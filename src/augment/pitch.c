/* Pitch shift (phase vocoder + resampling) and speed perturbation. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audio/fft.h"
#include "audio/resample.h"
#include "augment/augment.h"
#include "core/alloc.h"
#include "core/error.h"

#define PV_NFFT 2048
#define PV_HOP 512

/* Scratch of a pitch shift. Each thread keeps its own between calls (grown
 * as needed, never shrunk; about 3 MB for a 4 s clip): fresh buffers per clip
 * cost more in page faults than the transform itself. */
typedef struct {
  float *frame, *spec;       /* FFT buffers (fftw-aligned) */
  float *mag, *ph;           /* [frames][nb] magnitude, [frames][nb][2] unit phasor */
  float *acc;                /* [nb][2] accumulated phasor */
  float *ola, *wss;          /* overlap-add output and window-square sum */
  float *stretched, *resampled;
  size_t cap_mag, cap_ph, cap_ola, cap_wss, cap_len, cap_res;
  float win[PV_NFFT];
  int ready;
} pv_ws;

static _Thread_local pv_ws tls_ws;

/* The workspace lives as long as its thread: a key destructor frees it when a
 * worker thread (the loader's prefetch thread, one per loader) exits, which
 * would otherwise leak ~3 MB per thread (found by check-asan). */
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void ws_release(void *p) {
  pv_ws *w = p;
  ser_fft_free(w->frame);
  ser_fft_free(w->spec);
  free(w->acc);
  free(w->mag);
  free(w->ph);
  free(w->ola);
  free(w->wss);
  free(w->stretched);
  free(w->resampled);
  memset(w, 0, sizeof *w);
}

static void ws_key_init(void) { pthread_key_create(&ws_key, ws_release); }

static pv_ws *thread_ws(void) {
  pthread_once(&ws_once, ws_key_init);
  if (!pthread_getspecific(ws_key)) pthread_setspecific(ws_key, &tls_ws);
  return &tls_ws;
}

/* Makes sure *p holds n floats (contents not kept). */
static int grow(float **p, size_t *cap, size_t n) {
  if (*cap >= n) return 0;
  float *q = realloc(*p, sizeof(float) * n);
  if (!q) return -1;
  *p = q;
  *cap = n;
  return 0;
}

/* librosa.effects.time_stretch(x, rate) with n_fft 2048, hop 512, periodic
 * Hann, centred STFT with zero padding (librosa 0.10's pad_mode "constant"),
 * phase vocoder, and istft to round(n / rate) samples. */
static int time_stretch(pv_ws *w, const float *x, int64_t n, double rate, int64_t *n_out) {
  const int N = PV_NFFT, H = PV_HOP, nb = N / 2 + 1, pad = N / 2;
  const ser_fft_plan *fw = ser_fft_r2c(N), *bw = ser_fft_c2r(N);
  if (!fw || !bw) return SER_ENOMEM;
  int64_t frames = 1 + n / H;
  int64_t out_frames = (int64_t)ceil((double)frames / rate);
  int64_t len = (int64_t)llround((double)n / rate);
  /* istft of out_frames frames covers (out_frames - 1) * H + N samples before trimming. */
  int64_t ola_len = (out_frames - 1) * H + N;
  if (!w->ready) {
    w->frame = ser_fft_alloc(N);
    w->spec = ser_fft_alloc(2 * (size_t)nb);
    w->acc = malloc(sizeof(float) * (size_t)nb * 2);
    if (!w->frame || !w->spec || !w->acc) return ser_error(SER_ENOMEM, "pitch_shift: out of memory");
    for (int i = 0; i < N; i++) w->win[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / N));
    w->ready = 1;
  }
  size_t nfr = (size_t)(frames + 2);
  if (grow(&w->mag, &w->cap_mag, nfr * nb) < 0 || grow(&w->ph, &w->cap_ph, nfr * nb * 2) < 0 ||
      grow(&w->ola, &w->cap_ola, (size_t)ola_len) < 0 || grow(&w->wss, &w->cap_wss, (size_t)ola_len) < 0 ||
      grow(&w->stretched, &w->cap_len, (size_t)(len > 0 ? len : 1)) < 0)
    return ser_error(SER_ENOMEM, "pitch_shift: out of memory for %lld samples", (long long)n);
  memset(w->ola, 0, sizeof(float) * (size_t)ola_len);
  memset(w->wss, 0, sizeof(float) * (size_t)ola_len);

  /* Analysis: magnitude and unit phasor of every frame; two zero frames at
   * the end as librosa pads them, so interpolation past the last is defined. */
  for (int64_t f = 0; f < frames + 2; f++) {
    float *mg = w->mag + f * nb, *ph = w->ph + f * nb * 2;
    if (f >= frames) {
      for (int k = 0; k < nb; k++) mg[k] = 0.0f, ph[2 * k] = 1.0f, ph[2 * k + 1] = 0.0f;
      continue;
    }
    int64_t s = f * H - pad;
    if (s >= 0 && s + N <= n) {
#pragma omp simd
      for (int i = 0; i < N; i++) w->frame[i] = x[s + i] * w->win[i];
    } else {
      for (int i = 0; i < N; i++) {
        int64_t j = s + i;
        w->frame[i] = (j >= 0 && j < n) ? x[j] * w->win[i] : 0.0f;
      }
    }
    ser_fft_exec_r2c(fw, w->frame, w->spec);
    const float *sp = w->spec;
#pragma omp simd
    for (int k = 0; k < nb; k++) {
      float re = sp[2 * k], im = sp[2 * k + 1], m = sqrtf(re * re + im * im);
      /* angle(0) is 0 in numpy: the unit phasor of a zero bin is 1. */
      float inv = m > 0.0f ? 1.0f / m : 0.0f;
      mg[k] = m;
      ph[2 * k] = m > 0.0f ? re * inv : 1.0f;
      ph[2 * k + 1] = im * inv;
    }
  }
  /* phase_acc starts at angle(D[:, 0]). */
  memcpy(w->acc, w->ph, sizeof(float) * 2 * nb);
  for (int64_t t = 0; t < out_frames; t++) {
    double step = (double)t * rate;
    int64_t i0 = (int64_t)step;
    float alpha = (float)(step - (double)i0);
    const float *m0 = w->mag + i0 * nb, *m1 = w->mag + (i0 + 1) * nb;
    const float *p0 = w->ph + i0 * nb * 2, *p1 = w->ph + (i0 + 1) * nb * 2;
    float *a = w->acc, *sp = w->spec;
#pragma omp simd
    for (int k = 0; k < nb; k++) {
      float mag = (1.0f - alpha) * m0[k] + alpha * m1[k];
      sp[2 * k] = mag * a[2 * k];
      sp[2 * k + 1] = mag * a[2 * k + 1];
      /* acc *= p1 * conj(p0): adds angle(col1) - angle(col0), which is what
       * librosa's phi_advance + wrapped dphase sums to modulo 2 pi. */
      float dr = p1[2 * k] * p0[2 * k] + p1[2 * k + 1] * p0[2 * k + 1];
      float di = p1[2 * k + 1] * p0[2 * k] - p1[2 * k] * p0[2 * k + 1];
      float ar = a[2 * k] * dr - a[2 * k + 1] * di, ai = a[2 * k] * di + a[2 * k + 1] * dr;
      /* One Newton step back to |acc| = 1 against rounding drift. */
      float g = 1.5f - 0.5f * (ar * ar + ai * ai);
      a[2 * k] = ar * g;
      a[2 * k + 1] = ai * g;
    }
    /* irfft ignores the imaginary parts of the DC and Nyquist bins. */
    sp[1] = 0.0f;
    sp[2 * (nb - 1) + 1] = 0.0f;
    ser_fft_exec_c2r(bw, sp, w->frame);
    float *o = w->ola + t * H, *ws = w->wss + t * H;
    const float scale = 1.0f / (float)N;
#pragma omp simd
    for (int i = 0; i < N; i++) {
      o[i] += w->frame[i] * scale * w->win[i];
      ws[i] += w->win[i] * w->win[i];
    }
  }
  /* Normalise by the window-square sum where it is not tiny, drop the centre padding. */
  for (int64_t i = 0; i < len; i++) {
    int64_t j = i + pad;
    float v = j < ola_len ? w->ola[j] : 0.0f, s = j < ola_len ? w->wss[j] : 0.0f;
    w->stretched[i] = s > 1.1754944e-38f ? v / s : v;
  }
  *n_out = len;
  return 0;
}

int ser_pitch_shift(float *out, const float *x, int64_t n, int sr, double semitones) {
  if (sr < 1) return ser_error(SER_EINVAL, "pitch_shift: sample rate must be positive, got %d", sr);
  if (!isfinite(semitones) || fabs(semitones) > 24.0)
    return ser_error(SER_EINVAL, "pitch_shift: semitones must be within +-24, got %g", semitones);
  if (n < 1) return ser_error(SER_EINVAL, "pitch_shift: empty signal");
  if (semitones == 0.0) {
    if (out != x) memmove(out, x, (size_t)n * sizeof *out);
    return 0;
  }
  double rate = pow(2.0, -semitones / 12.0);
  pv_ws *w = thread_ws();
  int64_t len = 0;
  int rc = time_stretch(w, x, n, rate, &len);
  if (rc < 0) return rc;
  double from = (double)sr / rate;
  int64_t rl = (int64_t)ceil((double)len * sr / from);
  if (grow(&w->resampled, &w->cap_res, (size_t)(rl > 0 ? rl : 1)) < 0)
    return ser_error(SER_ENOMEM, "pitch_shift: out of memory");
  if ((rc = ser_resample_soxr(w->resampled, w->stretched, len, from, sr)) < 0) return rc;
  int64_t keep = rl < n ? rl : n;
  memcpy(out, w->resampled, (size_t)keep * sizeof *out);
  memset(out + keep, 0, (size_t)(n - keep) * sizeof *out);
  return 0;
}

int ser_aug_pitch(float *x, int64_t n, int sr, float max_semitones, float p, ser_rng *rng, float *semitones) {
  if (!rng) rng = ser_rng_global();
  if (semitones) *semitones = 0.0f;
  if (p < 1.0f && ser_rng_uniform(rng) >= p) return 0;
  float s = max_semitones * (2.0f * ser_rng_uniform(rng) - 1.0f);
  if (semitones) *semitones = s;
  int rc = ser_pitch_shift(x, x, n, sr, s);
  return rc < 0 ? rc : 1;
}

int ser_speed(float **out, int64_t *n_out, const float *x, int64_t n, int sr, double factor, int keep_length) {
  if (!(factor > 0.1 && factor < 10.0))
    return ser_error(SER_EINVAL, "speed: factor must be in (0.1, 10), got %g", factor);
  if (sr < 1) return ser_error(SER_EINVAL, "speed: sample rate must be positive, got %d", sr);
  int64_t rl = (int64_t)ceil((double)n / factor);
  int64_t want = keep_length ? n : (int64_t)llround((double)n / factor);
  size_t bytes = (size_t)((rl > want ? rl : want) > 0 ? (rl > want ? rl : want) : 1) * sizeof(float);
  float *buf = ser_alloc(bytes);
  if (!buf) return SER_ENOMEM;
  int rc = ser_resample_soxr(buf, x, n, (double)sr * factor, (double)sr);
  if (rc < 0) {
    ser_free(buf, bytes);
    return rc;
  }
  for (int64_t i = rl; i < want; i++) buf[i] = 0.0f;
  float *o = ser_alloc((size_t)(want > 0 ? want : 1) * sizeof(float));
  if (!o) {
    ser_free(buf, bytes);
    return SER_ENOMEM;
  }
  memcpy(o, buf, (size_t)want * sizeof(float));
  ser_free(buf, bytes);
  *out = o;
  *n_out = want;
  return 0;
}

int ser_aug_speed(float *x, int64_t n, int sr, const float *factors, int nf, float p, ser_rng *rng, float *factor) {
  if (!rng) rng = ser_rng_global();
  if (factor) *factor = 1.0f;
  if (nf < 1) return ser_error(SER_EINVAL, "speed: no factors to choose from");
  if (p < 1.0f && ser_rng_uniform(rng) >= p) return 0;
  float f = factors[ser_rng_below(rng, (uint32_t)nf)];
  if (factor) *factor = f;
  if (f == 1.0f) return 1;
  float *o;
  int64_t no;
  int rc = ser_speed(&o, &no, x, n, sr, f, 1);
  if (rc < 0) return rc;
  memcpy(x, o, (size_t)n * sizeof *x);
  ser_free(o, (size_t)(no > 0 ? no : 1) * sizeof(float));
  return 1;
}
