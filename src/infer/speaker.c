/* Speaker normalisation in the C inference API (infer.h): a speaker's statistics gathered from
 * the speaker's clips, as the Lua side computes them (ser.data.speaker_norm for spectral
 * features, ser.frozen_encoder's group_stats for a whisper model's pooled hidden states), and
 * predictions with them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/features.h"
#include "core/error.h"
#include "infer/model_impl.h"
#include "pretrained/whisper.h"

/* Moments per feature, shifted by the first clip's values (one pass, no cancellation):
 * s1 = sum (x - k), s2 = sum (x - k)^2 over `count` values of each feature. */
struct ser_speaker {
  const ser_model *m;
  int64_t n;     /* features: spectral bins, or the encoder's pooled values */
  int clips;
  double count;  /* values per feature so far: frames (spectral) or clips (whisper) */
  double *k, *s1, *s2;
  /* each clip's un-normalised values (clip_values), so that ser_model_predict_speaker_clip
   * need not prepare (whisper: encode) the clip again */
  ser_tensor **kept;
  int kept_cap;
};

ser_speaker *ser_speaker_new(const ser_model *m) {
  if (!m) {
    ser_error(SER_EINVAL, "ser_speaker_new: the model is NULL");
    return NULL;
  }
  if (!ser_model_speaker_norm(m)) {
    ser_error(SER_EINVAL, "ser_speaker_new: the model was trained without speaker normalisation; predict its clips "
              "with ser_model_predict");
    return NULL;
  }
  ser_speaker *s = calloc(1, sizeof *s);
  if (!s) ser_error(SER_ENOMEM, "ser_speaker_new: out of memory");
  else s->m = m;
  return s;
}

void ser_speaker_free(ser_speaker *s) {
  if (!s) return;
  for (int i = 0; i < s->clips; i++) ser_tensor_release(s->kept[i]);
  free(s->kept);
  free(s->k);
  free(s->s1);
  free(s->s2);
  free(s);
}

int ser_speaker_num_clips(const ser_speaker *s) { return s ? s->clips : 0; }

/* A clip's un-normalised values as [n features, per feature `per` values] in row order:
 * spectral features [1, 1, F, frames] (per = frames) or the pooled hidden states (per = 1). */
static int clip_values(ser_tensor **out, int64_t *n, int64_t *per, const ser_model *m, const float *pcm, int64_t len,
                       int rate) {
  ser_tensor *x = NULL, *y = NULL;
  ser_graph_run_opts o = {.until_encoder = 1};
  int rc = ser_prep_run(&x, &o.own_frames, &m->prep, pcm, len, rate);
  if (rc) return rc;
  if (m->prep.kind == SER_PREP_WHISPER) {
    rc = ser_graph_run(&y, m->g, x, &o);
    ser_tensor_release(x);
    if (rc) return rc;
    x = y;
    *n = ser_tensor_numel(x);
    *per = 1;
  } else {
    *n = x->shape[2];
    *per = x->shape[3];
  }
  *out = ser_tensor_contiguous_raw(x);
  ser_tensor_release(x);
  return *out ? 0 : ser_error(SER_ENOMEM, "ser_speaker_add: out of memory");
}

int ser_speaker_add(ser_speaker *s, const float *pcm, int64_t len, int rate) {
  if (!s) return ser_error(SER_EINVAL, "ser_speaker_add: the speaker is NULL");
  if (s->clips == s->kept_cap) {   /* room for the clip's values first, so a refusal adds nothing */
    int cap = s->kept_cap ? 2 * s->kept_cap : 16;
    ser_tensor **kept = realloc(s->kept, (size_t)cap * sizeof *kept);
    if (!kept) return ser_error(SER_ENOMEM, "ser_speaker_add: out of memory");
    s->kept = kept;
    s->kept_cap = cap;
  }
  ser_tensor *x = NULL;
  int64_t n = 0, per = 0;
  int rc = clip_values(&x, &n, &per, s->m, pcm, len, rate);
  if (rc) return ser_error_prefix(rc, "ser_speaker_add");
  if (!s->k) {
    s->k = malloc((size_t)n * sizeof *s->k);
    s->s1 = calloc((size_t)n, sizeof *s->s1);
    s->s2 = calloc((size_t)n, sizeof *s->s2);
    if (!s->k || !s->s1 || !s->s2) {
      ser_tensor_release(x);
      free(s->k), free(s->s1), free(s->s2);
      s->k = s->s1 = s->s2 = NULL;
      return ser_error(SER_ENOMEM, "ser_speaker_add: out of memory");
    }
    const float *d = ser_tensor_data(x);
    for (int64_t f = 0; f < n; f++) {
      double sum = 0;
      for (int64_t t = 0; t < per; t++) sum += d[f * per + t];
      s->k[f] = sum / (double)per;
    }
    s->n = n;
  } else if (n != s->n) {   /* the model's clips all have the same feature count; a guard, not a case */
    ser_tensor_release(x);
    return ser_error(SER_EINVAL, "ser_speaker_add: the clip gives %lld features, the speaker's earlier clips %lld",
                     (long long)n, (long long)s->n);
  }
  const float *d = ser_tensor_data(x);
  for (int64_t f = 0; f < n; f++)
    for (int64_t t = 0; t < per; t++) {
      double v = d[f * per + t] - s->k[f];
      s->s1[f] += v;
      s->s2[f] += v * v;
    }
  s->count += (double)per;
  s->kept[s->clips++] = x;
  return 0;
}

