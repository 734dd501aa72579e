/* Gradients packed into one flat block and back (see optim.h): an allreduce per
 * step costs one latency instead of one per parameter tensor (CNN2D has 26). */
#include <string.h>

#include "../core/error.h"
#include "optim.h"

size_t ser_grads_numel(ser_tensor *const *params, int n) {
  size_t total = 0;
  for (int k = 0; k < n; k++) total += params[k] ? (size_t)ser_tensor_numel(params[k]) : 0;
  return total;
}

static int check_grad(const ser_tensor *p, int k) {
  const ser_tensor *g = p->grad;
  if (g && (ser_tensor_numel(g) != ser_tensor_numel(p) || !ser_tensor_is_contiguous(g)))
    return ser_error(SER_ESTATE, "grads: parameter %d has %lld elements but a gradient of %s", k + 1,
                     (long long)ser_tensor_numel(p), SER_SHAPE(g));
  return 0;
}

int ser_grads_pack(float *dst, size_t cap, ser_tensor *const *params, int n) {
  size_t need = ser_grads_numel(params, n), off = 0;
  if (need > cap)
    return ser_error(SER_EINVAL, "grads_pack: the parameters have %zu elements, the buffer holds %zu", need, cap);
  for (int k = 0; k < n; k++) {
    if (!params[k]) continue;
    int rc = check_grad(params[k], k);
    if (rc) return rc;
    size_t m = (size_t)ser_tensor_numel(params[k]);
    if (params[k]->grad)
      memcpy(dst + off, ser_tensor_data(params[k]->grad), m * sizeof(float));
    else
      memset(dst + off, 0, m * sizeof(float));
    off += m;
  }
  return 0;
}

int ser_grads_unpack(ser_tensor *const *params, int n, const float *src, size_t len, double scale) {
  size_t need = ser_grads_numel(params, n), off = 0;
  if (need > len)
    return ser_error(SER_EINVAL, "grads_unpack: the parameters have %zu elements, the buffer holds %zu", need, len);
  const float s = (float)scale;
  for (int k = 0; k < n; k++) {
    ser_tensor *p = params[k];
    if (!p) continue;
    int rc = check_grad(p, k);
    if (rc) return rc;
    if (!p->grad && !(p->grad = ser_tensor_zeros_like(p))) return SER_ENOMEM;
    float *g = ser_tensor_data(p->grad);
    size_t m = (size_t)ser_tensor_numel(p);
    for (size_t i = 0; i < m; i++) g[i] = src[off + i] * s;
    off += m;
  }
  return 0;
}
