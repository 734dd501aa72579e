/* Batch normalisation over [B, C, S] (S = H*W for BatchNorm2d, L for
 * BatchNorm1d on [B,C,L], 1 for BatchNorm1d on [B,C]); PyTorch 1.13 semantics.
 *
 * Training: each channel is normalised with the batch mean and the BIASED
 * variance over its n = B*S values; the running statistics are updated in
 * place with the UNBIASED variance:
 *   rm = (1-m) rm + m mean,   rv = (1-m) rv + m var * n/(n-1).
 * Evaluation: the running statistics normalise, nothing is updated. */
#ifndef SER_OPS_BATCHNORM_H
#define SER_OPS_BATCHNORM_H

#include "../autograd/autograd.h"
#include "../core/tensor.h"

/* Training forward. out, in [B,C,S]; weight, bias [C] or NULL (affine off);
 * running_mean, running_var [C] or NULL (not tracked), updated in place;
 * writes the batch mean and 1/sqrt(var+eps) into mean[C], invstd[C]. */
void ser_batchnorm_forward_train(float *out, float *mean, float *invstd, const float *in, const float *weight,
                                 const float *bias, float *running_mean, float *running_var, int B, int C, int S,
                                 float momentum, float eps);
/* Evaluation forward with given statistics: out = (in - mean) * invstd * w + b. */
void ser_batchnorm_forward_eval(float *out, const float *in, const float *mean, const float *invstd,
                                const float *weight, const float *bias, int B, int C, int S);
/* ACCUMULATES din [B,C,S], dweight [C], dbias [C] (any may be NULL) from dout.
 * mean/invstd are the statistics the forward used; `training` says whether
 * they were the batch's (then they depend on the input) or constants. */
void ser_batchnorm_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                            const float *mean, const float *invstd, const float *weight, int B, int C, int S,
                            int training);

/* Autograd op. x is [B,C], [B,C,L] or [B,C,H,W]; running stats [C] contiguous
 * (may be NULL when training: not tracked); weight/bias [C] or NULL.
 * Gradients flow to x, weight, bias; the running stats are buffers. */
int ser_batch_norm(ser_tensor **out, ser_tensor *x, ser_tensor *running_mean, ser_tensor *running_var,
                   ser_tensor *weight, ser_tensor *bias, int training, double momentum, double eps);
/* relu(batch_norm(...)) in one op: one pass instead of two forward and
 * backward, and no intermediate tensor (nn.Sequential uses it for a
 * BatchNorm followed by a ReLU). Values and gradients equal the two ops'. */
int ser_batch_norm_relu(ser_tensor **out, ser_tensor *x, ser_tensor *running_mean, ser_tensor *running_var,
                        ser_tensor *weight, ser_tensor *bias, int training, double momentum, double eps);
int ser_batch_norm_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
