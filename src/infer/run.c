/* Executing a graph plan (docs/graph.md) on core ops, without autograd: each node's output
 * is a new tensor kept until the graph ends (the graphs are small chains; the largest
 * activations are the first convolutions'). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "core/error.h"
#include "infer/graph.h"
#include "ops/ops.h"
#include "pretrained/whisper.h"

/* The Whisper encoder's hidden states of one log-mel clip x [1, n_mels, T], pooled per state:
 * [1, L+1, 2, d] (mean and population std over the clip's ceil(T/2) frames), as
 * ser.data.embedding_cache pools them. own > 0: x is a padded window whose first `own` input
 * frames are the clip's; the encoder attends over all of x, the pools cover the clip's frames. */
static int whisper_pooled(ser_tensor **out, const ser_whisper_encoder *enc, ser_tensor *x, int64_t own) {
  *out = NULL;
  const ser_whisper_config *c = &enc->cfg;
  if (x->ndim != 3 || x->shape[0] != 1 || x->shape[1] != c->n_mels)
    return ser_error(SER_EINVAL, "whisper_encoder: expected a log-mel clip [1, %d, T], got %s", c->n_mels, SER_SHAPE(x));
  int B = 1, T = (int)x->shape[2], rc = ser_whisper_encoder_check(enc, B, T, NULL);
  if (rc) return rc;
  if (own < 0 || own > T)
    return ser_error(SER_EINVAL, "whisper_encoder: the clip's %lld frames do not fit its window of %d", (long long)own, T);
  int64_t T2 = ser_whisper_encoder_frames(T), L1 = c->layers + 1, d = c->d_model;
  int64_t kept = own ? ser_whisper_encoder_frames((int)own) : T2;
  ser_tensor *xc = ser_tensor_contiguous_raw(x), *hs = ser_tensor_empty(4, SER_DIMS(L1, 1, T2, d)), *clip = NULL;
  ser_tensor *m = NULL, *dev = NULL, *sq = NULL, *var = NULL, *sd = NULL, *both = NULL, *perm = NULL;
  if (!xc || !hs) rc = ser_error(SER_ENOMEM, "whisper_encoder: out of memory");
  if (!rc) rc = ser_whisper_encoder_forward(enc, NULL, ser_tensor_data(hs), ser_tensor_data(xc), NULL, B, T);
  if (!rc) rc = ser_narrow(&clip, hs, 2, 0, kept);
  if (!rc) rc = ser_mean(&m, clip, 1u << 2, 1);
  if (!rc) rc = ser_sub(&dev, clip, m);
  if (!rc) rc = ser_mul(&sq, dev, dev);
  if (!rc) rc = ser_mean(&var, sq, 1u << 2, 1);
  if (!rc) rc = ser_sqrt(&sd, var);
  if (!rc) rc = ser_cat(&both, (ser_tensor *const[]){m, sd}, 2, 2);   /* [L+1, 1, 2, d] */
  if (!rc) rc = ser_permute(&perm, both, (const int[]){1, 0, 2, 3});
  if (!rc) rc = ser_contiguous(out, perm);
  ser_tensor *all[] = {xc, hs, clip, m, dev, sq, var, sd, both, perm};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ser_tensor_release(all[i]);
  return rc;
}

/* reshape with 0 = keep the input's dim and -1 = infer one. */
static int reshape(ser_tensor **out, ser_tensor *x, const ser_graph_node *n) {
  int64_t shape[SER_MAX_DIMS];
  for (int i = 0; i < n->nd; i++) {
    shape[i] = n->shape[i];
    if (shape[i] == 0) {
      if (i >= x->ndim)
        return ser_error(SER_EINVAL, "reshape: shape[%d] = 0 keeps dim %d, but the input is %s", i, i, SER_SHAPE(x));
      shape[i] = x->shape[i];
    }
  }
  return ser_reshape(out, x, n->nd, shape);
}

/* sqrt(var(x, dims) + eps). */
static int std_eps(ser_tensor **out, ser_tensor *x, const ser_graph_node *n) {
  ser_tensor *var = NULL, *shifted = NULL;
  int rc = ser_var(&var, x, n->dims, n->unbiased ? 1 : 0, n->keepdim);
  if (!rc) rc = ser_add_scalar(&shifted, var, (float)n->eps);
  if (!rc) rc = ser_sqrt(out, shifted);
  ser_tensor_release(var);
  ser_tensor_release(shifted);
  return rc;
}

static int dims_in_range(const ser_graph_node *n, const ser_tensor *x) {
  if (n->dims >> x->ndim)
    return ser_error(SER_EINVAL, "%s: dims reach past the input's %d dims (%s)", ser_graph_op_name(n->op), x->ndim,
                     SER_SHAPE(x));
  return 0;
}

