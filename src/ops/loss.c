/* Losses: fused log_softmax + cross-entropy, nll, mse (kernels and autograd ops). */
#include "loss.h"

#include <math.h>
#include <string.h>

#include "../autograd/autograd.h"
#include "../core/alloc.h"
#include "../core/error.h"

/* ---- kernels ---- */

double ser_cross_entropy_forward(float *logp, const float *logits, const int32_t *targets, const float *weight,
                                 int64_t N, int64_t C, double label_smoothing) {
  double num = 0, W = 0;
  for (int64_t n = 0; n < N; n++) {
    const float *z = logits + n * C;
    float *lp = logp + n * C;
    float mx = z[0];
    for (int64_t c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
    double se = 0;
    for (int64_t c = 0; c < C; c++) se += exp((double)z[c] - mx);
    const double lse = mx + log(se);
    double smooth = 0; /* Σ_c w[c]·(-logp[n,c]) */
    for (int64_t c = 0; c < C; c++) {
      const double v = (double)z[c] - lse;
      lp[c] = (float)v;
      smooth -= (weight ? weight[c] : 1.0) * v;
    }
    const int32_t y = targets[n];
    const double wy = weight ? weight[y] : 1.0;
    W += wy;
    num += (1.0 - label_smoothing) * wy * -((double)z[y] - lse) + label_smoothing / (double)C * smooth;
  }
  return num / W; /* W == 0 gives NaN, as PyTorch does */
}

void ser_cross_entropy_backward(float *dlogits, float dloss, const float *logp, const int32_t *targets,
                                const float *weight, int64_t N, int64_t C, double label_smoothing) {
  double wsum_all = 0, W = 0;
  for (int64_t c = 0; c < C; c++) wsum_all += weight ? weight[c] : 1.0;
  for (int64_t n = 0; n < N; n++) W += weight ? weight[targets[n]] : 1.0;
  const double eps_c = label_smoothing / (double)C;
  for (int64_t n = 0; n < N; n++) {
    const int32_t y = targets[n];
    const double wy = weight ? weight[y] : 1.0;
    const double S = ((1.0 - label_smoothing) * wy + eps_c * wsum_all) / W;
    const float *lp = logp + n * C;
    float *d = dlogits + n * C;
    for (int64_t c = 0; c < C; c++) {
      double coef = eps_c * (weight ? weight[c] : 1.0);
      if (c == y) coef += (1.0 - label_smoothing) * wy;
      d[c] += (float)(dloss * (exp((double)lp[c]) * S - coef / W));
    }
  }
}

double ser_nll_loss_forward(const float *logp, const int32_t *targets, const float *weight, int64_t N, int64_t C) {
  double num = 0, W = 0;
  for (int64_t n = 0; n < N; n++) {
    const double wy = weight ? weight[targets[n]] : 1.0;
    num -= wy * logp[n * C + targets[n]];
    W += wy;
  }
  return num / W;
}

void ser_nll_loss_backward(float *dlogp, float dloss, const int32_t *targets, const float *weight, int64_t N,
                           int64_t C) {
  double W = 0;
  for (int64_t n = 0; n < N; n++) W += weight ? weight[targets[n]] : 1.0;
  for (int64_t n = 0; n < N; n++) {
    const double wy = weight ? weight[targets[n]] : 1.0;
    dlogp[n * C + targets[n]] -= (float)(dloss * wy / W);
  }
}

double ser_mse_loss_forward(const float *a, const float *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    const double d = (double)a[i] - b[i];
    s += d * d;
  }
  return s / (double)n;
}

void ser_mse_loss_backward(float *da, float *db, float dloss, const float *a, const float *b, int64_t n) {
  const float k = (float)(2.0 * dloss / (double)n);
  for (int64_t i = 0; i < n; i++) {
    const float g = k * (a[i] - b[i]);
    if (da) da[i] += g;
    if (db) db[i] -= g;
  }
}

/* ---- argument checks ---- */

int ser_loss_targets(int32_t **idx, const ser_tensor *targets, int64_t N, int64_t C, const char *fname) {
  *idx = NULL;
  if (!targets) return ser_error(SER_EINVAL, "%s: targets missing; expected a tensor of %lld class indices", fname,
                                 (long long)N);
  if (targets->ndim != 1 || targets->shape[0] != N)
    return ser_error(SER_EINVAL, "%s: targets have shape %s, expected [%lld] (one class index per row of the input)",
                     fname, SER_SHAPE(targets), (long long)N);
  int32_t *out = ser_alloc(sizeof(int32_t) * (size_t)(N > 0 ? N : 1));
  if (!out) return SER_ENOMEM;
  for (int64_t n = 0; n < N; n++) {
    const float v = ser_tensor_get_flat(targets, n);
    if (!(v >= 0 && v < (float)C) || v != floorf(v)) {
      ser_free(out, sizeof(int32_t) * (size_t)(N > 0 ? N : 1));
      return ser_error(SER_EINVAL, "%s: target %g at position %lld is not a class index; expected a whole number in "
                       "[0, %lld] (0-based; %lld classes)", fname, (double)v, (long long)n, (long long)C - 1,
                       (long long)C);
    }
    out[n] = (int32_t)v;
  }
  *idx = out;
  return 0;
}

