#include "data/synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

static const char *emotion_names[SER_SYNTH_EMOTIONS] = { "neutral", "calm", "happy", "sad",
                                                          "angry", "fearful", "disgust", "surprised" };

const char *ser_synth_emotion_name(int e) {
  return e >= 0 && e < SER_SYNTH_EMOTIONS ? emotion_names[e] : NULL;
}

/* How each emotion sounds. Contours are in units of `range` semitones over the utterance:
 * decl = slope across it, accent = bump on stressed syllables, final = extra move on the last
 * syllable. tilt is the pole of the source low-pass (higher = steeper tilt = softer voice). */
typedef struct {
  float f0x, range, tempo, energy_db, jitter, shimmer, tilt, breath;
  float decl, accent, final, tremor_st, tremor_hz, creak, open_q;
} emotion_style;

static const emotion_style styles[SER_SYNTH_EMOTIONS] = {
  /*            f0x  range tempo  dB   jitter shimmer tilt breath decl accent final trem Hz  creak OQ */
  /* neutral */ {1.00f, 2.0f, 4.0f, 0.f, .005f, .03f, .30f, .03f, -1.0f, .5f, 0.0f, 0.f, 0.f, 0.f, .60f},
  /* calm    */ {0.95f, 1.5f, 3.3f, -4.f, .004f, .02f, .45f, .06f, -0.8f, .3f, 0.0f, 0.f, 0.f, 0.f, .65f},
  /* happy   */ {1.25f, 6.0f, 4.6f, 3.f, .010f, .05f, .20f, .03f, -0.3f, .9f, 0.2f, 0.f, 0.f, 0.f, .55f},
  /* sad     */ {0.90f, 1.0f, 2.8f, -6.f, .015f, .06f, .60f, .10f, -1.2f, .2f, 0.0f, .3f, 3.f, 0.f, .70f},
  /* angry   */ {1.30f, 5.0f, 5.0f, 6.f, .012f, .08f, .05f, .02f, -1.0f, 1.f, -0.3f, 0.f, 0.f, 0.f, .42f},
  /* fearful */ {1.45f, 3.0f, 5.5f, -1.f, .030f, .08f, .28f, .08f, 0.4f, .4f, 0.3f, .8f, 7.f, 0.f, .60f},
  /* disgust */ {0.85f, 3.0f, 3.0f, 0.f, .020f, .06f, .30f, .05f, -1.2f, .6f, -0.2f, 0.f, 0.f, .35f, .60f},
  /* surpr.  */ {1.40f, 8.0f, 4.2f, 2.f, .008f, .04f, .20f, .04f, 0.0f, .6f, 1.0f, 0.f, 0.f, 0.f, .55f},
};

/* Vowel formants F1..F3 (Hz, adult male, Peterson & Barney style): a e i o u. */
static const float vowels[5][3] = {
  { 730, 1090, 2440 }, { 530, 1840, 2480 }, { 270, 2290, 3010 }, { 570, 840, 2410 }, { 300, 870, 2240 },
};

#define MAX_SYL 16

typedef struct {
  float f0_base, formant_scale, rate, loud_db, breath, tilt_offset;
} voice;

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

static float urange(ser_rng *r, float lo, float hi) { return lo + (hi - lo) * ser_rng_uniform(r); }

/* Approximately N(0, 1) noise from four 16-bit uniforms (Irwin-Hall): two generator draws
 * and no log/sin/cos, for the per-sample noises where the exact tails do not matter. */
static inline float fast_noise(ser_rng *r) {
  uint32_t a = ser_rng_u32(r), b = ser_rng_u32(r);
  float sum = (float)(a & 0xffff) + (float)(a >> 16) + (float)(b & 0xffff) + (float)(b >> 16);
  return (sum - 131070.0f) * (1.0f / 37837.2f);
}

static voice speaker_voice(int speaker, uint64_t seed) {
  ser_rng r;
  ser_rng_seed(&r, mix(mix(seed, 0x5EA4E7ull), (uint64_t)speaker));
  voice v;
  int low = speaker % 2 == 1;
  v.f0_base = low ? urange(&r, 95, 135) : urange(&r, 175, 235);
  v.formant_scale = low ? urange(&r, 0.88f, 1.0f) : urange(&r, 1.05f, 1.2f);
  v.rate = urange(&r, 0.85f, 1.15f);
  v.loud_db = urange(&r, -3, 3);
  v.breath = urange(&r, 0.01f, 0.05f);
  v.tilt_offset = urange(&r, -0.06f, 0.06f);
  return v;
}

