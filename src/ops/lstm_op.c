/* LSTM as autograd ops: one node per layer covering both directions (inputs
 * x and, per direction, w_ih, w_hh and the summed bias: at most 7, within
 * SER_NODE_MAX_INPUTS). The two directions are independent recurrences, so
 * they run on two threads; inside that parallel region OpenBLAS (the OpenMP
 * build) runs each direction's small per-step GEMMs single-threaded, which is
 * what they want: thread hand-offs cost more than a [B,4H]x[4H,H] product. */
#include <stdio.h>
#include <string.h>

#include "../autograd/autograd.h"
#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/threads.h"
#include "elementwise.h"
#include "gemm.h"
#include "lstm.h"

typedef struct lstm_ctx {
  int D;
  ser_lstm_dims d[2];
  float *gates[2]; /* [rows, 4H] activated gates per direction */
  float *cell[2];  /* [rows, H] c_t */
  float *tcell[2]; /* [rows, H] tanh c_t */
} lstm_ctx;

static size_t gates_bytes(const ser_lstm_dims *d) { return sizeof(float) * (size_t)d->B * d->T * 4 * d->H; }
static size_t cell_bytes(const ser_lstm_dims *d) { return sizeof(float) * (size_t)d->B * d->T * d->H; }

static void lstm_ctx_free(void *p) {
  lstm_ctx *c = p;
  for (int i = 0; i < c->D; i++) {
    ser_free(c->gates[i], gates_bytes(&c->d[i]));
    ser_free(c->cell[i], cell_bytes(&c->d[i]));
    ser_free(c->tcell[i], cell_bytes(&c->d[i]));
  }
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

/* Copies the last processed step's rows of buf (row stride ld) into out [B,H]. */
static void final_state(float *out, const float *buf, int64_t ld, const ser_lstm_dims *d) {
  const int t_last = d->reverse ? 0 : d->T - 1;
  for (int b = 0; b < d->B; b++) {
    const int64_t r = d->batch_first ? (int64_t)b * d->T + t_last : (int64_t)t_last * d->B + b;
    memcpy(out + (size_t)b * d->H, buf + r * ld, sizeof(float) * (size_t)d->H);
  }
}

/* Both directions concurrently when there are two and threads to run them. */
static int run_parallel(int D) { return D > 1 && ser_num_threads() > 1; }

int ser_lstm_layer(ser_tensor **h, ser_tensor **h_last, ser_tensor **c_last, ser_tensor *x, ser_tensor *const *w,
                   int D, int batch_first) {
  *h = NULL;
  if (h_last) *h_last = NULL;
  if (c_last) *c_last = NULL;
  if (D != 1 && D != 2) return ser_error(SER_EINVAL, "lstm: %d directions, expected 1 or 2", D);
  if (x->ndim != 3 && x->ndim != 2)
    return ser_error(SER_EINVAL, "lstm: input has shape %s, expected %s or unbatched [T,in]", SER_SHAPE(x),
                     batch_first ? "[B,T,in]" : "[T,B,in]");
  if (!w[0] || w[0]->ndim != 2 || w[0]->shape[0] % 4 != 0 || w[0]->shape[0] == 0)
    return ser_error(SER_EINVAL, "lstm: weight_ih has shape %s, expected [4*hidden, in]",
                     w[0] ? SER_SHAPE(w[0]) : "(missing)");
  ser_lstm_dims d[2];
  memset(d, 0, sizeof d);
  d[0].H = (int)(w[0]->shape[0] / 4);
  d[0].I = (int)x->shape[x->ndim - 1];
  d[0].batch_first = x->ndim == 3 && batch_first;
  if (x->ndim == 2) { /* unbatched: [T,in] is time-major with B = 1 */
    d[0].T = (int)x->shape[0];
    d[0].B = 1;
  } else {
    d[0].B = (int)x->shape[batch_first ? 0 : 1];
    d[0].T = (int)x->shape[batch_first ? 1 : 0];
  }
  if (d[0].B < 1 || d[0].T < 1)
    return ser_error(SER_EINVAL, "lstm: input %s has an empty batch or sequence; expected at least one step",
                     SER_SHAPE(x));
  d[0].ldh = D * d[0].H;
  d[1] = d[0];
  d[1].reverse = 1;
  const int64_t H = d[0].H, G = 4 * H;
  int rc;
  for (int dir = 0; dir < D; dir++) {
    ser_tensor *const *wd = w + 3 * dir;
    if (!wd[0] || wd[0]->ndim != 2 || wd[0]->shape[1] != d[0].I)
      return ser_error(SER_EINVAL, "lstm: input %s has %d features, weight_ih %s expects %lld", SER_SHAPE(x),
                       d[0].I, wd[0] ? SER_SHAPE(wd[0]) : "(missing)", wd[0] && wd[0]->ndim == 2 ? (long long)wd[0]->shape[1] : 0LL);
    if ((rc = check_param(wd[0], 2, G, d[0].I, "weight_ih"))) return rc;
    if ((rc = check_param(wd[1], 2, G, H, "weight_hh"))) return rc;
    if (wd[2] && (rc = check_param(wd[2], 1, G, 0, "bias"))) return rc;
  }

  ser_tensor *xc = ser_tensor_contiguous_raw(x), *wc[6] = {0};
  int64_t oshape[3];
  memcpy(oshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  oshape[x->ndim - 1] = D * H;
  ser_tensor *out = ser_tensor_empty(x->ndim, oshape);
  lstm_ctx *ctx = ser_calloc(sizeof *ctx);
  int ok = xc && out && ctx;
  if (ctx) {
    ctx->D = D;
    for (int dir = 0; dir < D; dir++) {
      ctx->d[dir] = d[dir];
      ctx->gates[dir] = ser_alloc(gates_bytes(&d[dir]));
      ctx->cell[dir] = ser_alloc(cell_bytes(&d[dir]));
      ctx->tcell[dir] = ser_alloc(cell_bytes(&d[dir]));
      ok = ok && ctx->gates[dir] && ctx->cell[dir] && ctx->tcell[dir];
    }
  }
  for (int i = 0; i < 3 * D; i++)
    if (w[i]) ok = ok && (wc[i] = ser_tensor_contiguous_raw(w[i]));
  if (!ok) {
    rc = SER_ENOMEM;
    goto done;
  }
#pragma omp parallel for num_threads(2) schedule(static, 1) if (run_parallel(D))
  for (int dir = 0; dir < D; dir++) {
    const float *b = wc[3 * dir + 2] ? ser_tensor_data(wc[3 * dir + 2]) : NULL;
    ser_lstm_dir_forward(ser_tensor_data(out) + dir * H, ctx->gates[dir], ctx->cell[dir], ctx->tcell[dir],
                         ser_tensor_data(xc),
                         ser_tensor_data(wc[3 * dir]), ser_tensor_data(wc[3 * dir + 1]), b, NULL, &d[dir]);
  }
  if (h_last || c_last) {
    const int64_t sshape[3] = {D, d[0].B, H};
    if (h_last && !(*h_last = ser_tensor_empty(3, sshape))) rc = SER_ENOMEM;
    if (c_last && !(*c_last = ser_tensor_empty(3, sshape))) rc = SER_ENOMEM;
    if (rc) goto done;
    for (int dir = 0; dir < D; dir++) {
      if (h_last)
        final_state(ser_tensor_data(*h_last) + dir * d[0].B * H, ser_tensor_data(out) + dir * H, D * H, &d[dir]);
      if (c_last) final_state(ser_tensor_data(*c_last) + dir * d[0].B * H, ctx->cell[dir], H, &d[dir]);
    }
  }
  ser_node *node;
  ser_tensor *inputs[7] = {x};
  for (int i = 0; i < 3 * D; i++) inputs[1 + i] = w[i];
  if ((rc = ser_autograd_record(out, SER_OP_LSTM, 1 + 3 * D, inputs, &node))) goto done;
  if (node) {
    if (!(node->saved[0] = ser_tensor_alias(out))) {
      rc = SER_ENOMEM;
      goto done;
    }
    node->saved[1] = xc;
    xc = NULL;
    for (int dir = 0; dir < D; dir++) { /* contiguous copies of w_ih, w_hh */
      node->saved[2 + 2 * dir] = wc[3 * dir];
      node->saved[3 + 2 * dir] = wc[3 * dir + 1];
      wc[3 * dir] = wc[3 * dir + 1] = NULL;
    }
    node->iarg[0] = D;
    node->ctx = ctx;
    node->ctx_free = lstm_ctx_free;
    ctx = NULL;
  }
done:
  ser_tensor_release(xc);
  for (int i = 0; i < 6; i++) ser_tensor_release(wc[i]);
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
  const int D = c->D;
  const ser_lstm_dims *d0 = &c->d[0];
  const int64_t H = d0->H, I = d0->I, rows = (int64_t)d0->B * d0->T;
  const size_t gb = gates_bytes(d0), sb = sizeof(float) * 2 * (size_t)d0->B * d0->H;
  float *dgates[2] = {NULL, NULL}, *dstate[2] = {NULL, NULL};
  int rc = 0;
  for (int dir = 0; dir < D; dir++)
    if (!(dgates[dir] = ser_alloc(gb)) || !(dstate[dir] = ser_alloc(sb))) rc = SER_ENOMEM;
  if (!rc) {
    /* Each direction's recurrence on its own thread; dx, which both directions
     * add into, is done after the region with full-width GEMMs. */
#pragma omp parallel for num_threads(2) schedule(static, 1) if (run_parallel(D))
    for (int dir = 0; dir < D; dir++) {
      float *g1 = gin[1 + 3 * dir] ? ser_tensor_data(gin[1 + 3 * dir]) : NULL;
      float *g2 = gin[2 + 3 * dir] ? ser_tensor_data(gin[2 + 3 * dir]) : NULL;
      float *g3 = gin[3 + 3 * dir] ? ser_tensor_data(gin[3 + 3 * dir]) : NULL;
      ser_lstm_dir_backward(NULL, g1, g2, g3, NULL, dgates[dir], dstate[dir], ser_tensor_data(gout) + dir * H,
                            c->gates[dir], c->cell[dir], c->tcell[dir], ser_tensor_data(node->saved[0]) + dir * H,
                            ser_tensor_data(node->saved[1]), ser_tensor_data(node->saved[2 + 2 * dir]),
                            ser_tensor_data(node->saved[3 + 2 * dir]), &c->d[dir]);
    }
    if (gin[0])
      for (int dir = 0; dir < D; dir++)
        ser_gemm(0, 0, (int)rows, (int)I, (int)(4 * H), 1.0f, dgates[dir], (int)(4 * H),
                 ser_tensor_data(node->saved[2 + 2 * dir]), (int)I, 1.0f, ser_tensor_data(gin[0]), (int)I);
  }
  for (int dir = 0; dir < D; dir++) {
    ser_free(dgates[dir], gb);
    ser_free(dstate[dir], sb);
  }
  return rc;
}

int ser_lstm(ser_tensor **out, ser_tensor **h_n, ser_tensor **c_n, ser_tensor *x, ser_tensor *const *weights,
             const ser_lstm_opts *o) {
  *out = NULL;
  if (h_n) *h_n = NULL;
  if (c_n) *c_n = NULL;
  if (o->num_layers < 1 || o->num_layers > 64 || o->hidden_size < 1 || o->input_size < 1)
    return ser_error(SER_EINVAL, "lstm: input_size %lld, hidden_size %lld, num_layers %d; expected sizes >= 1 and "
                     "1 to 64 layers", (long long)o->input_size, (long long)o->hidden_size, o->num_layers);
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
  const int unbatched = x->ndim == 2;
  const int64_t B = unbatched ? 1 : x->shape[o->batch_first ? 0 : 1];
  if (h_n && !(*h_n = unbatched ? ser_tensor_empty(2, SER_DIMS(L * D, H)) : ser_tensor_empty(3, SER_DIMS(L * D, B, H))))
    return SER_ENOMEM;
  if (c_n && !(*c_n = unbatched ? ser_tensor_empty(2, SER_DIMS(L * D, H)) : ser_tensor_empty(3, SER_DIMS(L * D, B, H)))) {
    ser_tensor_release(*h_n);
    return SER_ENOMEM;
  }
  ser_tensor *layer_in = ser_tensor_retain(x);
  int rc = 0;
  for (int l = 0; l < L && !rc; l++) {
    ser_tensor *w[6] = {0}, *hl = NULL, *cl = NULL, *layer_out = NULL;
    for (int dir = 0; dir < D && !rc; dir++) {
      ser_tensor *const *src = weights + (l * D + dir) * per;
      w[3 * dir] = ser_tensor_retain(src[0]);
      w[3 * dir + 1] = ser_tensor_retain(src[1]);
      /* b_ih + b_hh as a recorded add, so each bias still receives the gradient */
      if (per == 4) rc = ser_add(&w[3 * dir + 2], src[2], src[3]);
    }
    if (!rc) rc = ser_lstm_layer(&layer_out, h_n ? &hl : NULL, c_n ? &cl : NULL, layer_in, w, D, o->batch_first);
    if (!rc) {
      const size_t n = (size_t)(D * B * H);
      if (hl) memcpy(ser_tensor_data(*h_n) + (size_t)l * n, ser_tensor_data(hl), n * sizeof(float));
      if (cl) memcpy(ser_tensor_data(*c_n) + (size_t)l * n, ser_tensor_data(cl), n * sizeof(float));
    }
    for (int i = 0; i < 6; i++) ser_tensor_release(w[i]);
    ser_tensor_release(hl);
    ser_tensor_release(cl);
    ser_tensor_release(layer_in);
    layer_in = layer_out;
  }
  if (rc) {
    ser_tensor_release(layer_in);
    if (h_n) {
      ser_tensor_release(*h_n);
      *h_n = NULL;
    }
    if (c_n) {
      ser_tensor_release(*c_n);
      *c_n = NULL;
    }
    return rc;
  }
  *out = layer_in;
  return 0;
}
