/* Optimisers (AdamW, SGD with momentum), gradient clipping and learning-rate
 * schedules, with PyTorch 1.13 semantics.
 *
 * The update kernels are plain loops over float arrays (llm.c style); the
 * ser_optimizer object adds parameter groups (per-group lr / weight decay /
 * betas ...) and per-parameter state that can be read and restored (checkpoints).
 * A parameter whose grad is NULL is skipped, as PyTorch does, and its step
 * count does not advance. */
#ifndef SER_OPTIM_OPTIM_H
#define SER_OPTIM_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "../core/tensor.h"

/* ---- kernels ---- */

/* One AdamW step (torch 1.13 order), `step` = this step's 1-based count:
 *   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;
 *   p -= lr/(1-b1^step) · m / (sqrt(v)/sqrt(1-b2^step) + eps) */
void ser_adamw_update(float *p, const float *g, float *m, float *v, size_t n, int64_t step, double lr, double beta1,
                      double beta2, double eps, double weight_decay);

/* One SGD step (torch 1.13): d = g + wd p; with momentum, buf = d on the first
 * step (first != 0) else buf = momentum buf + (1-dampening) d, and d = buf, or
 * d + momentum buf with nesterov; p -= lr d. buf may be NULL when momentum == 0. */
void ser_sgd_update(float *p, const float *g, float *buf, size_t n, int first, double lr, double momentum,
                    double dampening, int nesterov, double weight_decay);

/* ---- optimizer object ---- */

typedef enum { SER_OPTIM_ADAMW = 1, SER_OPTIM_SGD = 2 } ser_optim_kind;

typedef struct ser_optim_hparams {
  double lr, weight_decay;
  double beta1, beta2, eps;  /* AdamW */
  double momentum, dampening; /* SGD */
  int nesterov;              /* SGD */
} ser_optim_hparams;

/* PyTorch's defaults: AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2;
 * SGD has no default lr (set it), momentum 0, dampening 0, weight_decay 0. */
ser_optim_hparams ser_optim_defaults(ser_optim_kind kind);

typedef struct ser_optim_param {
  ser_tensor *p;      /* retained */
  ser_tensor *state1; /* exp_avg (AdamW) or momentum_buffer (SGD); NULL before the first step */
  ser_tensor *state2; /* exp_avg_sq (AdamW); NULL otherwise */
  int64_t step;       /* steps taken with a gradient */
} ser_optim_param;

typedef struct ser_optim_group {
  ser_optim_hparams h;
  int n;
  ser_optim_param *params;
} ser_optim_group;

typedef struct ser_optimizer {
  ser_optim_kind kind;
  int n_groups;
  ser_optim_group *groups;
} ser_optimizer;

int ser_optimizer_new(ser_optimizer **out, ser_optim_kind kind);
void ser_optimizer_free(ser_optimizer *o); /* NULL-safe; releases parameters and state */
/* Checks h (ranges as PyTorch checks them) and that no parameter is repeated,
 * is a non-leaf or is a non-contiguous view. */
int ser_optimizer_add_group(ser_optimizer *o, ser_tensor *const *params, int n, const ser_optim_hparams *h);
int ser_optimizer_check_hparams(ser_optim_kind kind, const ser_optim_hparams *h);
int ser_optimizer_step(ser_optimizer *o);
void ser_optimizer_zero_grad(ser_optimizer *o, int set_to_none);
/* Restores one parameter's state (copies; shapes must match the parameter).
 * state2 is required for AdamW when state1 is given. */
int ser_optimizer_set_state(ser_optimizer *o, int group, int index, int64_t step, const ser_tensor *state1,
                            const ser_tensor *state2);

/* ---- gradient clipping ---- */

/* Scales the gradients of params (NULL grads skipped) so that their global
 * norm (norm_type 2, or INFINITY for max-abs) is at most max_norm, as
 * torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied
 * when < 1. *total_norm gets the norm before clipping. */
int ser_clip_grad_norm(double *total_norm, ser_tensor *const *params, int n, double max_norm, double norm_type);

/* ---- data-parallel training ---- */

/* The gradients of n parameters as one flat block, for one allreduce per step in
 * data-parallel training (docs/distributed.md). ser_grads_numel: the block's length
 * (the parameters' element counts summed). ser_grads_pack writes every parameter's
 * gradient (zeros where it has none) into dst[0..numel) in parameter order; cap is
 * dst's length. ser_grads_unpack sets each gradient to scale * its part of src
 * (creating the gradient where a parameter had none). */
size_t ser_grads_numel(ser_tensor *const *params, int n);
int ser_grads_pack(float *dst, size_t cap, ser_tensor *const *params, int n);
int ser_grads_unpack(ser_tensor *const *params, int n, const float *src, size_t len, double scale);

/* ---- weight averaging ---- */

/* avg[k] <- decay * avg[k] + (1 - decay) * src[k] for n pairs of contiguous
 * tensors of equal shapes (all checked before any is written). */
int ser_ema_update(ser_tensor *const *avg, ser_tensor *const *src, int n, double decay);

/* ---- schedules: pure functions of the step ---- */

typedef struct ser_onecycle_opts {
  double max_lr;
  int64_t total_steps;
  double pct_start;        /* 0.3 */
  double div_factor;       /* 25: initial lr = max_lr / div_factor */
  double final_div_factor; /* 1e4: min lr = initial lr / final_div_factor */
  double base_momentum;    /* 0.85 */
  double max_momentum;     /* 0.95 */
} ser_onecycle_opts;

ser_onecycle_opts ser_onecycle_defaults(double max_lr, int64_t total_steps);
int ser_onecycle_check(const ser_onecycle_opts *o);
/* lr and momentum (beta1) in effect at optimizer step `step` (0-based), cosine
 * annealing, two phases (three_phase=False). Either output may be NULL. Steps
 * beyond total_steps are an error, as in PyTorch. */
int ser_onecycle(double *lr, double *momentum, int64_t step, const ser_onecycle_opts *o);

/* CosineAnnealingLR: eta_min + (base_lr - eta_min)(1 + cos(π step / T_max)) / 2. */
int ser_cosine_lr(double *lr, int64_t step, double base_lr, int64_t T_max, double eta_min);

#endif