/* Two-pole resonator with unity gain at DC. */
typedef struct {
  float a1, a2, b0, y1, y2;
} reson;

static void reson_set(reson *f, float freq, float bw, int sr) {
  float nyq = 0.45f * (float)sr;
  if (freq > nyq) freq = nyq;
  float r = expf(-(float)M_PI * bw / (float)sr);
  f->a1 = 2 * r * cosf(2 * (float)M_PI * freq / (float)sr);
  f->a2 = -r * r;
  f->b0 = 1 - f->a1 - f->a2;
}

static inline float reson_run(reson *f, float x) {
  float y = f->b0 * x + f->a1 * f->y1 + f->a2 * f->y2;
  f->y2 = f->y1;
  f->y1 = y;
  return y;
}

/* Rosenberg glottal flow at phase p in [0,1): rise over tp, fall over tn, closed after. */
static inline float glottal_flow(float p, float open_q) {
  float tp = 0.66f * open_q, tn = 0.34f * open_q;
  if (p < tp) return 0.5f * (1 - cosf((float)M_PI * p / tp));
  if (p < tp + tn) return cosf(0.5f * (float)M_PI * (p - tp) / tn);
  return 0;
}

/* Raised-cosine ramp 0..1 over [0, w]. */
static inline float ramp(float t, float w) {
  if (t <= 0) return 0;
  if (t >= w) return 1;
  return 0.5f * (1 - cosf((float)M_PI * t / w));
}

static int check_clip(int64_t n, int sr, const ser_synth_clip *c) {
  if (sr < 4000 || sr > 192000) return ser_error(SER_EINVAL, "synthetic: sample rate %d Hz is out of range (4000..192000)", sr);
  if (n < 1) return ser_error(SER_EINVAL, "synthetic: clip length %lld samples must be positive", (long long)n);
  if (c->emotion < 0 || c->emotion >= SER_SYNTH_EMOTIONS)
    return ser_error(SER_EINVAL, "synthetic: emotion index %d is out of range (0..%d)", c->emotion, SER_SYNTH_EMOTIONS - 1);
  if (c->speaker < 1 || c->statement < 1 || c->repetition < 1 || c->intensity < 0 || c->intensity > 1)
    return ser_error(SER_EINVAL, "synthetic: speaker %d, statement %d, repetition %d must be >= 1 and intensity %d 0 or 1",
                     c->speaker, c->statement, c->repetition, c->intensity);

  return 0;
}

