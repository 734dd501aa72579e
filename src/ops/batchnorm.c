#include "batchnorm.h"

#include <math.h>

#include "../core/alloc.h"
#include "../core/comm.h"
#include "../core/cpu.h"
#include "../core/error.h"
#include "isa.h"

/* Statistics: each row of S values is summed in float across SIMD lanes
 * (omp simd reduction: 8-16 partial sums, so the rounding error grows with
 * S/16, not S), and rows are added in double: n reaches B*H*W = 128k per
 * channel in the first CNN2D layer, where one float sum would lose digits
 * PyTorch keeps. */
/* The row loops are memory-bound passes over activations; with 16 lanes
 * (AVX-512) they ran 1.3x faster than with the SSE baseline on CNN2D's
 * BatchNorm layers. Two copies (batchnorm_rows_impl.h), the AVX-512F one where
 * ser_cpu_has says so (SER_ISA can lower it), decided at the first call. */
#define K(name) name##_base
#include "batchnorm_rows_impl.h"
#undef K
SER_ISA_BEGIN("avx512f")
#define K(name) name##_avx512
#include "batchnorm_rows_impl.h"
#undef K
SER_ISA_END

static int bn_wide = -1; /* 1: the AVX-512F copies; -1 until the first call */
static inline int bn_avx512(void) {
  if (bn_wide < 0) bn_wide = ser_cpu_has(SER_CPU_AVX512F);
  return bn_wide;
}
#define BN_ROW(name, args) (bn_avx512() ? name##_avx512 args : name##_base args)

static inline float row_sum(const float *p, int S) { return BN_ROW(row_sum, (p, S)); }
static inline float row_sqdev(const float *p, int S, float mu) { return BN_ROW(row_sqdev, (p, S, mu)); }
static inline void row_dsums(const float *dy, const float *x, const float *y, int S, float mu, double *sdy,
                             double *sdyx) {
  BN_ROW(row_dsums, (dy, x, y, S, mu, sdy, sdyx));
}
static inline void affine_row(float *q, const float *p, int S, float scale, float shift, int relu) {
  BN_ROW(affine_row, (q, p, S, scale, shift, relu));
}
static inline void dx_row(float *dx, const float *dy, const float *x, const float *y, int S, float g, float mdy,
                          float mu, float k, int overwrite) {
  BN_ROW(dx_row, (dx, dy, x, y, S, g, mdy, mu, k, overwrite));
}

/* relu: out = max(0, normalised) in the same pass (batch_norm_relu), NaN -> 0 as ser_relu. */
static void batchnorm_forward_train(float *out, float *mean, float *invstd, const float *in, const float *weight,
                                    const float *bias, float *running_mean, float *running_var, int B, int C, int S,
                                    float momentum, float eps, int relu) {
  size_t plane = (size_t)C * S;
  double n = (double)B * S;
#pragma omp parallel for schedule(static) if ((double)B * C * S > 32768)
  for (int c = 0; c < C; c++) {
    double s = 0.0;
    for (int b = 0; b < B; b++) s += row_sum(in + b * plane + (size_t)c * S, S);
    double mu = s / n, ss = 0.0;
    for (int b = 0; b < B; b++) ss += row_sqdev(in + b * plane + (size_t)c * S, S, (float)mu);
    double var = ss / n;
    float is = (float)(1.0 / sqrt(var + eps));
    mean[c] = (float)mu;
    invstd[c] = is;
    if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
    if (running_var) running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * n / (n - 1.0));
    float scale = is * (weight ? weight[c] : 1.0f), shift = (bias ? bias[c] : 0.0f) - (float)mu * scale;
    for (int b = 0; b < B; b++)
      affine_row(out + b * plane + (size_t)c * S, in + b * plane + (size_t)c * S, S, scale, shift, relu);
  }
}

/* Synchronised BatchNorm (ser_comm_set_sync_batchnorm): the statistics of the
 * batch spread over every process. Two exchanges, as the one-process forward
 * makes two passes: the channel sums and the value count first (the global
 * mean), then the squared deviations around that mean, so the variance keeps
 * the two-pass accuracy a single allreduce of sum(x^2) would lose. *n_out is
 * the global count per channel, which the backward needs. */
