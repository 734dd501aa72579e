/* AdamW update kernel (decoupled weight decay, bias correction, eps outside the sqrt). */
#include <math.h>

#include "optim.h"

void ser_adamw_update(float *p, const float *g, float *m, float *v, size_t n, int64_t step, double lr, double beta1,
                      double beta2, double eps, double weight_decay) {
  /* Scalars in double as PyTorch computes them in Python floats. */
  const float decay = (float)(1.0 - lr * weight_decay);
  const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
  const float b1 = (float)beta1, b2 = (float)beta2, fe = (float)eps;
  const float a1 = (float)(1.0 - beta1), a2 = (float)(1.0 - beta2);
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float pi = p[i] * decay;
    const float mi = m[i] * b1 + a1 * gi;
    const float vi = v[i] * b2 + a2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + fe));
  }
}