int ser_synth_render(float *out, int64_t n, int sr, const ser_synth_clip *c, uint64_t seed) {
  int rc = check_clip(n, sr, c);
  if (rc < 0) return rc;

  voice v = speaker_voice(c->speaker, seed);
  emotion_style e = styles[c->emotion];
  if (c->intensity == 1) { /* strong: every cue 1.5x as far from neutral */
    const emotion_style *nu = &styles[0];
    float k = 1.5f;
    e.f0x = nu->f0x + k * (e.f0x - nu->f0x);
    e.range = nu->range + k * (e.range - nu->range);
    e.tempo = nu->tempo + k * (e.tempo - nu->tempo);
    e.energy_db = nu->energy_db + k * (e.energy_db - nu->energy_db);
    e.jitter = nu->jitter + k * (e.jitter - nu->jitter);
    e.tilt = nu->tilt + k * (e.tilt - nu->tilt);
    e.tremor_st *= k;
  }
  ser_rng r;
  ser_rng_seed(&r, mix(mix(mix(mix(mix(seed, (uint64_t)c->speaker), (uint64_t)c->emotion), (uint64_t)c->intensity),
                           (uint64_t)c->statement), (uint64_t)c->repetition));
  /* per-take variation of every cue by a few percent */
  float f0 = v.f0_base * e.f0x * urange(&r, 0.95f, 1.05f);
  float range = e.range * urange(&r, 0.85f, 1.15f);
  float tempo = e.tempo / v.rate * urange(&r, 0.93f, 1.07f);
  float tilt = fminf(0.9f, fmaxf(0.0f, e.tilt + v.tilt_offset));
  float breath = e.breath + v.breath;

  /* The statement fixes the syllable count, vowels and stressed syllables. */
  ser_rng words;
  ser_rng_seed(&words, mix(0x57A7Eull, (uint64_t)c->statement));
  int nsyl = 7 + (int)ser_rng_below(&words, 4);
  int vowel[MAX_SYL], stressed[MAX_SYL], consonant[MAX_SYL];
  for (int s = 0; s < nsyl; s++) {
    vowel[s] = (int)ser_rng_below(&words, 5);
    stressed[s] = ser_rng_uniform(&words) < 0.35f;
    consonant[s] = ser_rng_uniform(&words) < 0.7f;
  }
  float dur[MAX_SYL], total = 0;
  for (int s = 0; s < nsyl; s++) {
    dur[s] = (1.0f / tempo) * urange(&r, 0.8f, 1.2f) * (stressed[s] ? 1.2f : 1.0f);
    total += dur[s];
  }
  float clip_s = (float)n / (float)sr;
  float lead = urange(&r, 0.08f, 0.18f) * clip_s;
  float room = clip_s - lead - 0.05f * clip_s;
  if (total > room) { /* squeeze into short clips rather than cut the utterance off */
    for (int s = 0; s < nsyl; s++) dur[s] *= room / total;
    total = room;
  }
  float start[MAX_SYL + 1];
  start[0] = lead;
  for (int s = 0; s < nsyl; s++) start[s + 1] = start[s] + dur[s];

  memset(out, 0, (size_t)n * sizeof *out);
  reson formant[4], fric;
  memset(formant, 0, sizeof formant);
  memset(&fric, 0, sizeof fric);
  reson_set(&fric, 5000 * v.formant_scale, 2500, sr);
  const float bw[4] = { 80, 100, 150, 250 };
  float phase = 0, period_f0x = 1, period_amp = 1, prev_flow = 0, tilt_state = 0, fric_prev = 0, fric_hp_prev = 0;
  int period_index = 0, syl = 0;
  float tremor_phase0 = urange(&r, 0, 6.2832f), f0_block = f0;
  double sum_sq = 0, hiss_sq = 0;
  int64_t n_voiced = 0, n_hiss = 0;
  float *hiss_buf = malloc((size_t)n * sizeof *hiss_buf);
  if (!hiss_buf) return ser_error(SER_ENOMEM, "synthetic: out of memory for a %lld-sample clip", (long long)n);
  const int update = 32; /* formant coefficients change slowly: refresh every 32 samples */

  for (int64_t i = 0; i < n; i++) {
    float t = (float)i / (float)sr;
    while (syl < nsyl && t >= start[syl + 1]) syl++;
    int in_utt = t >= start[0] && syl < nsyl;
    float ts = in_utt ? t - start[syl] : 0, d = in_utt ? dur[syl] : 1;
    float cons_len = consonant[syl < nsyl ? syl : 0] ? fminf(0.06f, 0.3f * d) : 0;

    if (in_utt && i % update == 0) {
      int vcur = vowel[syl], vprev = syl > 0 ? vowel[syl - 1] : vcur;
      float g = ramp(ts - cons_len, 0.3f * d); /* glide from the previous vowel */
      for (int k = 0; k < 3; k++) {
        float f = (vowels[vprev][k] + g * (vowels[vcur][k] - vowels[vprev][k])) * v.formant_scale;
        reson_set(&formant[k], f, bw[k] * (1 + breath), sr);
      }
      reson_set(&formant[3], 3500 * v.formant_scale, bw[3], sr);
    }

    /* pitch in semitones relative to f0: declination + accents + final move + tremor; the
     * contour is smooth, so it is evaluated once per block (the phase still integrates per sample) */
    if (i % update == 0) {
      float u = in_utt ? (t - start[0]) / total : 0;
      float st = range * e.decl * u;
      if (in_utt && stressed[syl]) st += range * e.accent * sinf((float)M_PI * fminf(1, ts / d));
      if (in_utt && syl == nsyl - 1) st += range * e.final * (ts / d);
      if (e.tremor_st > 0) st += e.tremor_st * sinf(2 * (float)M_PI * e.tremor_hz * t + tremor_phase0);
      f0_block = f0 * exp2f(st / 12.0f);
    }
    float f0_now = f0_block * period_f0x;

    phase += f0_now / (float)sr;
    if (phase >= 1) { /* a new glottal period: draw its jitter and shimmer */
      phase -= floorf(phase);
      period_index++;
      period_f0x = 1 + e.jitter * ser_rng_normal(&r);
      period_amp = 1 + e.shimmer * ser_rng_normal(&r);
      if (e.creak > 0 && (period_index & 1)) period_amp *= 1 - e.creak;
    }
    float flow = glottal_flow(phase, e.open_q > 0 ? e.open_q : 0.6f) * period_amp;
    float src = flow - prev_flow; /* lip radiation ~ derivative of the flow */
    prev_flow = flow;

    float env = 0, voiced = 0, noise_amp = 0;
    if (in_utt) {
      float amp = stressed[syl] ? 1.41f : 1.0f;
      env = amp * ramp(ts - cons_len, 0.025f) * ramp(d - ts, 0.04f);
      voiced = env;
      if (ts < cons_len) noise_amp = 0.35f * amp * ramp(ts, 0.008f) * ramp(cons_len - ts, 0.01f);
    }
    tilt_state = (1 - tilt) * src + tilt * tilt_state;
    float excitation = voiced > 0 ? voiced * (tilt_state + breath * 0.2f * fast_noise(&r)) : 0;
    float y = excitation;
    for (int k = 0; k < 4; k++) y = reson_run(&formant[k], y);
    float hiss = 0;
    if (noise_amp > 0 || fric.y1 != 0 || fric.y2 != 0) {
      float fr = reson_run(&fric, fast_noise(&r) * noise_amp);
      float hp = fr - fric_prev; /* second difference: hiss above ~3 kHz like /s/ */
      fric_prev = fr;
      hiss = hp - fric_hp_prev;
      fric_hp_prev = hp;
    }
    out[i] = y;
    hiss_buf[i] = hiss;
    if (voiced > 0.5f) {
      sum_sq += (double)y * y;
      n_voiced++;
    }
    if (noise_amp > 0.2f) {
      hiss_sq += (double)hiss * hiss;
      n_hiss++;
    }
  }

  /* Loudness: voiced RMS at -20 dBFS for neutral, moved by the emotion and the speaker. */
  float rms = n_voiced ? (float)sqrt(sum_sq / (double)n_voiced) : 0;
  float target = 0.1f * powf(10.0f, (e.energy_db + v.loud_db + urange(&r, -1, 1)) / 20.0f);
  float gain = rms > 0 ? target / rms : 0;
  /* consonant hiss about 16 dB below the vowels, concentrated above 3 kHz like /s/ */
  float hiss_rms = n_hiss ? (float)sqrt(hiss_sq / (double)n_hiss) : 0;
  float hiss_gain = hiss_rms > 0 ? 0.15f * target / hiss_rms : 0;
  float peak = 0;
  for (int64_t i = 0; i < n; i++) {
    out[i] = out[i] * gain + hiss_buf[i] * hiss_gain + 3e-4f * fast_noise(&r); /* noise floor near -70 dBFS */
    float a = fabsf(out[i]);
    if (a > peak) peak = a;
  }
  free(hiss_buf);
  if (peak > 0.99f) {
    float k = 0.98f / peak; /* a little under the threshold so float rounding stays below it */
    for (int64_t i = 0; i < n; i++) out[i] *= k;
  }
  return 0;
}

int ser_synth_render_many(float *out, int64_t n, int sr, const ser_synth_clip *clips, int n_clips, uint64_t seed) {
  if (n_clips < 0) return ser_error(SER_EINVAL, "synthetic: clip count %d is negative", n_clips);
  for (int i = 0; i < n_clips; i++) { /* validate up front so the threaded loop cannot fail */
    int rc = check_clip(n, sr, &clips[i]);
    if (rc < 0) return ser_error_prefix(rc, "clip %d of %d", i + 1, n_clips);
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n_clips; i++) ser_synth_render(out + (int64_t)i * n, n, sr, &clips[i], seed);
  return 0;
}
