/* SpecAugment time and frequency masks (Park et al. 2019) with torchaudio's sampling. */
#include "augment/augment.h"

int ser_aug_mask(float *spec, int64_t F, int64_t T, int axis, int count, int max_width, float value, float p,
                 ser_rng *rng, int64_t *starts, int64_t *widths) {
  if (!rng) rng = ser_rng_global();
  int64_t size = axis == 0 ? F : T;
  int applied = 0;
  for (int c = 0; c < count; c++) {
    if (starts) starts[c] = 0;
    if (widths) widths[c] = 0;
    if (p < 1.0f && ser_rng_uniform(rng) >= p) continue;
    double w = (double)ser_rng_uniform(rng) * max_width;
    if (w > (double)size) w = (double)size;
    double lo = (double)ser_rng_uniform(rng) * ((double)size - w);
    int64_t start = (int64_t)lo, end = (int64_t)(lo + w);
    if (end > size) end = size;
    if (starts) starts[c] = start;
    if (widths) widths[c] = end - start;
    if (end > start) applied++;
    if (axis == 0) {
      for (int64_t f = start; f < end; f++)
        for (int64_t t = 0; t < T; t++) spec[f * T + t] = value;
    } else {
      for (int64_t f = 0; f < F; f++)
        for (int64_t t = start; t < end; t++) spec[f * T + t] = value;
    }
  }
  return applied;
}