static int check_weight(const ser_tensor *weight, int64_t C, const char *fname) {
  if (weight && (weight->ndim != 1 || weight->shape[0] != C))
    return ser_error(SER_EINVAL, "%s: weight has shape %s, expected [%lld] (one weight per class)", fname,
                     SER_SHAPE(weight), (long long)C);
  return 0;
}

/* Node state of the class losses: the validated 0-based targets. */
typedef struct loss_ctx {
  int32_t *targets;
  int64_t n;
} loss_ctx;

static void loss_ctx_free(void *p) {
  loss_ctx *c = p;
  ser_free(c->targets, sizeof(int32_t) * (size_t)(c->n > 0 ? c->n : 1));
  ser_free(c, sizeof *c);
}

static int attach_targets(ser_node *node, int32_t *idx, int64_t N) {
  loss_ctx *c = ser_alloc(sizeof *c);
  if (!c) {
    ser_free(idx, sizeof(int32_t) * (size_t)(N > 0 ? N : 1));
    return SER_ENOMEM;
  }
  c->targets = idx;
  c->n = N;
  node->ctx = c;
  node->ctx_free = loss_ctx_free;
  return 0;
}

/* ---- cross_entropy ---- */

int ser_cross_entropy(ser_tensor **out, ser_tensor *logits, ser_tensor *targets, ser_tensor *weight,
                      double label_smoothing) {
  const char *fn = "cross_entropy";
  *out = NULL;
  if (logits->ndim != 2 || logits->shape[0] < 1 || logits->shape[1] < 1)
    return ser_error(SER_EINVAL, "%s: input has shape %s, expected [N, C] logits with N, C >= 1", fn,
                     SER_SHAPE(logits));
  const int64_t N = logits->shape[0], C = logits->shape[1];
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    return ser_error(SER_EINVAL, "%s: label_smoothing %g is outside [0, 1]", fn, label_smoothing);
  int rc = check_weight(weight, C, fn);
  if (rc) return rc;
  int32_t *idx;
  if ((rc = ser_loss_targets(&idx, targets, N, C, fn))) return rc;

  ser_tensor *z = ser_tensor_contiguous_raw(logits), *w = weight ? ser_tensor_contiguous_raw(weight) : NULL;
  ser_tensor *logp = ser_tensor_empty(2, logits->shape), *loss = ser_tensor_empty(0, NULL);
  if (!z || (weight && !w) || !logp || !loss) {
    rc = SER_ENOMEM;
    goto fail;
  }
  ser_tensor_data(loss)[0] = (float)ser_cross_entropy_forward(ser_tensor_data(logp), ser_tensor_data(z), idx,
                                                              w ? ser_tensor_data(w) : NULL, N, C, label_smoothing);
  ser_node *node;
  ser_tensor *inputs[1] = {logits};
  if ((rc = ser_autograd_record(loss, SER_OP_CROSS_ENTROPY, 1, inputs, &node))) goto fail;
  if (node) {
    node->saved[0] = logp;
    node->saved[1] = w; /* may be NULL */
    node->farg[0] = label_smoothing;
    logp = w = NULL;
    rc = attach_targets(node, idx, N);
    idx = NULL;
    if (rc) goto fail;
  }
  ser_tensor_release(z);
  ser_tensor_release(w);
  ser_tensor_release(logp);
  if (idx) ser_free(idx, sizeof(int32_t) * (size_t)N);
  *out = loss;
  return 0;
fail:
  ser_tensor_release(z);
  ser_tensor_release(w);
  ser_tensor_release(logp);
  ser_tensor_release(loss);
  if (idx) ser_free(idx, sizeof(int32_t) * (size_t)N);
  return rc;
}

int ser_cross_entropy_backward_op(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (!gin[0]) return 0;
  const ser_tensor *logp = node->saved[0], *w = node->saved[1];
  const loss_ctx *c = node->ctx;
  ser_cross_entropy_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout)[0], ser_tensor_data(logp), c->targets,
                             w ? ser_tensor_data(w) : NULL, logp->shape[0], logp->shape[1], node->farg[0]);
  return 0;
}

