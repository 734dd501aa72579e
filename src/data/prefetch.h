/* Background batch preparation for the data loader.
 *
 * One worker thread turns batch jobs (a list of rows of an in-memory [N][T] waveform matrix
 * and a seed) into finished model inputs: it gathers the rows, applies the waveform
 * augmentation recipe clip by clip, computes the features, applies SpecAugment masks, and
 * queues the result. The trainer submits batch k+2 while it trains on batch k and takes
 * results in submission order, so data preparation overlaps training.
 *
 * The worker uses one thread (ser_aug_batch with one thread, the per-clip feature
 * functions, not the OpenMP batch ones) so it takes one core's share at most while the
 * trainer's GEMMs use the rest. Clip b of a job draws from ser_aug_derive(job seed, b), its
 * waveform steps first and then its masks: results depend on the seed only, never on
 * timing. Nothing here touches Lua; the binding (src/lua/data.c) owns the object. */
#ifndef SER_DATA_PREFETCH_H
#define SER_DATA_PREFETCH_H

#include <stdint.h>

#include "audio/features.h"
#include "augment/augment.h"
#include "core/tensor.h"

#define SER_PF_MAX_STEPS 16
#define SER_PF_MAX_MASKS 1000 /* per axis */

typedef struct {
  int sr;
  int n_steps;
  ser_aug_step steps[SER_PF_MAX_STEPS]; /* the waveform recipe, in order (ser_aug_apply) */
  int features;            /* 0: waveform out [B, 1, T]; 1: logmel, 2: mfcc -> [B, 1, F, frames] */
  ser_feat_opts fopts;
  int time_masks, time_width, freq_masks, freq_width; /* SpecAugment on the features */
  float time_p, freq_p, mask_value;                   /* probability of each mask; its fill value */
  /* Optional per-row feature normalisation, applied after the features and before the
   * masks: spec[f][t] = (spec[f][t] - norm_mean[row][f]) * norm_scale[row][f]. Both
   * [N, F] float tensors or both NULL; retained by the worker. Speaker normalisation
   * gives every row of one speaker that speaker's statistics. */
  ser_tensor *norm_mean, *norm_scale;
} ser_pf_recipe;

typedef struct ser_prefetch ser_prefetch;

/* Checks the recipe and starts the worker; wav [N, T] is retained until ser_prefetch_free. */
int ser_prefetch_new(ser_prefetch **out, ser_tensor *wav, const ser_pf_recipe *recipe);
/* Queues a job: count rows (0-based) of the matrix; copied, so rows may be freed after. */
int ser_prefetch_submit(ser_prefetch *pf, const int64_t *rows, int count, uint64_t seed);
/* Waits for the oldest job and hands over its result (new reference). A job that failed
 * returns its error here. SER_ESTATE when no job is outstanding. */
int ser_prefetch_next(ser_prefetch *pf, ser_tensor **out);
int ser_prefetch_pending(const ser_prefetch *pf); /* jobs submitted and not yet taken */
/* Stops the worker (after its current job), drops queued work and results. NULL-safe. */
void ser_prefetch_free(ser_prefetch *pf);

#endif
