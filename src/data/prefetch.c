#include "data/prefetch.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "augment/augment.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/batch.h"

/* Every outstanding job sits in one FIFO list: queued, running, or finished and waiting to
 * be taken. `todo` points at the first one the worker has not started. */
typedef struct job {
  int64_t *rows;
  int count;
  uint64_t seed;
  ser_tensor *result;
  int rc, done;
  char msg[512];
  struct job *next;
} job;

struct ser_prefetch {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t work, done;
  job *head, *tail, *todo;
  int stop, pending;
  ser_tensor *wav;
  int64_t N, T, F, frames;
  ser_pf_recipe r;
};

static int check_norm_tensor(const ser_tensor *t, const char *name, int64_t N, int64_t F) {
  if (t->ndim != 2 || t->shape[0] != N || t->shape[1] != F || !ser_tensor_is_contiguous(t))
    return ser_error(SER_EINVAL, "prefetch: %s must be a contiguous [%lld, %lld] tensor (rows x feature bins), got %s",
                     name, (long long)N, (long long)F, SER_SHAPE(t));
  return 0;
}

static int check_norm(const ser_pf_recipe *r, int64_t N, int64_t F) {
  if (!r->norm_mean && !r->norm_scale) return 0;
  if (!r->norm_mean || !r->norm_scale)
    return ser_error(SER_EINVAL, "prefetch: feature normalisation needs both norm_mean and norm_scale");
  int rc = check_norm_tensor(r->norm_mean, "norm_mean", N, F);
  return rc < 0 ? rc : check_norm_tensor(r->norm_scale, "norm_scale", N, F);
}

