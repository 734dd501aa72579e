/* The optimizer object: parameter groups with their hyper-parameters and the
 * per-parameter state (created lazily at a parameter's first step, as PyTorch does). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd/autograd.h"
#include "../core/error.h"
#include "optim.h"

static const char *kind_name(ser_optim_kind k) { return k == SER_OPTIM_ADAMW ? "AdamW" : "SGD"; }

ser_optim_hparams ser_optim_defaults(ser_optim_kind kind) {
  ser_optim_hparams h = {0};
  if (kind == SER_OPTIM_ADAMW) {
    h.lr = 1e-3;
    h.weight_decay = 1e-2;
    h.beta1 = 0.9;
    h.beta2 = 0.999;
    h.eps = 1e-8;
  } else {
    h.lr = NAN; /* SGD has no default learning rate: must be given */
  }
  return h;
}

int ser_optimizer_new(ser_optimizer **out, ser_optim_kind kind) {
  *out = NULL;
  if (kind != SER_OPTIM_ADAMW && kind != SER_OPTIM_SGD)
    return ser_error(SER_EINVAL, "optimizer: unknown kind %d", (int)kind);
  ser_optimizer *o = calloc(1, sizeof *o);
  if (!o) return ser_error(SER_ENOMEM, "optimizer: out of memory");
  o->kind = kind;
  *out = o;
  return 0;
}

void ser_optimizer_free(ser_optimizer *o) {
  if (!o) return;
  for (int g = 0; g < o->n_groups; g++) {
    for (int i = 0; i < o->groups[g].n; i++) {
      ser_optim_param *p = &o->groups[g].params[i];
      ser_tensor_release(p->p);
      ser_tensor_release(p->state1);
      ser_tensor_release(p->state2);
    }
    free(o->groups[g].params);
  }
  free(o->groups);
  free(o);
}

int ser_optimizer_check_hparams(ser_optim_kind kind, const ser_optim_hparams *h) {
  const char *k = kind_name(kind);
  if (!(h->lr >= 0) || isinf(h->lr))
    return ser_error(SER_EINVAL, "%s: invalid learning rate %g; expected a finite number >= 0%s", k, h->lr,
                     kind == SER_OPTIM_SGD && isnan(h->lr) ? " (SGD has no default lr: pass lr=...)" : "");
  if (!(h->weight_decay >= 0))
    return ser_error(SER_EINVAL, "%s: invalid weight_decay %g; expected >= 0", k, h->weight_decay);
  if (kind == SER_OPTIM_ADAMW) {
    if (!(h->beta1 >= 0 && h->beta1 < 1) || !(h->beta2 >= 0 && h->beta2 < 1))
      return ser_error(SER_EINVAL, "%s: invalid betas (%g, %g); expected each in [0, 1)", k, h->beta1, h->beta2);
    if (!(h->eps >= 0)) return ser_error(SER_EINVAL, "%s: invalid eps %g; expected >= 0", k, h->eps);
  } else {
    if (!(h->momentum >= 0)) return ser_error(SER_EINVAL, "%s: invalid momentum %g; expected >= 0", k, h->momentum);
    if (!(h->dampening >= 0 && h->dampening <= 1))
      return ser_error(SER_EINVAL, "%s: invalid dampening %g; expected in [0, 1]", k, h->dampening);
    if (h->nesterov && (h->momentum <= 0 || h->dampening != 0))
      return ser_error(SER_EINVAL, "%s: nesterov needs momentum > 0 and dampening 0 (got momentum %g, dampening %g)",
                       k, h->momentum, h->dampening);
  }
  return 0;
}

int ser_optimizer_add_group(ser_optimizer *o, ser_tensor *const *params, int n, const ser_optim_hparams *h) {
  const char *k = kind_name(o->kind);
  int rc = ser_optimizer_check_hparams(o->kind, h);
  if (rc) return rc;
  if (n < 1) return ser_error(SER_EINVAL, "%s: parameter group %d is empty; expected at least one tensor", k,
                              o->n_groups + 1);
  for (int i = 0; i < n; i++) {
    const ser_tensor *t = params[i];
    if (!t) return ser_error(SER_EINVAL, "%s: parameter %d of group %d is missing", k, i + 1, o->n_groups + 1);
    if (t->grad_fn)
      return ser_error(SER_EINVAL, "%s: parameter %d of group %d (shape %s) is not a leaf tensor; optimise the "
                       "parameters themselves, not results computed from them", k, i + 1, o->n_groups + 1,
                       SER_SHAPE(t));
    if (!ser_tensor_is_contiguous(t))
      return ser_error(SER_EINVAL, "%s: parameter %d of group %d (shape %s) is a non-contiguous view", k, i + 1,
                       o->n_groups + 1, SER_SHAPE(t));
    /* PyTorch refuses a parameter listed twice (it would be stepped twice). */
    for (int g = 0; g <= o->n_groups; g++) {
      const int m = g < o->n_groups ? o->groups[g].n : i;
      for (int j = 0; j < m; j++) {
        const ser_tensor *u = g < o->n_groups ? o->groups[g].params[j].p : params[j];
        if (u->storage == t->storage && u->offset == t->offset)
          return ser_error(SER_EINVAL, "%s: parameter %d of group %d (shape %s) appears more than once", k, i + 1,
                           o->n_groups + 1, SER_SHAPE(t));
      }
    }
  }
  ser_optim_group *groups = realloc(o->groups, sizeof *groups * (size_t)(o->n_groups + 1));
  if (!groups) return ser_error(SER_ENOMEM, "%s: out of memory", k);
  o->groups = groups;
  ser_optim_group *grp = &groups[o->n_groups];
  grp->params = calloc((size_t)n, sizeof *grp->params);
  if (!grp->params) return ser_error(SER_ENOMEM, "%s: out of memory", k);
  grp->h = *h;
  grp->n = n;
  for (int i = 0; i < n; i++) grp->params[i].p = ser_tensor_retain(params[i]);
  o->n_groups++;
  return 0;
}

