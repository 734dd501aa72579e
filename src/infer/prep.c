/* The clip preparation of the graph description (docs/graph.md, `input`). */
#include "infer/prep.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "audio/io.h"
#include "audio/resample.h"
#include "audio/whisper_mel.h"
#include "core/alloc.h"
#include "core/error.h"

static int bad(const char *field, const char *expected) {
  return ser_error(SER_EFORMAT, "the graph's input.%s must be %s", field, expected);
}

static int number(const cJSON *o, const char *key, double lo, double hi, int required, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v && !required) return 0;
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
    return ser_error(SER_EFORMAT, "the graph's input field '%s' must be a number in [%g, %g]", key, lo, hi);
  *out = v->valuedouble;
  return 0;
}

static int whole(const cJSON *o, const char *key, int lo, int hi, int required, int *out) {
  double d = *out;
  int rc = number(o, key, lo, hi, required, &d);
  if (rc < 0) return rc;
  if (d != floor(d)) return ser_error(SER_EFORMAT, "the graph's input field '%s' must be a whole number, got %g", key, d);
  *out = (int)d;
  return 0;
}

static int boolean(const cJSON *o, const char *key, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) return 0;
  if (!cJSON_IsBool(v)) return ser_error(SER_EFORMAT, "the graph's input field '%s' must be true or false", key);
  *out = cJSON_IsTrue(v);
  return 0;
}

/* A choice of two strings -> 0 / 1. */
static int choice(const cJSON *o, const char *key, const char *a, const char *b, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) return 0;
  if (!cJSON_IsString(v) || (strcmp(v->valuestring, a) && strcmp(v->valuestring, b)))
    return ser_error(SER_EFORMAT, "the graph's input field '%s' must be \"%s\" or \"%s\"", key, a, b);
  *out = strcmp(v->valuestring, a) != 0;
  return 0;
}

/* input.normalize: absent or "clip", "speaker", "speaker_bins". */
static int normalize_mode(const cJSON *in, ser_prep_norm *out) {
  static const char *const names[] = {"clip", "speaker", "speaker_bins"};
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "normalize");
  *out = SER_PREP_NORM_CLIP;
  if (!v) return 0;
  for (int i = 0; i < 3; i++)
    if (cJSON_IsString(v) && !strcmp(v->valuestring, names[i])) {
      *out = (ser_prep_norm)i;
      return 0;
    }
  return ser_error(SER_EFORMAT, "the graph's input field 'normalize' must be \"clip\", \"speaker\" or \"speaker_bins\"");
}

/* Refuses options outside keys (NULL-terminated). */
static int known_keys(const cJSON *f, const char *const *keys) {
  const cJSON *e;
  cJSON_ArrayForEach(e, f) {
    int k = 0;
    while (keys[k] && strcmp(keys[k], e->string)) k++;
    if (!keys[k]) return ser_error(SER_EFORMAT, "the graph's input.features has an unknown option '%.64s'", e->string);
  }
  return 0;
}

/* The feature options by the keys ser.features takes (src/lua/features.c), over
 * ser_feat_opts_for(kind): the defaults the Lua side started from. */