static int check_recipe(const ser_pf_recipe *r, int64_t N, int64_t T, int64_t *F, int64_t *frames) {
  if (r->sr < 1000) return ser_error(SER_EINVAL, "prefetch: sample rate %d Hz is too low", r->sr);
  if (r->n_steps < 0 || r->n_steps > SER_PF_MAX_STEPS)
    return ser_error(SER_EINVAL, "prefetch: %d augmentation steps, at most %d", r->n_steps, SER_PF_MAX_STEPS);
  for (int i = 0; i < r->n_steps; i++) {
    const ser_aug_step *s = &r->steps[i];
    if (!(s->p >= 0 && s->p <= 1)) return ser_error(SER_EINVAL, "prefetch: step %d probability %g is not in 0..1", i + 1, s->p);
    switch (s->kind) {
    case SER_AUG_GAIN:
      if (!(s->a > 0 && s->b >= s->a))
        return ser_error(SER_EINVAL, "prefetch: step %d gain range %g..%g must be positive and ordered", i + 1, s->a, s->b);
      break;
    case SER_AUG_NOISE:
      if (!(s->a >= 0)) return ser_error(SER_EINVAL, "prefetch: step %d noise std %g must be >= 0", i + 1, s->a);
      break;
    case SER_AUG_NOISE_SNR:
      if (!(s->a > -20 && s->a < 120)) return ser_error(SER_EINVAL, "prefetch: step %d SNR %g dB is out of range (-20..120)", i + 1, s->a);
      break;
    case SER_AUG_PITCH:
      if (!(s->a >= 0 && s->a <= 12)) return ser_error(SER_EINVAL, "prefetch: step %d pitch range %g semitones must be in 0..12", i + 1, s->a);
      break;
    case SER_AUG_SPEED:
      if (s->nf < 1 || s->nf > SER_AUG_MAX_FACTORS)
        return ser_error(SER_EINVAL, "prefetch: step %d has %d speed factors, expected 1..%d", i + 1, s->nf, SER_AUG_MAX_FACTORS);
      for (int k = 0; k < s->nf; k++)
        if (!(s->factors[k] >= 0.5f && s->factors[k] <= 2.0f))
          return ser_error(SER_EINVAL, "prefetch: step %d speed factor %g is out of range (0.5..2)", i + 1, s->factors[k]);
      break;
    case SER_AUG_SHIFT:
      if (!(s->a >= 0 && s->a < (float)T))
        return ser_error(SER_EINVAL, "prefetch: step %d shift of %g samples must be in 0..%lld", i + 1, s->a, (long long)T - 1);
      break;
    default:
      return ser_error(SER_EINVAL, "prefetch: step %d has an unknown kind %d", i + 1, (int)s->kind);
    }
  }
  *F = 1;
  *frames = T;
  if (r->features == 0) {
    if (r->time_masks || r->freq_masks)
      return ser_error(SER_EINVAL, "prefetch: SpecAugment masks need spectral features, not the waveform");
    if (r->norm_mean || r->norm_scale)
      return ser_error(SER_EINVAL, "prefetch: feature normalisation (norm_mean, norm_scale) needs spectral features, not the waveform");
    return 0;
  }
  if (r->features != 1 && r->features != 2)
    return ser_error(SER_EINVAL, "prefetch: features %d unknown (0 waveform, 1 logmel, 2 mfcc)", r->features);
  int rc = ser_feat_check(&r->fopts, T, r->features == 1 ? "logmel" : "mfcc");
  if (rc < 0) return rc;
  *F = r->features == 1 ? r->fopts.n_mels : r->fopts.n_mfcc;
  *frames = ser_stft_frames(T, r->fopts.hop);
  if (r->time_masks > SER_PF_MAX_MASKS || r->freq_masks > SER_PF_MAX_MASKS)
    return ser_error(SER_EINVAL, "prefetch: %d time masks and %d frequency masks; at most %d each", r->time_masks,
                     r->freq_masks, SER_PF_MAX_MASKS);
  if (r->time_masks < 0 || r->freq_masks < 0 || r->time_width < 0 || r->freq_width < 0 || r->time_width > *frames ||
      r->freq_width > *F)
    return ser_error(SER_EINVAL, "prefetch: masks (%d x %d frames, %d x %d bins) do not fit features [%lld, %lld]",
                     r->time_masks, r->time_width, r->freq_masks, r->freq_width, (long long)*F, (long long)*frames);
  if (!(r->time_p >= 0 && r->time_p <= 1 && r->freq_p >= 0 && r->freq_p <= 1))
    return ser_error(SER_EINVAL, "prefetch: mask probabilities %g (time) and %g (frequency) must be in 0..1", r->time_p,
                     r->freq_p);
  return check_norm(r, N, *F);
}

/* spec[f][t] = (spec[f][t] - mean[f]) * scale[f]: the row's normalisation, before the masks
 * so that a mask's fill value means the same on every row. */
static void normalize_rows(float *spec, int64_t F, int64_t frames, const float *mean, const float *scale) {
  for (int64_t f = 0; f < F; f++) {
    float *row = spec + f * frames;
    for (int64_t t = 0; t < frames; t++) row[t] = (row[t] - mean[f]) * scale[f];
  }
}

