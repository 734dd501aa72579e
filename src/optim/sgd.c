/* SGD update kernel: weight decay, momentum (with dampening), Nesterov. */
#include "optim.h"

void ser_sgd_update(float *p, const float *g, float *buf, size_t n, int first, double lr, double momentum,
                    double dampening, int nesterov, double weight_decay) {
  const float wd = (float)weight_decay, mu = (float)momentum, damp = (float)(1.0 - dampening), flr = (float)lr;
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    if (momentum != 0.0) {
      /* PyTorch starts the buffer at the first gradient itself, undampened. */
      const float b = first ? d : mu * buf[i] + damp * d;
      buf[i] = b;
      d = nesterov ? d + mu * b : b;
    }
    p[i] -= flr * d;
  }
}