static int feature_opts(ser_feat_opts *o, const cJSON *f, ser_feat_kind kind) {
  static const char *const keys[] = {"kind", "sr", "n_fft", "win_length", "hop", "n_mels", "fmin", "fmax", "mel_scale",
                                     "norm", "power", "top_db", "floor", "normalize", "n_mfcc", "log_mels", NULL};
  int rc = known_keys(f, keys);
  if (rc < 0) return rc;
  *o = ser_feat_opts_for(kind);
  int win = -1, slaney = 0, snorm = 0;
  if ((rc = whole(f, "sr", 1000, 768000, 0, &o->sr)) < 0 || (rc = whole(f, "n_fft", 2, 1 << 16, 0, &o->n_fft)) < 0 ||
      (rc = whole(f, "hop", 1, 1 << 16, 0, &o->hop)) < 0 || (rc = whole(f, "n_mels", 1, 4096, 0, &o->n_mels)) < 0 ||
      (rc = whole(f, "n_mfcc", 1, 4096, 0, &o->n_mfcc)) < 0 || (rc = whole(f, "win_length", 1, 1 << 16, 0, &win)) < 0)
    return rc;
  if (win != -1 && win != o->n_fft) return bad("features.win_length", "equal to n_fft");
  double fmax = o->sr / 2.0 < o->fmax ? o->sr / 2.0 : o->fmax;
  if ((rc = number(f, "fmin", 0, 1e6, 0, &o->fmin)) < 0 || (rc = number(f, "fmax", 0, 1e6, 0, &fmax)) < 0 ||
      (rc = number(f, "power", 0.01, 10, 0, &o->power)) < 0)
    return rc;
  o->fmax = fmax;
  if ((rc = choice(f, "mel_scale", "htk", "slaney", &slaney)) < 0 || (rc = choice(f, "norm", "none", "slaney", &snorm)) < 0)
    return rc;
  o->htk = !slaney;
  o->slaney_norm = snorm;
  /* top_db and floor: a number, or false for none */
  static const char *const db[] = {"top_db", "floor"};
  double *dst[] = {&o->top_db, &o->floor_db};
  for (int i = 0; i < 2; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, db[i]);
    if (!v) continue;
    if (cJSON_IsFalse(v)) *dst[i] = NAN;
    else if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) *dst[i] = v->valuedouble;
    else return ser_error(SER_EFORMAT, "the graph's input.features.%s must be a number or false", db[i]);
  }
  if ((rc = boolean(f, "normalize", &o->normalize)) < 0 || (rc = boolean(f, "log_mels", &o->log_mels)) < 0) return rc;
  return ser_feat_check(o, 1 << 30, "the graph's input.features");
}

int ser_prep_parse(ser_prep *p, const char *graph_json) {
  memset(p, 0, sizeof *p);
  cJSON *root = cJSON_Parse(graph_json);
  if (!root) return ser_error(SER_EFORMAT, "the graph is not valid JSON");
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(in, "features"), *kind = cJSON_GetObjectItemCaseSensitive(f, "kind");
  const cJSON *trim = cJSON_GetObjectItemCaseSensitive(in, "trim");
  int rc = 0;
  p->sr = 16000;
  if (!cJSON_IsObject(in)) rc = bad("", "an object (the graph has no 'input')");
  else if (!cJSON_IsObject(f) || !cJSON_IsString(kind)) rc = bad("features", "an object with a 'kind'");
  if (!rc) rc = whole(in, "sr", 1000, 768000, 1, &p->sr);
  if (!rc) rc = number(in, "seconds", 1e-3, 3600, 1, &p->seconds);
  if (!rc) rc = number(in, "read_seconds", 0, 3600, 0, &p->read_seconds);
  if (!rc) rc = choice(in, "window", "fixed", "at_most", &p->at_most);
  int speaker_norm = 0;   /* the description says it twice: input.speaker_norm and input.normalize */
  if (!rc) rc = boolean(in, "speaker_norm", &speaker_norm);
  if (!rc) rc = normalize_mode(in, &p->normalize);
  if (!rc && speaker_norm != (p->normalize != SER_PREP_NORM_CLIP))
    rc = bad("speaker_norm", "true exactly when input.normalize is \"speaker\" or \"speaker_bins\"");
  if (!rc && !p->at_most && p->read_seconds < p->seconds) rc = bad("read_seconds", "at least input.seconds");
  if (!rc && trim && !cJSON_IsNull(trim)) {
    p->has_trim = 1;
    p->trim = ser_trim_opts_default();
    if (!cJSON_IsObject(trim)) rc = bad("trim", "{top_db =, frame_length =, hop_length =}");
    if (!rc) rc = number(trim, "top_db", 1e-6, 1e4, 1, &p->trim.top_db);
    if (!rc) rc = whole(trim, "frame_length", 1, 1 << 20, 1, &p->trim.frame_length);
    if (!rc) rc = whole(trim, "hop_length", 1, 1 << 20, 1, &p->trim.hop_length);
  }
  if (!rc) {
    const char *k = kind->valuestring;
    if (!strcmp(k, "logmel") || !strcmp(k, "mfcc")) {
      p->kind = !strcmp(k, "logmel") ? SER_PREP_LOGMEL : SER_PREP_MFCC;
      rc = feature_opts(&p->feat, f, p->kind == SER_PREP_LOGMEL ? SER_FEAT_LOGMEL : SER_FEAT_MFCC);
      if (p->normalize != SER_PREP_NORM_CLIP) p->feat.normalize = 0;   /* the speaker's statistics replace the per-clip z-norm */
    } else if (!strcmp(k, "waveform")) {
      static const char *const keys[] = {"kind", "normalize", NULL};
      p->kind = SER_PREP_WAVEFORM;
      if (!(rc = known_keys(f, keys))) rc = boolean(f, "normalize", &p->znorm);
      if (!rc && p->normalize != SER_PREP_NORM_CLIP) rc = bad("normalize", "\"clip\" for waveform features (speaker statistics are spectral)");
    } else if (!strcmp(k, "whisper_logmel")) {
      static const char *const keys[] = {"kind", "n_mels", NULL};
      p->kind = SER_PREP_WHISPER;
      p->n_mels = 80;
      if (!(rc = known_keys(f, keys))) rc = whole(f, "n_mels", 1, 512, 0, &p->n_mels);
      if (!rc && p->normalize == SER_PREP_NORM_SPEAKER_BINS)
        rc = bad("normalize", "\"clip\" or \"speaker\" for a Whisper model (its pooled features, not bins)");
      /* Whisper's window is 30 s; the clips (at most input.seconds) must fit the context */
      if (!rc) rc = number(in, "context", 0, 30, 0, &p->context);
      if (!rc && p->context > 0 && p->context < p->seconds) rc = bad("context", "0 or at least input.seconds");
    } else {
      rc = ser_error(SER_EUNSUPPORTED, "the graph's input.features.kind '%.64s' is unknown (expected logmel, mfcc, "
                     "waveform or whisper_logmel)", k);
    }
  }
  cJSON_Delete(root);
  return rc;
}