/* Runs one job on the worker thread; fills j->result or j->rc + j->msg. */
static void run_job(ser_prefetch *pf, job *j) {
  const ser_pf_recipe *r = &pf->r;
  int64_t B = j->count, T = pf->T, per = pf->F * pf->frames;
  ser_tensor *out = r->features ? ser_tensor_empty(4, SER_DIMS(B, 1, pf->F, pf->frames))
                                : ser_tensor_empty(3, SER_DIMS(B, 1, T));
  /* the waveforms: the output itself, or a scratch batch the features are computed from */
  size_t wav_bytes = r->features ? (size_t)(B * T) * sizeof(float) : 0;
  float *wav = r->features ? ser_alloc(wav_bytes) : out ? ser_tensor_data(out) : NULL;
  ser_rng *rngs = ser_alloc((size_t)B * sizeof *rngs);
  int rc = out && wav && rngs ? 0 : SER_ENOMEM;
  if (rc == 0) {
    ser_data_gather_rows(wav, ser_tensor_data(pf->wav), T, j->rows, B);
    ser_rng base;
    ser_rng_seed(&base, j->seed);
    rc = ser_aug_batch(wav, B, T, r->sr, r->steps, r->n_steps, &base, rngs, NULL, 1);
    if (rc < 0) ser_error_prefix(rc, "prefetch");
  }
  for (int64_t b = 0; rc == 0 && r->features && b < B; b++) {
    float *x = wav + b * T, *spec = ser_tensor_data(out) + b * per;
    rc = r->features == 1 ? ser_logmel_clip(spec, x, T, &r->fopts) : ser_mfcc_clip(spec, x, T, &r->fopts);
    if (rc < 0) {
      ser_error_prefix(rc, "prefetch: clip %lld (row %lld)", (long long)b + 1, (long long)j->rows[b] + 1);
      break;
    }
    if (r->norm_mean)
      normalize_rows(spec, pf->F, pf->frames, ser_tensor_data(r->norm_mean) + j->rows[b] * pf->F,
                     ser_tensor_data(r->norm_scale) + j->rows[b] * pf->F);
    if (r->time_masks > 0)
      ser_aug_mask(spec, pf->F, pf->frames, 1, r->time_masks, r->time_width, r->mask_value, r->time_p, &rngs[b], NULL, NULL);
    if (r->freq_masks > 0)
      ser_aug_mask(spec, pf->F, pf->frames, 0, r->freq_masks, r->freq_width, r->mask_value, r->freq_p, &rngs[b], NULL, NULL);
  }
  if (r->features && wav) ser_free(wav, wav_bytes);
  if (rngs) ser_free(rngs, (size_t)B * sizeof *rngs);
  if (rc < 0) {
    snprintf(j->msg, sizeof j->msg, "%s", out && rngs && (wav || !r->features) ? ser_errmsg() : "prefetch: out of memory for a batch");
    ser_tensor_release(out);
    out = NULL;
  }
  j->rc = rc;
  j->result = out;
}

