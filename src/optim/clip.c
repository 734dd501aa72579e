/* Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_). */
#include <math.h>

#include "../core/error.h"
#include "optim.h"

int ser_clip_grad_norm(double *total_norm, ser_tensor *const *params, int n, double max_norm, double norm_type) {
  *total_norm = 0;
  if (!(max_norm >= 0) || isinf(max_norm))
    return ser_error(SER_EINVAL, "clip_grad_norm: max_norm %g, expected a finite number >= 0", max_norm);
  const int inf_norm = isinf(norm_type) && norm_type > 0;
  if (!inf_norm && norm_type != 2.0)
    return ser_error(SER_EINVAL, "clip_grad_norm: norm_type %g not supported; expected 2 or inf", norm_type);
  double acc = 0;
  for (int k = 0; k < n; k++) {
    const ser_tensor *g = params[k] ? params[k]->grad : NULL;
    if (!g) continue;
    const float *d = ser_tensor_data(g);
    const int64_t m = ser_tensor_numel(g);
    for (int64_t i = 0; i < m; i++) {
      const double a = fabs((double)d[i]);
      if (inf_norm)
        acc = (a > acc || isnan(a)) ? a : acc;
      else
        acc += a * a;
    }
  }
  const double norm = inf_norm ? acc : sqrt(acc);
  *total_norm = norm;
  const double coef = max_norm / (norm + 1e-6);
  /* A NaN/inf norm is not an error in PyTorch 1.13 (error_if_nonfinite=False): the
   * gradients become NaN and the caller sees the returned norm. */
  if (coef < 1.0 || isnan(coef)) {
    const float c = (float)coef;
    for (int k = 0; k < n; k++) {
      ser_tensor *g = params[k] ? params[k]->grad : NULL;
      if (!g) continue;
      float *d = ser_tensor_data(g);
      const int64_t m = ser_tensor_numel(g);
      for (int64_t i = 0; i < m; i++) d[i] *= c;
    }
  }
  return 0;
}
