#include <math.h>
#include <stdlib.h>

#include "../core/error.h"
#include "../core/rng.h"
#include "autograd.h"

/* L(x) = sum(f(x) * R) evaluated in double, with grad mode off. */
static int loss_at(ser_gradcheck_fn f, void *ctx, int n_inputs, ser_tensor *const *inputs, const ser_tensor *R,
                   double *loss) {
  ser_tensor *y = NULL;
  int prev = ser_set_grad_enabled(0);
  int rc = f(ctx, inputs, &y);
  ser_set_grad_enabled(prev);
  if (rc) return rc;
  double s = 0;
  for (int64_t i = 0, n = ser_tensor_numel(y); i < n; i++)
    s += (double)ser_tensor_get_flat(y, i) * (double)ser_tensor_data(R)[i];
  ser_tensor_release(y);
  *loss = s;
  return 0;
}

int ser_gradcheck(ser_gradcheck_fn f, void *ctx, int n_inputs, ser_tensor *const *inputs, double eps, double tol,
                  double *worst) {
  *worst = 0;
  for (int i = 0; i < n_inputs; i++)
    if (inputs[i] && inputs[i]->requires_grad) ser_tensor_zero_grad(inputs[i], 1);
  ser_tensor *y = NULL;
  int rc = f(ctx, inputs, &y);
  if (rc) return rc;
  ser_rng rng;
  ser_rng_seed(&rng, 1234);
  ser_tensor *R = ser_tensor_empty(y->ndim, y->shape);
  if (!R) {
    ser_tensor_release(y);
    return SER_ENOMEM;
  }
  ser_tensor_fill_normal(R, 0, 1, &rng);
  rc = ser_backward(y, R, 0);
  ser_tensor_release(y);
  for (int i = 0; i < n_inputs && !rc; i++) {
    ser_tensor *x = inputs[i];
    if (!x || !x->requires_grad) continue;
    if (!x->grad) {
      rc = ser_error(SER_EINVAL, "gradcheck: input %d received no gradient", i + 1);
      break;
    }
    for (int64_t j = 0, n = ser_tensor_numel(x); j < n && !rc; j++) {
      float orig = ser_tensor_get_flat(x, j);
      double lp, lm;
      ser_tensor_set_flat(x, j, orig + (float)eps);
      rc = loss_at(f, ctx, n_inputs, inputs, R, &lp);
      ser_tensor_set_flat(x, j, orig - (float)eps);
      if (!rc) rc = loss_at(f, ctx, n_inputs, inputs, R, &lm);
      ser_tensor_set_flat(x, j, orig);
      if (rc) break;
      /* the step actually taken in float32 */
      double h = (double)(orig + (float)eps) - (double)(orig - (float)eps);
      double numeric = (lp - lm) / h, analytic = ser_tensor_get_flat(x->grad, j);
      double err = fabs(analytic - numeric) / fmax(1.0, fabs(numeric));
      if (err > *worst) *worst = err;
      if (err > tol)
        rc = ser_error(SER_EINVAL, "gradcheck: input %d element %lld: analytic %.6g, numeric %.6g (rel err %.3g > %.3g)",
                       i + 1, (long long)j, analytic, numeric, err, tol);
    }
  }
  ser_tensor_release(R);
  return rc;
}