static void *worker(void *arg) {
  ser_prefetch *pf = arg;
  /* Lowest priority for this thread only (Linux applies setpriority to a thread id): it
   * fills the cores' idle moments and never slows the trainer's OpenMP team, whose barriers
   * wait for their slowest thread. When the trainer waits for a batch it sleeps, and then
   * this thread gets a core whatever its priority. Failure only costs overlap. */
  (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
  pthread_mutex_lock(&pf->lock);
  while (!pf->stop) {
    job *j = pf->todo;
    if (!j) {
      pthread_cond_wait(&pf->work, &pf->lock);
      continue;
    }
    pf->todo = j->next;
    pthread_mutex_unlock(&pf->lock);
    run_job(pf, j);
    pthread_mutex_lock(&pf->lock);
    j->done = 1;
    pthread_cond_broadcast(&pf->done);
  }
  pthread_mutex_unlock(&pf->lock);
  return NULL;
}

/* Releases what ser_prefetch_new took (no worker thread, no jobs left). */
static void destroy(ser_prefetch *pf) {
  ser_tensor_release(pf->wav);
  ser_tensor_release(pf->r.norm_mean);
  ser_tensor_release(pf->r.norm_scale);
  pthread_mutex_destroy(&pf->lock);
  pthread_cond_destroy(&pf->work);
  pthread_cond_destroy(&pf->done);
  free(pf);
}

int ser_prefetch_new(ser_prefetch **out, ser_tensor *wav, const ser_pf_recipe *recipe) {
  *out = NULL;
  if (!wav || wav->ndim != 2 || !ser_tensor_is_contiguous(wav) || wav->shape[0] < 1 || wav->shape[1] < 1)
    return ser_error(SER_EINVAL, "prefetch: expected a contiguous non-empty [N, T] waveform matrix, got %s",
                     wav ? SER_SHAPE(wav) : "nothing");
  int64_t F = 1, frames = 1;
  int rc = check_recipe(recipe, wav->shape[0], wav->shape[1], &F, &frames);
  if (rc < 0) return rc;
  ser_prefetch *pf = calloc(1, sizeof *pf);
  if (!pf) return ser_error(SER_ENOMEM, "prefetch: out of memory");
  pf->r = *recipe;
  pf->N = wav->shape[0];
  pf->T = wav->shape[1];
  pf->F = F;
  pf->frames = frames;
  pf->wav = ser_tensor_retain(wav);
  if (pf->r.norm_mean) {
    ser_tensor_retain(pf->r.norm_mean);
    ser_tensor_retain(pf->r.norm_scale);
  }
  pthread_mutex_init(&pf->lock, NULL);
  pthread_cond_init(&pf->work, NULL);
  pthread_cond_init(&pf->done, NULL);
  if (pthread_create(&pf->thread, NULL, worker, pf) != 0) {
    destroy(pf);
    return ser_error(SER_ESTATE, "prefetch: cannot start the worker thread");
  }
  *out = pf;
  return 0;
}

int ser_prefetch_submit(ser_prefetch *pf, const int64_t *rows, int count, uint64_t seed) {
  if (count < 1) return ser_error(SER_EINVAL, "prefetch: a batch needs at least one row, got %d", count);
  for (int i = 0; i < count; i++)
    if (rows[i] < 0 || rows[i] >= pf->N)
      return ser_error(SER_EINVAL, "prefetch: row %lld of batch entry %d is outside 1..%lld", (long long)rows[i] + 1, i + 1,
                       (long long)pf->N);
  job *j = calloc(1, sizeof *j);
  int64_t *copy = malloc((size_t)count * sizeof *copy);
  if (!j || !copy) {
    free(j);
    free(copy);
    return ser_error(SER_ENOMEM, "prefetch: out of memory queueing a batch of %d", count);
  }
  memcpy(copy, rows, (size_t)count * sizeof *copy);
  j->rows = copy;
  j->count = count;
  j->seed = seed;
  pthread_mutex_lock(&pf->lock);
  if (pf->tail) pf->tail->next = j;
  else pf->head = j;
  pf->tail = j;
  if (!pf->todo) pf->todo = j;
  pf->pending++;
  pthread_cond_signal(&pf->work);
  pthread_mutex_unlock(&pf->lock);
  return 0;
}

static void job_free(job *j) {
  ser_tensor_release(j->result);
  free(j->rows);
  free(j);
}

int ser_prefetch_next(ser_prefetch *pf, ser_tensor **out) {
  *out = NULL;
  pthread_mutex_lock(&pf->lock);
  job *j = pf->head;
  if (!j) {
    pthread_mutex_unlock(&pf->lock);
    return ser_error(SER_ESTATE, "prefetch: no batch was submitted");
  }
  while (!j->done) pthread_cond_wait(&pf->done, &pf->lock);
  pf->head = j->next;
  if (!pf->head) pf->tail = NULL;
  pf->pending--;
  pthread_mutex_unlock(&pf->lock);
  int rc = j->rc;
  if (rc < 0) ser_error(rc, "%s", j->msg);
  *out = j->result;
  j->result = NULL;
  job_free(j);
  return rc;
}

int ser_prefetch_pending(const ser_prefetch *pf) { return pf->pending; }

void ser_prefetch_free(ser_prefetch *pf) {
  if (!pf) return;
  pthread_mutex_lock(&pf->lock);
  pf->stop = 1;
  pthread_cond_broadcast(&pf->work);
  pthread_mutex_unlock(&pf->lock);
  pthread_join(pf->thread, NULL);
  for (job *j = pf->head; j;) {
    job *next = j->next;
    job_free(j);
    j = next;
  }
  destroy(pf);
}