static int batchnorm_forward_train_sync(float *out, float *mean, float *invstd, double *n_out, const float *in,
                                        const float *weight, const float *bias, float *running_mean,
                                        float *running_var, int B, int C, int S, float momentum, float eps,
                                        int relu) {
  ser_comm *comm = ser_comm_get();
  size_t plane = (size_t)C * S, bytes = (size_t)(2 * C + 1) * sizeof(double);
  double *buf = ser_alloc(bytes), *mu = buf + C + 1;
  if (!buf) return SER_ENOMEM;
#pragma omp parallel for schedule(static) if ((double)B * C * S > 32768)
  for (int c = 0; c < C; c++) {
    double s = 0.0;
    for (int b = 0; b < B; b++) s += row_sum(in + b * plane + (size_t)c * S, S);
    buf[c] = s;
  }
  buf[C] = (double)B * S;
  int rc = comm->allreduce_f64(buf, (size_t)C + 1, comm->ctx);
  double n = buf[C];
  if (rc == 0) {
    for (int c = 0; c < C; c++) mu[c] = buf[c] / n;
#pragma omp parallel for schedule(static) if ((double)B * C * S > 32768)
    for (int c = 0; c < C; c++) {
      double ss = 0.0;
      for (int b = 0; b < B; b++) ss += row_sqdev(in + b * plane + (size_t)c * S, S, (float)mu[c]);
      buf[c] = ss;
    }
    rc = comm->allreduce_f64(buf, (size_t)C, comm->ctx);
  }
  if (rc == 0) {
#pragma omp parallel for schedule(static) if ((double)B * C * S > 32768)
    for (int c = 0; c < C; c++) {
      double var = buf[c] / n;
      float is = (float)(1.0 / sqrt(var + eps));
      mean[c] = (float)mu[c];
      invstd[c] = is;
      if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu[c]);
      if (running_var)
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * n / (n - 1.0));
      float scale = is * (weight ? weight[c] : 1.0f), shift = (bias ? bias[c] : 0.0f) - (float)mu[c] * scale;
      for (int b = 0; b < B; b++)
        affine_row(out + b * plane + (size_t)c * S, in + b * plane + (size_t)c * S, S, scale, shift, relu);
    }
  }
  *n_out = n;
  ser_free(buf, bytes);
  return rc ? ser_error(SER_EIO, "batch_norm: synchronising the statistics across processes failed (%d)", rc) : 0;
}

void ser_batchnorm_forward_train(float *out, float *mean, float *invstd, const float *in, const float *weight,
                                 const float *bias, float *running_mean, float *running_var, int B, int C, int S,
                                 float momentum, float eps) {
  batchnorm_forward_train(out, mean, invstd, in, weight, bias, running_mean, running_var, B, C, S, momentum, eps, 0);
}

static void batchnorm_forward_eval(float *out, const float *in, const float *mean, const float *invstd,
                                   const float *weight, const float *bias, int B, int C, int S, int relu) {
  size_t plane = (size_t)C * S;
#pragma omp parallel for collapse(2) schedule(static) if ((double)B * C * S > 32768)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      float scale = invstd[c] * (weight ? weight[c] : 1.0f), shift = (bias ? bias[c] : 0.0f) - mean[c] * scale;
      affine_row(out + b * plane + (size_t)c * S, in + b * plane + (size_t)c * S, S, scale, shift, relu);
    }
}

void ser_batchnorm_forward_eval(float *out, const float *in, const float *mean, const float *invstd,
                                const float *weight, const float *bias, int B, int C, int S) {
  batchnorm_forward_eval(out, in, mean, invstd, weight, bias, B, C, S, 0);
}