/* pcm at rate -> sr, the first `want` input samples, cut or zero-padded to final_n samples
 * (ser_audio_load's window and resampling). */
static int resample_window(ser_tensor **out, const float *pcm, int64_t want, int rate, int sr, int64_t final_n) {
  ser_tensor *t = ser_tensor_empty(1, SER_DIMS(final_n));
  if (!t) return ser_error(SER_ENOMEM, "resampling: out of memory for %lld samples", (long long)final_n);
  float *dst = ser_tensor_data(t);
  int64_t n = rate != sr ? ser_resample_length(want, rate, sr, SER_RESAMPLE_SOXR) : want;
  int64_t keep = n < final_n ? n : final_n;
  int rc = 0;
  if (rate != sr) rc = ser_resample_soxr_n(dst, keep, pcm, want, rate, sr);
  else memcpy(dst, pcm, (size_t)keep * sizeof(float));
  memset(dst + keep, 0, (size_t)(final_n - keep) * sizeof(float));
  int64_t nbad;
  if (!rc && ser_audio_find_nonfinite(dst, final_n, &nbad) >= 0)
    rc = ser_error(SER_EINVAL, "resampling %d Hz -> %d Hz produced %lld non-finite samples", rate, sr, (long long)nbad);
  if (rc) {
    ser_tensor_release(t);
    return rc;
  }
  *out = t;
  return 0;
}

/* The window: "fixed" -> round(seconds * sr) samples; "at_most" -> at most that many. */
static int window(ser_tensor **out, const ser_prep *p, ser_tensor *wav) {
  int64_t samples = llround(p->seconds * p->sr), len = wav->shape[0];
  if (!p->has_trim) {
    if (len > samples) return ser_tensor_narrow_raw(out, wav, 0, 0, samples);
    *out = ser_tensor_retain(wav);
    return 0;
  }
  int64_t s, e;
  int rc = ser_audio_trim_bounds(&s, &e, ser_tensor_data(wav), 1, len, &p->trim);
  if (rc) return rc;
  int64_t kept = e - s, keep = kept < samples ? kept : samples;
  if (p->at_most) return ser_tensor_narrow_raw(out, wav, 0, s + (kept - keep) / 2, keep);
  /* ser.data.trim_window: the kept part centred, zero-padded on both sides or its middle */
  ser_tensor *t = ser_tensor_zeros(1, SER_DIMS(samples));
  if (!t) return ser_error(SER_ENOMEM, "trim: out of memory");
  memcpy(ser_tensor_data(t) + (samples - keep) / 2, ser_tensor_data(wav) + s + (kept - keep) / 2,
         (size_t)keep * sizeof(float));
  *out = t;
  return 0;
}

/* The Whisper log-mel [1, n_mels, frames] of row [1, len]; with a context, of the row zero-padded
 * to the context's samples (*own: the row's own frames, len // 160). */
