/* Learning-rate schedules as pure functions of the step (PyTorch 1.13 formulas). */
#include <math.h>

#include "../core/error.h"
#include "optim.h"

ser_onecycle_opts ser_onecycle_defaults(double max_lr, int64_t total_steps) {
  return (ser_onecycle_opts){.max_lr = max_lr,
                             .total_steps = total_steps,
                             .pct_start = 0.3,
                             .div_factor = 25.0,
                             .final_div_factor = 1e4,
                             .base_momentum = 0.85,
                             .max_momentum = 0.95};
}

int ser_onecycle_check(const ser_onecycle_opts *o) {
  if (o->total_steps < 1)
    return ser_error(SER_EINVAL, "OneCycleLR: total_steps %lld, expected >= 1", (long long)o->total_steps);
  if (!(o->pct_start >= 0 && o->pct_start <= 1))
    return ser_error(SER_EINVAL, "OneCycleLR: pct_start %g, expected a number in [0, 1]", o->pct_start);
  if (!(o->max_lr >= 0) || !(o->div_factor > 0) || !(o->final_div_factor > 0))
    return ser_error(SER_EINVAL, "OneCycleLR: max_lr %g, div_factor %g, final_div_factor %g; expected max_lr >= 0 and "
                     "positive factors", o->max_lr, o->div_factor, o->final_div_factor);
  return 0;
}

/* cos annealing from a (pct 0) to b (pct 1) */
static double cos_anneal(double a, double b, double pct) { return b + (a - b) / 2.0 * (1.0 + cos(M_PI * pct)); }

int ser_onecycle(double *lr, double *momentum, int64_t step, const ser_onecycle_opts *o) {
  int rc = ser_onecycle_check(o);
  if (rc) return rc;
  if (step < 0 || step > o->total_steps)
    return ser_error(SER_EINVAL, "OneCycleLR: step %lld is outside [0, total_steps = %lld]; the schedule has ended "
                     "(raise total_steps or stop stepping)", (long long)step, (long long)o->total_steps);
  const double initial = o->max_lr / o->div_factor, min_lr = initial / o->final_div_factor;
  /* Phase ends as PyTorch defines them: float(pct_start * total) - 1, then total - 1. */
  const double end1 = o->pct_start * (double)o->total_steps - 1.0, end2 = (double)o->total_steps - 1.0;
  const double s = (double)step;
  double l, m;
  if (s <= end1) {
    const double pct = end1 > 0 ? s / end1 : 1.0; /* a zero-length phase is already at its end */
    l = cos_anneal(initial, o->max_lr, pct);
    m = cos_anneal(o->max_momentum, o->base_momentum, pct);
  } else {
    const double pct = end2 > end1 ? (s - end1) / (end2 - end1) : 1.0;
    l = cos_anneal(o->max_lr, min_lr, pct);
    m = cos_anneal(o->base_momentum, o->max_momentum, pct);
  }
  if (lr) *lr = l;
  if (momentum) *momentum = m;
  return 0;
}

int ser_cosine_lr(double *lr, int64_t step, double base_lr, int64_t T_max, double eta_min) {
  if (T_max < 1) return ser_error(SER_EINVAL, "CosineAnnealingLR: T_max %lld, expected >= 1", (long long)T_max);
  if (step < 0) return ser_error(SER_EINVAL, "CosineAnnealingLR: step %lld, expected >= 0", (long long)step);
  *lr = eta_min + (base_lr - eta_min) * (1.0 + cos(M_PI * (double)step / (double)T_max)) / 2.0;
  return 0;
}