static int lstm(ser_tensor **out, ser_tensor *x, const ser_graph_node *n) {
  ser_lstm_opts o = {n->lstm_in, n->lstm_hidden, n->lstm_layers, n->lstm_dirs == 2, 1, !n->lstm_bias};
  if (x->ndim != 3 || x->shape[2] != n->lstm_in)
    return ser_error(SER_EINVAL, "lstm: expected [B, T, %lld] (batch first), got %s", (long long)n->lstm_in, SER_SHAPE(x));
  return ser_lstm(out, NULL, NULL, x, n->t, &o);
}

static int run_node(ser_tensor **y, const ser_graph_node *n, ser_tensor *const *in, int64_t own_frames) {
  ser_tensor *x = in[0];
  switch (n->op) {
    case SER_G_CONV1D:
    case SER_G_CONV2D: {
      ser_conv_opts o = {{n->k[0][0], n->k[0][1]}, {n->k[1][0], n->k[1][1]}, {n->k[2][0], n->k[2][1]}};
      return n->op == SER_G_CONV2D ? ser_conv2d(y, x, n->t[0], n->t[1], &o) : ser_conv1d(y, x, n->t[0], n->t[1], &o);
    }
    case SER_G_BATCHNORM: return ser_batch_norm(y, x, n->t[2], n->t[3], n->t[0], n->t[1], 0, 0.1, n->eps);
    case SER_G_RELU: return ser_relu(y, x);
    case SER_G_GELU: return ser_gelu(y, x);
    case SER_G_MAXPOOL1D:
    case SER_G_MAXPOOL2D: {
      ser_pool_opts o = {{n->k[0][0], n->k[0][1]}, {n->k[1][0], n->k[1][1]}, {n->k[2][0], n->k[2][1]}};
      return n->op == SER_G_MAXPOOL2D ? ser_max_pool2d(y, NULL, x, &o) : ser_max_pool1d(y, NULL, x, &o);
    }
    case SER_G_AVGPOOL1D:
    case SER_G_AVGPOOL2D: {   /* padding counts as zeros, as PyTorch's count_include_pad */
      ser_pool_opts o = {{n->k[0][0], n->k[0][1]}, {n->k[1][0], n->k[1][1]}, {n->k[2][0], n->k[2][1]}};
      return n->op == SER_G_AVGPOOL2D ? ser_avg_pool2d(y, x, &o) : ser_avg_pool1d(y, x, &o);
    }
    case SER_G_LOG: {
      if (n->eps == 0) return ser_log(y, x);
      ser_tensor *shifted = NULL;
      int rc = ser_add_scalar(&shifted, x, (float)n->eps);
      if (!rc) rc = ser_log(y, shifted);
      ser_tensor_release(shifted);
      return rc;
    }
    case SER_G_AAPOOL1D:
    case SER_G_AAPOOL2D: {   /* an output size of 0 keeps that axis (docs/graph.md) */
      const int sp = n->op == SER_G_AAPOOL2D ? 2 : 1;
      if (x->ndim != sp + 2)
        return ser_error(SER_EINVAL, "adaptive_avgpool%dd: expected a %d-d input, got %s", sp, sp + 2, SER_SHAPE(x));
      int o[2];
      for (int i = 0; i < sp; i++) o[i] = n->shape[i] ? (int)n->shape[i] : (int)x->shape[2 + i];
      return sp == 2 ? ser_adaptive_avg_pool2d(y, x, o[0], o[1]) : ser_adaptive_avg_pool1d(y, x, o[0]);
    }
    case SER_G_FLATTEN:
      if (n->start_dim >= x->ndim)
        return ser_error(SER_EINVAL, "flatten: start_dim %d is past the input's dims (%s)", n->start_dim, SER_SHAPE(x));
      return ser_flatten(y, x, n->start_dim, x->ndim - 1);
    case SER_G_LINEAR: return ser_linear(y, x, n->t[0], n->t[1]);
    case SER_G_LSTM: return lstm(y, x, n);
    case SER_G_TRANSPOSE:
      if (n->nd != x->ndim)
        return ser_error(SER_EINVAL, "transpose: perm has %d entries for an input of %d dims (%s)", n->nd, x->ndim,
                         SER_SHAPE(x));
      return ser_permute(y, x, n->perm);
    case SER_G_RESHAPE: return reshape(y, x, n);
    case SER_G_MEAN: return dims_in_range(n, x) ? SER_EINVAL : ser_mean(y, x, n->dims, n->keepdim);
    case SER_G_SUM: return dims_in_range(n, x) ? SER_EINVAL : ser_sum(y, x, n->dims, n->keepdim);
    case SER_G_STD: return dims_in_range(n, x) ? SER_EINVAL : std_eps(y, x, n);
    case SER_G_CONCAT: return ser_cat(y, in, n->n_in, n->axis);
    case SER_G_LAYERNORM: return ser_layer_norm(y, x, n->t[0], n->t[1], n->eps);
    case SER_G_SOFTMAX:
      if (n->axis >= x->ndim) return ser_error(SER_EINVAL, "softmax: axis %d of %s", n->axis, SER_SHAPE(x));
      return ser_softmax(y, x, n->axis);
    case SER_G_PARAM: return ser_tensor_view_raw(y, n->t[0], n->nd, n->shape);
    case SER_G_ADD: return ser_add(y, in[0], in[1]);
    case SER_G_SUB: return ser_sub(y, in[0], in[1]);
    case SER_G_MUL: return ser_mul(y, in[0], in[1]);
    case SER_G_DIV: return ser_div(y, in[0], in[1]);
    case SER_G_SLICE:
      if (n->axis >= x->ndim || n->start + n->length > x->shape[n->axis])
        return ser_error(SER_EINVAL, "slice: axis %d, %lld values from %lld, of %s", n->axis, (long long)n->length,
                         (long long)n->start, SER_SHAPE(x));
      return ser_narrow(y, x, n->axis, n->start, n->length);
    case SER_G_WHISPER: return whisper_pooled(y, n->enc, x, own_frames);
    default: return ser_error(SER_EUNSUPPORTED, "graph op %d cannot run", (int)n->op);
  }
}

