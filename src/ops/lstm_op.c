/* LSTM as autograd ops: one node per layer and direction (inputs x, w_ih, w_hh,
 * b_ih, b_hh), the directions joined with ser_cat. One node per direction keeps
 * every node within SER_NODE_MAX_INPUTS and lets layer k+1 see layer k's
 * output as an ordinary tensor. */
#include <stdio.h>
#include <string.h>

#include "../autograd/autograd.h"
#include "../core/alloc.h"
#include "../core/error.h"
#include "lstm.h"
#include "shape.h"

typedef struct lstm_ctx {
  ser_lstm_dims d;
  float *gates; /* [rows, 4H] activated gates */
  float *cell;  /* [rows, H] */
} lstm_ctx;

static size_t gates_bytes(const ser_lstm_dims *d) { return sizeof(float) * (size_t)d->B * d->T * 4 * d->H; }
static size_t cell_bytes(const ser_lstm_dims *d) { return sizeof(float) * (size_t)d->B * d->T * d->H; }

static void lstm_ctx_free(void *p) {
  lstm_ctx *c = p;
  ser_free(c->gates, gates_bytes(&c->d));
  ser_free(c->cell, cell_bytes(&c->d));
  ser_free(c, sizeof *c);
}

int ser_lstm_num_weights(const ser_lstm_opts *o) {
  return o->num_layers * (o->bidirectional ? 2 : 1) * (o->no_bias ? 2 : 4);
}