/* ---- nll_loss ---- */

int ser_nll_loss(ser_tensor **out, ser_tensor *logp, ser_tensor *targets, ser_tensor *weight) {
  const char *fn = "nll_loss";
  *out = NULL;
  if (logp->ndim != 2 || logp->shape[0] < 1 || logp->shape[1] < 1)
    return ser_error(SER_EINVAL, "%s: input has shape %s, expected [N, C] log-probabilities with N, C >= 1", fn,
                     SER_SHAPE(logp));
  const int64_t N = logp->shape[0], C = logp->shape[1];
  int rc = check_weight(weight, C, fn);
  if (rc) return rc;
  int32_t *idx;
  if ((rc = ser_loss_targets(&idx, targets, N, C, fn))) return rc;
  ser_tensor *x = ser_tensor_contiguous_raw(logp), *w = weight ? ser_tensor_contiguous_raw(weight) : NULL;
  ser_tensor *loss = ser_tensor_empty(0, NULL);
  if (!x || (weight && !w) || !loss) {
    rc = SER_ENOMEM;
    goto fail;
  }
  ser_tensor_data(loss)[0] =
      (float)ser_nll_loss_forward(ser_tensor_data(x), idx, w ? ser_tensor_data(w) : NULL, N, C);
  ser_node *node;
  ser_tensor *inputs[1] = {logp};
  if ((rc = ser_autograd_record(loss, SER_OP_NLL_LOSS, 1, inputs, &node))) goto fail;
  if (node) {
    node->saved[0] = w;
    w = NULL;
    node->iarg[0] = C;
    rc = attach_targets(node, idx, N);
    idx = NULL;
    if (rc) goto fail;
  }
  ser_tensor_release(x);
  ser_tensor_release(w);
  if (idx) ser_free(idx, sizeof(int32_t) * (size_t)N);
  *out = loss;
  return 0;
fail:
  ser_tensor_release(x);
  ser_tensor_release(w);
  ser_tensor_release(loss);
  if (idx) ser_free(idx, sizeof(int32_t) * (size_t)N);
  return rc;
}

int ser_nll_loss_backward_op(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  if (!gin[0]) return 0;
  const ser_tensor *w = node->saved[0];
  const loss_ctx *c = node->ctx;
  ser_nll_loss_backward(ser_tensor_data(gin[0]), ser_tensor_data(gout)[0], c->targets, w ? ser_tensor_data(w) : NULL,
                        c->n, node->iarg[0]);
  return 0;
}

/* ---- mse_loss ---- */

int ser_mse_loss(ser_tensor **out, ser_tensor *input, ser_tensor *target) {
  *out = NULL;
  if (!ser_tensor_same_shape(input, target))
    return ser_error(SER_EINVAL, "mse_loss: input %s and target %s differ in shape; expected equal shapes",
                     SER_SHAPE(input), SER_SHAPE(target));
  const int64_t n = ser_tensor_numel(input);
  if (n < 1) return ser_error(SER_EINVAL, "mse_loss: input %s is empty", SER_SHAPE(input));
  int rc;
  ser_tensor *a = ser_tensor_contiguous_raw(input), *b = ser_tensor_contiguous_raw(target);
  ser_tensor *loss = ser_tensor_empty(0, NULL);
  if (!a || !b || !loss) {
    rc = SER_ENOMEM;
    goto fail;
  }
  ser_tensor_data(loss)[0] = (float)ser_mse_loss_forward(ser_tensor_data(a), ser_tensor_data(b), n);
  ser_node *node;
  ser_tensor *inputs[2] = {input, target};
  if ((rc = ser_autograd_record(loss, SER_OP_MSE_LOSS, 2, inputs, &node))) goto fail;
  if (node) {
    /* detached copies: the inputs may be views, and the kernel wants flat arrays */
    node->saved[0] = a;
    node->saved[1] = b;
    a = b = NULL;
  }
  ser_tensor_release(a);
  ser_tensor_release(b);
  *out = loss;
  return 0;
fail:
  ser_tensor_release(a);
  ser_tensor_release(b);
  ser_tensor_release(loss);
  return rc;
}

int ser_mse_loss_backward_op(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  const ser_tensor *a = node->saved[0], *b = node->saved[1];
  ser_mse_loss_backward(gin[0] ? ser_tensor_data(gin[0]) : NULL, gin[1] ? ser_tensor_data(gin[1]) : NULL,
                        ser_tensor_data(gout)[0], ser_tensor_data(a), ser_tensor_data(b), ser_tensor_numel(a));
  return 0;
}