/* din_overwrite: din is uninitialised (a fresh autograd buffer) and is written, not added to. */
static void batchnorm_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                               const float *relu_out, const float *mean, const float *invstd, const float *weight,
                               int B, int C, int S, int training, int din_overwrite) {
  size_t plane = (size_t)C * S;
  double n = (double)B * S;
#pragma omp parallel for schedule(static) if ((double)B * C * S > 32768)
  for (int c = 0; c < C; c++) {
    double sdy = 0.0, sdyx = 0.0;  /* sum dy, sum dy * xhat */
    float mu = mean[c], is = invstd[c];
    for (int b = 0; b < B; b++)
      row_dsums(dout + b * plane + (size_t)c * S, in + b * plane + (size_t)c * S,
                relu_out ? relu_out + b * plane + (size_t)c * S : NULL, S, mu, &sdy, &sdyx);
    sdyx *= is;
    if (dbias) dbias[c] += (float)sdy;
    if (dweight) dweight[c] += (float)sdyx;
    if (!din) continue;
    float g = is * (weight ? weight[c] : 1.0f);
    /* training: d/dx of (x - mean(x)) / std(x) also moves the statistics:
     * dx = g (dy - mean(dy) - xhat mean(dy xhat)) */
    float mdy = training ? (float)(sdy / n) : 0.0f, mdyx = training ? (float)(sdyx / n) : 0.0f;
    for (int b = 0; b < B; b++)
      dx_row(din + b * plane + (size_t)c * S, dout + b * plane + (size_t)c * S, in + b * plane + (size_t)c * S,
             relu_out ? relu_out + b * plane + (size_t)c * S : NULL, S, g, mdy, mu, is * mdyx, din_overwrite);
  }
}

/* The synchronised backward: dweight and dbias take this process's sums (the
 * flat gradient's allreduce adds the other processes' later); dx needs the
 * means of dy and dy * xhat over the global batch of n values, exchanged here. */
static int batchnorm_backward_sync(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                                   const float *relu_out, const float *mean, const float *invstd, const float *weight,
                                   int B, int C, int S, double n, int din_overwrite) {
  ser_comm *comm = ser_comm_get();
  if (!comm)
    return ser_error(SER_ESTATE, "batch_norm: the forward synchronised its statistics across processes, but no "
                                 "communicator is installed for the backward");
  size_t plane = (size_t)C * S, bytes = (size_t)2 * C * sizeof(double);
  double *sums = ser_alloc(bytes);
  if (!sums) return SER_ENOMEM;
#pragma omp parallel for schedule(static) if ((double)B * C * S > 32768)
  for (int c = 0; c < C; c++) {
    double sdy = 0.0, sdyx = 0.0;
    for (int b = 0; b < B; b++)
      row_dsums(dout + b * plane + (size_t)c * S, in + b * plane + (size_t)c * S,
                relu_out ? relu_out + b * plane + (size_t)c * S : NULL, S, mean[c], &sdy, &sdyx);
    sdyx *= invstd[c];
    if (dbias) dbias[c] += (float)sdy;
    if (dweight) dweight[c] += (float)sdyx;
    sums[2 * c] = sdy;
    sums[2 * c + 1] = sdyx;
  }
  int rc = comm->allreduce_f64(sums, (size_t)2 * C, comm->ctx);
  if (rc == 0 && din) {
#pragma omp parallel for schedule(static) if ((double)B * C * S > 32768)
    for (int c = 0; c < C; c++) {
      float is = invstd[c], g = is * (weight ? weight[c] : 1.0f);
      float mdy = (float)(sums[2 * c] / n), mdyx = (float)(sums[2 * c + 1] / n);
      for (int b = 0; b < B; b++)
        dx_row(din + b * plane + (size_t)c * S, dout + b * plane + (size_t)c * S, in + b * plane + (size_t)c * S,
               relu_out ? relu_out + b * plane + (size_t)c * S : NULL, S, g, mdy, mean[c], is * mdyx,
               din_overwrite);
    }
  }
  ser_free(sums, bytes);
  return rc ? ser_error(SER_EIO, "batch_norm: synchronising the gradient sums across processes failed (%d)", rc) : 0;
}

void ser_batchnorm_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                            const float *mean, const float *invstd, const float *weight, int B, int C, int S,
                            int training) {
  batchnorm_backward(din, dweight, dbias, dout, in, NULL, mean, invstd, weight, B, C, S, training, 0);
}