static int ensure_state(ser_optimizer *o, ser_optim_param *p) {
  const int need2 = o->kind == SER_OPTIM_ADAMW;
  if (!p->state1 && !(p->state1 = ser_tensor_zeros(p->p->ndim, p->p->shape))) return SER_ENOMEM;
  if (need2 && !p->state2 && !(p->state2 = ser_tensor_zeros(p->p->ndim, p->p->shape))) return SER_ENOMEM;
  return 0;
}

int ser_optimizer_step(ser_optimizer *o) {
  const char *k = kind_name(o->kind);
  for (int g = 0; g < o->n_groups; g++) {
    ser_optim_group *grp = &o->groups[g];
    const ser_optim_hparams *h = &grp->h;
    for (int i = 0; i < grp->n; i++) {
      ser_optim_param *p = &grp->params[i];
      const ser_tensor *gr = p->p->grad;
      if (!gr) continue;
      if (!ser_tensor_same_shape(gr, p->p) || !ser_tensor_is_contiguous(gr))
        return ser_error(SER_ESTATE, "%s: gradient of parameter %d in group %d has shape %s, parameter %s", k, i + 1,
                         g + 1, SER_SHAPE(gr), SER_SHAPE(p->p));
      const size_t n = (size_t)ser_tensor_numel(p->p);
      if (o->kind == SER_OPTIM_ADAMW) {
        if (ensure_state(o, p)) return SER_ENOMEM;
        p->step++;
        ser_adamw_update(ser_tensor_data(p->p), ser_tensor_data(gr), ser_tensor_data(p->state1),
                         ser_tensor_data(p->state2), n, p->step, h->lr, h->beta1, h->beta2, h->eps, h->weight_decay);
      } else {
        const int first = p->state1 == NULL;
        if (h->momentum != 0 && ensure_state(o, p)) return SER_ENOMEM;
        p->step++;
        ser_sgd_update(ser_tensor_data(p->p), ser_tensor_data(gr), p->state1 ? ser_tensor_data(p->state1) : NULL, n,
                       first, h->lr, h->momentum, h->dampening, h->nesterov, h->weight_decay);
      }
    }
  }
  return 0;
}

void ser_optimizer_zero_grad(ser_optimizer *o, int set_to_none) {
  for (int g = 0; g < o->n_groups; g++)
    for (int i = 0; i < o->groups[g].n; i++) ser_tensor_zero_grad(o->groups[g].params[i].p, set_to_none);
}

static int check_state_shape(const ser_tensor *st, const ser_tensor *param, const char *what, int g, int i) {
  if (st && !ser_tensor_same_shape(st, param))
    return ser_error(SER_EINVAL, "optimizer state: %s of parameter %d in group %d has shape %s, parameter is %s", what,
                     i + 1, g + 1, SER_SHAPE(st), SER_SHAPE(param));
  return 0;
}

int ser_optimizer_set_state(ser_optimizer *o, int group, int index, int64_t step, const ser_tensor *state1,
                            const ser_tensor *state2) {
  if (group < 0 || group >= o->n_groups || index < 0 || index >= o->groups[group].n)
    return ser_error(SER_EINVAL, "optimizer state: no parameter %d in group %d (%d groups)", index + 1, group + 1,
                     o->n_groups);
  if (step < 0) return ser_error(SER_EINVAL, "optimizer state: step %lld, expected >= 0", (long long)step);
  ser_optim_param *p = &o->groups[group].params[index];
  const int adam = o->kind == SER_OPTIM_ADAMW;
  if (adam && (state1 != NULL) != (state2 != NULL))
    return ser_error(SER_EINVAL, "optimizer state: parameter %d in group %d needs both exp_avg and exp_avg_sq, or "
                     "neither", index + 1, group + 1);
  /* Check everything before changing anything, so a failure leaves the state as it was. */
  int rc;
  if ((rc = check_state_shape(state1, p->p, adam ? "exp_avg" : "momentum_buffer", group, index))) return rc;
  if (adam && (rc = check_state_shape(state2, p->p, "exp_avg_sq", group, index))) return rc;
  ser_tensor *s1 = state1 ? ser_tensor_clone_raw(state1) : NULL;
  ser_tensor *s2 = adam && state2 ? ser_tensor_clone_raw(state2) : NULL;
  if ((state1 && !s1) || (adam && state2 && !s2)) {
    ser_tensor_release(s1);
    ser_tensor_release(s2);
    return SER_ENOMEM;
  }
  ser_tensor_release(p->state1);
  ser_tensor_release(p->state2);
  p->state1 = s1;
  p->state2 = s2;
  p->step = step;
  return 0;
}