/* Feature f's mean and population variance over the speaker's values. */
static void moments(const ser_speaker *s, int64_t f, double *mean, double *var) {
  double mu = s->s1[f] / s->count, v = s->s2[f] / s->count - mu * mu;
  *mean = s->k[f] + mu;
  *var = v > 0 ? v : 0;
}

/* The speaker's shift and scale per feature (arrays of s->n the caller frees). */
static int statistics(const ser_speaker *s, float **shift_out, float **scale_out) {
  float *shift = malloc((size_t)s->n * sizeof *shift), *scale = malloc((size_t)s->n * sizeof *scale);
  if (!shift || !scale) {
    free(shift), free(scale);
    return ser_error(SER_ENOMEM, "speaker statistics: out of memory");
  }
  const int whisper = s->m->prep.kind == SER_PREP_WHISPER;
  /* "speaker" on spectral features: one mean and std over all bins; every bin has the same
   * frames, so the pooled moments are the averages of the bins' */
  const int one_pair = !whisper && s->m->prep.normalize == SER_PREP_NORM_SPEAKER;
  double all_mean = 0, all_var = 0;
  if (one_pair) {
    double sq = 0;
    for (int64_t f = 0; f < s->n; f++) {
      double mean, var;
      moments(s, f, &mean, &var);
      all_mean += mean;
      sq += var + mean * mean;
    }
    all_mean /= (double)s->n;
    all_var = sq / (double)s->n - all_mean * all_mean;
    all_var = all_var > 0 ? all_var : 0;
  }
  const double floor = whisper ? SER_POOLED_STD_FLOOR : SER_SPEAKER_STD_FLOOR;
  for (int64_t f = 0; f < s->n; f++) {
    double mean = all_mean, var = all_var;
    if (!one_pair) moments(s, f, &mean, &var);
    double sd = sqrt(var);
    shift[f] = (float)mean;
    scale[f] = (float)(1.0 / (sd > floor ? sd : floor));
  }
  *shift_out = shift;
  *scale_out = scale;
  return 0;
}

/* One clip's output with the speaker's statistics: the samples pcm[n] at rate, or (kept) the
 * speaker's clip `clip` from what ser_speaker_add kept of it. */
static int predict(const char *fn, const ser_model *m, const ser_speaker *s, const float *pcm, int64_t n, int rate,
                   int kept, int clip, float *dst, int softmax) {
  if (!m || !s || !dst)
    return ser_error(SER_EINVAL, "%s: %s is NULL", fn, !m ? "the model" : !s ? "the speaker" : "the output array");
  if (s->m != m) return ser_error(SER_EINVAL, "%s: the speaker was made for another model (ser_speaker_new)", fn);
  if (s->clips == 0)
    return ser_error(SER_EINVAL, "%s: the speaker has no clips yet; add the speaker's clips with ser_speaker_add", fn);
  if (kept && (clip < 0 || clip >= s->clips))
    return ser_error(SER_EINVAL, "%s: clip %d of a speaker with %d clips (0 to %d)", fn, clip, s->clips, s->clips - 1);
  float *shift = NULL, *scale = NULL;
  int rc = statistics(s, &shift, &scale);
  if (!rc) {
    /* the kept values are only read (ser_model_output_kept), so threads may share them */
    const ser_model_norm norm = {shift, scale, s->n};
    rc = kept ? ser_model_output_kept(m, &norm, s->kept[clip], dst, softmax)
              : ser_model_output(m, &norm, pcm, n, rate, dst, softmax);
  }
  free(shift);
  free(scale);
  return rc;
}

int ser_model_predict_speaker(const ser_model *m, const ser_speaker *s, const float *pcm, int64_t n, int rate,
                              float *probs) {
  return predict("ser_model_predict_speaker", m, s, pcm, n, rate, 0, 0, probs, 1);
}

int ser_model_logits_speaker(const ser_model *m, const ser_speaker *s, const float *pcm, int64_t n, int rate,
                             float *logits) {
  return predict("ser_model_logits_speaker", m, s, pcm, n, rate, 0, 0, logits, 0);
}

int ser_model_predict_speaker_clip(const ser_model *m, const ser_speaker *s, int clip, float *probs) {
  return predict("ser_model_predict_speaker_clip", m, s, NULL, 0, 0, 1, clip, probs, 1);
}

int ser_model_logits_speaker_clip(const ser_model *m, const ser_speaker *s, int clip, float *logits) {
  return predict("ser_model_logits_speaker_clip", m, s, NULL, 0, 0, 1, clip, logits, 0);
}