static int check_vec(const char *what, const ser_tensor *t, int64_t C, const ser_tensor *x) {
  if (!t) return 0;
  if (t->ndim != 1 || t->shape[0] != C)
    return ser_error(SER_EINVAL, "batch_norm: %s must be [%lld] (one per channel), got %s; input %s", what,
                     (long long)C, SER_SHAPE(t), SER_SHAPE(x));
  return 0;
}

static int batch_norm_op(ser_tensor **out, ser_tensor *x, ser_tensor *running_mean, ser_tensor *running_var,
                         ser_tensor *weight, ser_tensor *bias, int training, double momentum, double eps, int relu) {
  *out = NULL;
  if (!x) return ser_error(SER_EINVAL, "batch_norm: input is required");
  if (x->ndim < 2 || x->ndim > 4)
    return ser_error(SER_EINVAL, "batch_norm: input must be [B,C], [B,C,L] or [B,C,H,W], got %s", SER_SHAPE(x));
  int64_t B = x->shape[0], C = x->shape[1], S = 1;
  for (int i = 2; i < x->ndim; i++) S *= x->shape[i];
  if ((double)B * C * S > 2147483647.0)
    return ser_error(SER_EINVAL, "batch_norm: input %s is too large (2^31 elements at most)", SER_SHAPE(x));
  int rc;
  if ((rc = check_vec("running_mean", running_mean, C, x)) || (rc = check_vec("running_var", running_var, C, x)) ||
      (rc = check_vec("weight", weight, C, x)) || (rc = check_vec("bias", bias, C, x)))
    return rc;
  if (!training && (!running_mean || !running_var))
    return ser_error(SER_EINVAL, "batch_norm: evaluation mode needs running_mean and running_var");
  if ((running_mean && !ser_tensor_is_contiguous(running_mean)) ||
      (running_var && !ser_tensor_is_contiguous(running_var)))
    return ser_error(SER_EINVAL, "batch_norm: running statistics must be contiguous (they are updated in place)");
  if (training && B * S < 2)
    return ser_error(SER_EINVAL,
                     "batch_norm: expected more than 1 value per channel when training, got input %s", SER_SHAPE(x));
  if (!(eps > 0.0) || !(momentum >= 0.0 && momentum <= 1.0))
    return ser_error(SER_EINVAL, "batch_norm: need eps > 0 and momentum in [0, 1], got eps %g, momentum %g", eps,
                     momentum);

  ser_tensor *stats = ser_tensor_empty(2, SER_DIMS(2, C)); /* row 0 mean, row 1 invstd */
  ser_tensor *y = ser_tensor_empty(x->ndim, x->shape);
  ser_tensor *xc = ser_tensor_contiguous_raw(x);
  ser_tensor *wc = weight ? ser_tensor_contiguous_raw(weight) : NULL, *bc = bias ? ser_tensor_contiguous_raw(bias) : NULL;
  if (!stats || !y || !xc || (weight && !wc) || (bias && !bc)) {
    rc = SER_ENOMEM;
    goto done;
  }
  float *mean = ser_tensor_data(stats), *invstd = mean + C;
  const float *w = wc ? ser_tensor_data(wc) : NULL, *bb = bc ? ser_tensor_data(bc) : NULL;
  double n_global = 0.0;
  int synced = training && ser_comm_sync_batchnorm();
  if (synced) {
    rc = batchnorm_forward_train_sync(ser_tensor_data(y), mean, invstd, &n_global, ser_tensor_data(xc), w, bb,
                                      running_mean ? ser_tensor_data(running_mean) : NULL,
                                      running_var ? ser_tensor_data(running_var) : NULL, (int)B, (int)C, (int)S,
                                      (float)momentum, (float)eps, relu);
    if (rc) goto done;
  } else if (training) {
    batchnorm_forward_train(ser_tensor_data(y), mean, invstd, ser_tensor_data(xc), w, bb,
                            running_mean ? ser_tensor_data(running_mean) : NULL,
                            running_var ? ser_tensor_data(running_var) : NULL, (int)B, (int)C, (int)S,
                            (float)momentum, (float)eps, relu);
  } else {
    const float *rm = ser_tensor_data(running_mean), *rv = ser_tensor_data(running_var);
    for (int64_t c = 0; c < C; c++) {
      mean[c] = rm[c];
      invstd[c] = (float)(1.0 / sqrt((double)rv[c] + eps));
    }
    batchnorm_forward_eval(ser_tensor_data(y), ser_tensor_data(xc), mean, invstd, w, bb, (int)B, (int)C, (int)S,
                           relu);
  }
  ser_node *node = NULL;
  rc = ser_autograd_record(y, relu ? SER_OP_BATCH_NORM_RELU : SER_OP_BATCH_NORM, 3, (ser_tensor *[]){x, weight, bias},
                           &node);
  if (rc) goto done;
  if (node) {
    node->saved[0] = ser_tensor_retain(stats);
    if (relu) node->saved[1] = ser_tensor_alias(y); /* the relu mask (alias: no cycle) */
    node->iarg[0] = training;
    node->iarg[1] = synced; /* the backward exchanges its sums too, over farg[0] values per channel */
    node->farg[0] = n_global;
  }
  *out = y;
  y = NULL;
done:
  ser_tensor_release(stats);
  ser_tensor_release(y);
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  ser_tensor_release(bc);
  return rc;
}