/* The whisper_encoder node's output x speaker-normalised, (x - shift) * scale, as a new tensor
 * *y; x is only read. */
static int speaker_normalised(ser_tensor **y, const ser_tensor *x, const ser_graph_run_opts *o) {
  if (ser_tensor_numel(x) != o->n_norm)
    return ser_error(SER_EINVAL, "speaker normalisation: %lld statistics for the encoder's %s output", (long long)o->n_norm,
                     SER_SHAPE(x));
  ser_tensor *c = ser_tensor_clone_raw(x);
  if (!c) return ser_error(SER_ENOMEM, "speaker normalisation: out of memory");
  float *d = ser_tensor_data(c);
  for (int64_t i = 0; i < o->n_norm; i++) d[i] = (d[i] - o->shift[i]) * o->scale[i];
  *y = c;
  return 0;
}

/* The index of the graph's whisper_encoder node, or -1. */
static int whisper_node(const ser_graph *g) {
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i].op == SER_G_WHISPER) return i;
  return -1;
}

int ser_graph_run(ser_tensor **out, const ser_graph *g, ser_tensor *x, const ser_graph_run_opts *o) {
  static const ser_graph_run_opts none;
  if (!o) o = &none;
  *out = NULL;
  int first = 0;
  if (o->from_encoder) {
    if ((first = whisper_node(g)) < 0) return ser_error(SER_EINVAL, "graph: no whisper_encoder node to start after");
    first++;
  }
  ser_tensor **v = calloc((size_t)g->n_values, sizeof *v);
  if (!v) return ser_error(SER_ENOMEM, "graph: out of memory");
  int prev = ser_set_grad_enabled(0), rc = 0, result = g->output, stopped = 0;
  if (o->from_encoder) {
    /* x stands for the encoder node's output ("input" was never given). It is copied, never
     * retained: a ser_speaker's kept values are read by every thread predicting with it, and
     * a tensor's reference count is not atomic. */
    ser_tensor **enc_out = &v[g->nodes[first - 1].out];
    if (o->shift) rc = speaker_normalised(enc_out, x, o);
    else if (!(*enc_out = ser_tensor_clone_raw(x))) rc = ser_error(SER_ENOMEM, "graph: out of memory");
  } else {
    v[0] = ser_tensor_retain(x);
  }
  for (int i = first; i < g->n_nodes && rc == 0; i++) {
    const ser_graph_node *n = &g->nodes[i];
    ser_tensor *in[SER_GRAPH_MAX_INPUTS];
    for (int k = 0; k < n->n_in && rc == 0; k++)
      if (!(in[k] = v[n->in[k]]))   /* only when started after the encoder */
        rc = ser_error(SER_EINVAL, "graph node %d (%s) reads %s, which is computed before the whisper_encoder node", i,
                       ser_graph_op_name(n->op), g->values[n->in[k]]);
    if (rc) break;
    rc = run_node(&v[n->out], n, n->n_in ? in : (ser_tensor *[]){x}, o->own_frames);
    if (rc == 0 && n->op == SER_G_WHISPER && o->until_encoder) {
      result = n->out;
      stopped = 1;
      break;
    }
    if (rc == 0 && n->op == SER_G_WHISPER && o->shift) {
      ser_tensor *normalised = NULL;
      if ((rc = speaker_normalised(&normalised, v[n->out], o)) == 0) {
        ser_tensor_release(v[n->out]);
        v[n->out] = normalised;
      }
    }
    if (rc < 0) ser_error_prefix(rc, "graph node %d (%s -> %s)", i, ser_graph_op_name(n->op), g->values[n->out]);
  }
  ser_set_grad_enabled(prev);
  if (rc == 0 && o->until_encoder && !stopped)
    rc = ser_error(SER_EINVAL, "graph: no whisper_encoder node to stop at");
  if (rc == 0) *out = ser_tensor_retain(v[result]);
  for (int i = 0; i < g->n_values; i++) ser_tensor_release(v[i]);
  free(v);
  return rc;
}