static int whisper_input(ser_tensor **out, int64_t *own, const ser_prep *p, ser_tensor *row, int64_t len, int trimmed) {
  if (len < 2 * 160)
    return ser_error(SER_EINVAL, "predict: %lld samples after resampling%s; the Whisper encoder needs at least 320 "
                     "(20 ms)", (long long)len, trimmed ? " and trimming" : "");
  if (p->context <= 0) return ser_whisper_logmel_tensor(out, row, p->n_mels);
  int64_t window = llround(p->context * p->sr);
  if (len > window)   /* the parser keeps seconds <= context; a clip is at most seconds long */
    return ser_error(SER_EINVAL, "predict: %lld samples do not fit the %g s context", (long long)len, p->context);
  ser_tensor *padded = ser_tensor_zeros(2, SER_DIMS(1, window));
  if (!padded) return ser_error(SER_ENOMEM, "predict: out of memory");
  memcpy(ser_tensor_data(padded), ser_tensor_data(row), (size_t)len * sizeof(float));
  int rc = ser_whisper_logmel_tensor(out, padded, p->n_mels);
  ser_tensor_release(padded);
  *own = len / 160;
  return rc;
}

int ser_prep_run(ser_tensor **out, int64_t *own_frames, const ser_prep *p, const float *pcm, int64_t n, int rate) {
  *out = NULL;
  *own_frames = 0;
  if (!pcm || n <= 0) return ser_error(SER_EINVAL, "predict: the clip is empty (%lld samples); expected mono PCM", (long long)n);
  if (n > SER_PREP_MAX_SAMPLES)
    return ser_error(SER_EINVAL, "predict: %lld samples is more than the %lld a clip may have", (long long)n,
                     SER_PREP_MAX_SAMPLES);
  if (rate < SER_PREP_MIN_RATE || rate > SER_PREP_MAX_RATE)
    return ser_error(SER_EINVAL, "predict: sample rate %d Hz is out of range; expected %d to %d Hz", rate,
                     SER_PREP_MIN_RATE, SER_PREP_MAX_RATE);
  int64_t nbad, bad_at = ser_audio_find_nonfinite(pcm, n, &nbad);
  if (bad_at >= 0)
    return ser_error(SER_EINVAL, "predict: the clip has %lld non-finite samples (NaN/Inf), the first at %lld",
                     (long long)nbad, (long long)bad_at);
  ser_tensor *wav = NULL, *clip = NULL, *x = NULL;
  int rc;
  if (p->at_most) {
    int64_t len = rate != p->sr ? ser_resample_length(n, rate, p->sr, SER_RESAMPLE_SOXR) : n;
    rc = resample_window(&wav, pcm, n, rate, p->sr, len);
  } else {
    int64_t want = llround(p->read_seconds * rate), final_n = llround(p->read_seconds * p->sr);
    rc = resample_window(&wav, pcm, want < n ? want : n, rate, p->sr, final_n < 1 ? 1 : final_n);
  }
  if (!rc) rc = window(&clip, p, wav);
  if (!rc) {
    int64_t len = clip->shape[0];
    ser_tensor *c = ser_tensor_contiguous_raw(clip), *row = NULL;
    if (!c) rc = ser_error(SER_ENOMEM, "predict: out of memory");
    if (!rc) rc = ser_tensor_view_raw(&row, c, 2, SER_DIMS(1, len));
    if (!rc) switch (p->kind) {
        case SER_PREP_LOGMEL:
        case SER_PREP_MFCC:
          rc = ser_features_tensor(&x, row, p->kind == SER_PREP_LOGMEL ? SER_FEAT_LOGMEL : SER_FEAT_MFCC, &p->feat);
          break;
        case SER_PREP_WAVEFORM:
          x = ser_tensor_clone_raw(row);
          if (!x) rc = ser_error(SER_ENOMEM, "predict: out of memory");
          else {
            if (p->znorm) ser_feat_normalize_rows(ser_tensor_data(x), 1, len);
            ser_tensor *v = NULL;
            rc = ser_tensor_view_raw(&v, x, 3, SER_DIMS(1, 1, len));
            ser_tensor_release(x);
            x = v;
          }
          break;
        case SER_PREP_WHISPER: rc = whisper_input(&x, own_frames, p, row, len, p->has_trim); break;
      }
    ser_tensor_release(row);
    ser_tensor_release(c);
  }
  ser_tensor_release(clip);
  ser_tensor_release(wav);
  if (rc) {
    ser_tensor_release(x);
    return rc;
  }
  *out = x;
  return 0;
}