const char *ser_lstm_weight_name(const ser_lstm_opts *o, int i, char *buf, int bufsize) {
  static const char *kinds[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
  const int per = o->no_bias ? 2 : 4, D = o->bidirectional ? 2 : 1;
  const int kind = i % per, dir = (i / per) % D, layer = i / (per * D);
  snprintf(buf, (size_t)bufsize, "%s_l%d%s", kinds[kind], layer, dir ? "_reverse" : "");
  return buf;
}

static int check_param(const ser_tensor *w, int ndim, int64_t d0, int64_t d1, const char *what) {
  if (!w) return ser_error(SER_EINVAL, "lstm: %s is missing", what);
  if (w->ndim != ndim || w->shape[0] != d0 || (ndim == 2 && w->shape[1] != d1)) {
    if (ndim == 2)
      return ser_error(SER_EINVAL, "lstm: %s has shape %s, expected [%lld,%lld]", what, SER_SHAPE(w), (long long)d0,
                       (long long)d1);
    return ser_error(SER_EINVAL, "lstm: %s has shape %s, expected [%lld]", what, SER_SHAPE(w), (long long)d0);
  }
  return 0;
}

/* Copies the rows of the last processed step into a new [B,H] tensor. */
static ser_tensor *final_state(const float *buf, const ser_lstm_dims *d) {
  ser_tensor *t = ser_tensor_empty(2, SER_DIMS(d->B, d->H));
  if (!t) return NULL;
  const int t_last = d->reverse ? 0 : d->T - 1;
  for (int b = 0; b < d->B; b++) {
    const int64_t r = d->batch_first ? (int64_t)b * d->T + t_last : (int64_t)t_last * d->B + b;
    memcpy(ser_tensor_data(t) + (size_t)b * d->H, buf + r * d->H, sizeof(float) * (size_t)d->H);
  }
  return t;
}

int ser_lstm_layer(ser_tensor **h, ser_tensor **h_last, ser_tensor **c_last, ser_tensor *x, ser_tensor *w_ih,
                   ser_tensor *w_hh, ser_tensor *b_ih, ser_tensor *b_hh, int batch_first, int reverse) {
  *h = NULL;
  if (h_last) *h_last = NULL;
  if (c_last) *c_last = NULL;
  if (x->ndim != 3 && x->ndim != 2)
    return ser_error(SER_EINVAL, "lstm: input has shape %s, expected %s or unbatched [T,in]", SER_SHAPE(x),
                     batch_first ? "[B,T,in]" : "[T,B,in]");
  if (!w_ih || w_ih->ndim != 2 || w_ih->shape[0] % 4 != 0 || w_ih->shape[0] == 0)
    return ser_error(SER_EINVAL, "lstm: weight_ih has shape %s, expected [4*hidden, in]",
                     w_ih ? SER_SHAPE(w_ih) : "(missing)");
  ser_lstm_dims d;
  d.H = (int)(w_ih->shape[0] / 4);
  d.I = (int)x->shape[x->ndim - 1];
  d.batch_first = x->ndim == 3 && batch_first;
  d.reverse = reverse;
  if (x->ndim == 2) { /* unbatched: [T,in] is time-major with B = 1 */
    d.T = (int)x->shape[0];
    d.B = 1;
  } else {
    d.B = (int)x->shape[batch_first ? 0 : 1];
    d.T = (int)x->shape[batch_first ? 1 : 0];
  }
  if (d.B < 1 || d.T < 1)
    return ser_error(SER_EINVAL, "lstm: input %s has an empty batch or sequence; expected at least one step",
                     SER_SHAPE(x));
  int rc;
  if (w_ih->shape[1] != d.I)
    return ser_error(SER_EINVAL, "lstm: input %s has %d features, weight_ih %s expects %lld", SER_SHAPE(x), d.I,
                     SER_SHAPE(w_ih), (long long)w_ih->shape[1]);
  if ((rc = check_param(w_hh, 2, 4 * (int64_t)d.H, d.H, "weight_hh"))) return rc;
  if (b_ih && (rc = check_param(b_ih, 1, 4 * (int64_t)d.H, 0, "bias_ih"))) return rc;
  if (b_hh && (rc = check_param(b_hh, 1, 4 * (int64_t)d.H, 0, "bias_hh"))) return rc;

  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wi = ser_tensor_contiguous_raw(w_ih),
             *wh = ser_tensor_contiguous_raw(w_hh);
  ser_tensor *bi = b_ih ? ser_tensor_contiguous_raw(b_ih) : NULL, *bh = b_hh ? ser_tensor_contiguous_raw(b_hh) : NULL;
  int64_t oshape[3];
  memcpy(oshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  oshape[x->ndim - 1] = d.H;
  ser_tensor *out = ser_tensor_empty(x->ndim, oshape);
  lstm_ctx *ctx = ser_calloc(sizeof *ctx);
  if (ctx) {
    ctx->d = d;
    ctx->gates = ser_alloc(gates_bytes(&d));
    ctx->cell = ser_alloc(cell_bytes(&d));
  }
  if (!xc || !wi || !wh || (b_ih && !bi) || (b_hh && !bh) || !out || !ctx || !ctx->gates || !ctx->cell) {
    rc = SER_ENOMEM;
    goto done;
  }
  ser_lstm_dir_forward(ser_tensor_data(out), ctx->gates, ctx->cell, ser_tensor_data(xc), ser_tensor_data(wi),
                       ser_tensor_data(wh), bi ? ser_tensor_data(bi) : NULL, bh ? ser_tensor_data(bh) : NULL, &d);
  if (h_last && !(*h_last = final_state(ser_tensor_data(out), &d))) {
    rc = SER_ENOMEM;
    goto done;
  }
  if (c_last && !(*c_last = final_state(ctx->cell, &d))) {
    rc = SER_ENOMEM;
    goto done;
  }
  ser_node *node;
  ser_tensor *inputs[5] = {x, w_ih, w_hh, b_ih, b_hh};
  if ((rc = ser_autograd_record(out, SER_OP_LSTM, 5, inputs, &node))) goto done;
  if (node) {
    ser_tensor *h_alias = ser_tensor_alias(out);
    if (!h_alias) {
      rc = SER_ENOMEM;
      goto done;
    }
    node->saved[0] = h_alias;
    node->saved[1] = xc;
    node->saved[2] = wi;
    node->saved[3] = wh;
    xc = wi = wh = NULL;
    node->ctx = ctx;
    node->ctx_free = lstm_ctx_free;
    ctx = NULL;
  }
done:
  ser_tensor_release(xc);
  ser_tensor_release(wi);
  ser_tensor_release(wh);
  ser_tensor_release(bi);
  ser_tensor_release(bh);
  if (ctx) lstm_ctx_free(ctx);
  if (rc) {
    ser_tensor_release(out);
    if (h_last) {
      ser_tensor_release(*h_last);
      *h_last = NULL;
    }
    if (c_last) {
      ser_tensor_release(*c_last);
      *c_last = NULL;
    }
    return rc;
  }
  *h = out;
  return 0;
}

int ser_lstm_backward(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  const lstm_ctx *c = node->ctx;
  const ser_lstm_dims *d = &c->d;
  float *dgates = ser_alloc(gates_bytes(d));
  float *dstate = ser_alloc(sizeof(float) * 2 * (size_t)d->B * d->H);
  if (!dgates || !dstate) {
    ser_free(dgates, gates_bytes(d));
    ser_free(dstate, sizeof(float) * 2 * (size_t)d->B * d->H);
    return SER_ENOMEM;
  }
  float *g[5];
  for (int i = 0; i < 5; i++) g[i] = gin[i] ? ser_tensor_data(gin[i]) : NULL;
  ser_lstm_dir_backward(g[0], g[1], g[2], g[3], g[4], dgates, dstate, ser_tensor_data(gout), c->gates, c->cell,
                        ser_tensor_data(node->saved[0]), ser_tensor_data(node->saved[1]),
                        ser_tensor_data(node->saved[2]), ser_tensor_data(node->saved[3]), d);
  ser_free(dgates, gates_bytes(d));
  ser_free(dstate, sizeof(float) * 2 * (size_t)d->B * d->H);
  return 0;
}

/* Stacks L*D final states [B,H] into [L*D, B, H] (or [L*D, H] unbatched). */
static int stack_states(ser_tensor **out, ser_tensor **parts, int n, int unbatched) {
  const int64_t B = parts[0]->shape[0], H = parts[0]->shape[1];
  *out = unbatched ? ser_tensor_empty(2, SER_DIMS(n, H)) : ser_tensor_empty(3, SER_DIMS(n, B, H));
  if (!*out) return SER_ENOMEM;
  for (int i = 0; i < n; i++)
    memcpy(ser_tensor_data(*out) + (size_t)i * B * H, ser_tensor_data(parts[i]), sizeof(float) * (size_t)(B * H));
  return 0;
}

int ser_lstm(ser_tensor **out, ser_tensor **h_n, ser_tensor **c_n, ser_tensor *x, ser_tensor *const *weights,
             const ser_lstm_opts *o) {
  *out = NULL;
  if (h_n) *h_n = NULL;
  if (c_n) *c_n = NULL;
  if (o->num_layers < 1 || o->hidden_size < 1 || o->input_size < 1)
    return ser_error(SER_EINVAL, "lstm: input_size %lld, hidden_size %lld, num_layers %d; expected all >= 1",
                     (long long)o->input_size, (long long)o->hidden_size, o->num_layers);
  if ((x->ndim != 3 && x->ndim != 2) || x->shape[x->ndim - 1] != o->input_size)
    return ser_error(SER_EINVAL, "lstm: input has shape %s, expected %s with in = input_size %lld (or unbatched [T,%lld])",
                     SER_SHAPE(x), o->batch_first ? "[B,T,in]" : "[T,B,in]", (long long)o->input_size,
                     (long long)o->input_size);
  const int D = o->bidirectional ? 2 : 1, per = o->no_bias ? 2 : 4, L = o->num_layers;
  const int64_t H = o->hidden_size;
  char name[64];
  for (int i = 0; i < ser_lstm_num_weights(o); i++) {
    const int kind = i % per, layer = i / (per * D);
    const int64_t in = layer == 0 ? o->input_size : D * H;
    ser_lstm_weight_name(o, i, name, sizeof name);
    const int rc = kind == 0   ? check_param(weights[i], 2, 4 * H, in, name)
                   : kind == 1 ? check_param(weights[i], 2, 4 * H, H, name)
                               : check_param(weights[i], 1, 4 * H, 0, name);
    if (rc) return rc;
  }

  ser_tensor *hs[2 * 64] = {0}, *cs[2 * 64] = {0}; /* final states per layer and direction */
  if (L * D > 2 * 64) return ser_error(SER_EINVAL, "lstm: num_layers %d exceeds the supported 64", L);
  ser_tensor *layer_in = ser_tensor_retain(x), *layer_out = NULL;
  int rc = 0;
  for (int l = 0; l < L && !rc; l++) {
    ser_tensor *dir_out[2] = {NULL, NULL};
    for (int dir = 0; dir < D && !rc; dir++) {
      ser_tensor *const *w = weights + (l * D + dir) * per;
      rc = ser_lstm_layer(&dir_out[dir], h_n ? &hs[l * D + dir] : NULL, c_n ? &cs[l * D + dir] : NULL, layer_in,
                          w[0], w[1], per == 4 ? w[2] : NULL, per == 4 ? w[3] : NULL, o->batch_first, dir);
    }
    if (!rc) {
      if (D == 2)
        rc = ser_cat(&layer_out, dir_out, 2, layer_in->ndim - 1);
      else
        layer_out = ser_tensor_retain(dir_out[0]);
    }
    ser_tensor_release(dir_out[0]);
    ser_tensor_release(dir_out[1]);
    ser_tensor_release(layer_in);
    layer_in = layer_out;
    layer_out = NULL;
  }
  if (!rc && h_n) rc = stack_states(h_n, hs, L * D, x->ndim == 2);
  if (!rc && c_n) rc = stack_states(c_n, cs, L * D, x->ndim == 2);
  for (int i = 0; i < L * D; i++) {
    ser_tensor_release(hs[i]);
    ser_tensor_release(cs[i]);
  }
  if (rc) {
    ser_tensor_release(layer_in);
    if (h_n) {
      ser_tensor_release(*h_n);
      *h_n = NULL;
    }
    return rc;
  }
  *out = layer_in;
  return 0;
}