int ser_batch_norm(ser_tensor **out, ser_tensor *x, ser_tensor *running_mean, ser_tensor *running_var,
                   ser_tensor *weight, ser_tensor *bias, int training, double momentum, double eps) {
  return batch_norm_op(out, x, running_mean, running_var, weight, bias, training, momentum, eps, 0);
}

int ser_batch_norm_relu(ser_tensor **out, ser_tensor *x, ser_tensor *running_mean, ser_tensor *running_var,
                        ser_tensor *weight, ser_tensor *bias, int training, double momentum, double eps) {
  return batch_norm_op(out, x, running_mean, running_var, weight, bias, training, momentum, eps, 1);
}

/* batch_norm and batch_norm_relu (saved[1] = the output, whose sign masks dout) */
int ser_batch_norm_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  ser_tensor *x = node->inputs[0], *w = node->inputs[1];
  int64_t B = x->shape[0], C = x->shape[1], S = 1;
  for (int i = 2; i < x->ndim; i++) S *= x->shape[i];
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wc = w ? ser_tensor_contiguous_raw(w) : NULL;
  if (!xc || (w && !wc)) {
    ser_tensor_release(xc);
    ser_tensor_release(wc);
    return SER_ENOMEM;
  }
  const float *stats = ser_tensor_data(node->saved[0]);
  if (node->iarg[1]) {
    int rc = batchnorm_backward_sync(gin[0] ? ser_tensor_data(gin[0]) : NULL,
                                     (gin[1] && w) ? ser_tensor_data(gin[1]) : NULL,
                                     (gin[2] && node->inputs[2]) ? ser_tensor_data(gin[2]) : NULL,
                                     ser_tensor_data(gout), ser_tensor_data(xc),
                                     node->saved[1] ? ser_tensor_data(node->saved[1]) : NULL, stats, stats + C,
                                     wc ? ser_tensor_data(wc) : NULL, (int)B, (int)C, (int)S, node->farg[0],
                                     (node->gin_fresh & 1u) != 0);
    ser_tensor_release(xc);
    ser_tensor_release(wc);
    return rc;
  }
  batchnorm_backward(gin[0] ? ser_tensor_data(gin[0]) : NULL,
                         (gin[1] && w) ? ser_tensor_data(gin[1]) : NULL,
                         (gin[2] && node->inputs[2]) ? ser_tensor_data(gin[2]) : NULL, ser_tensor_data(gout),
                         ser_tensor_data(xc), node->saved[1] ? ser_tensor_data(node->saved[1]) : NULL, stats,
                         stats + C, wc ? ser_tensor_data(wc) : NULL, (int)B, (int)C,
                         (int)S, (int)node->iarg[0], (node->gin_fresh & 1u) != 0);
  ser_tensor_release(xc);
  ser_tensor_release(wc);
  return 0;
}
