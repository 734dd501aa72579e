/* Exponential moving average of weights (the "EMA model" of timm's ModelEmaV2
 * and torch.optim.swa_utils.AveragedModel with an EMA avg_fn):
 *   avg <- decay * avg + (1 - decay) * src, element by element. */
#include "../core/error.h"
#include "optim.h"

int ser_ema_update(ser_tensor *const *avg, ser_tensor *const *src, int n, double decay) {
  if (!(decay >= 0 && decay <= 1))
    return ser_error(SER_EINVAL, "ema_update: decay %g, expected a number in [0, 1]", decay);
  /* Check every pair before writing any, so a bad list leaves the average untouched. */
  for (int k = 0; k < n; k++) {
    if (!avg[k] || !src[k]) return ser_error(SER_EINVAL, "ema_update: tensor %d is missing", k + 1);
    if (!ser_tensor_same_shape(avg[k], src[k]))
      return ser_error(SER_EINVAL, "ema_update: tensor %d: the average and the source differ in shape", k + 1);
    if (!ser_tensor_is_contiguous(avg[k]) || !ser_tensor_is_contiguous(src[k]))
      return ser_error(SER_EINVAL, "ema_update: tensor %d is not contiguous", k + 1);
  }
  const float d = (float)decay, w = (float)(1.0 - decay);
  for (int k = 0; k < n; k++) {
    float *a = ser_tensor_data(avg[k]);
    const float *s = ser_tensor_data(src[k]);
    const int64_t m = ser_tensor_numel(avg[k]);
    for (int64_t i = 0; i < m; i++) a[i] = d * a[i] + w * s[i];
  }
  return 0;
}
