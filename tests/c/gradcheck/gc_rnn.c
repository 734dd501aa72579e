/* Finite-difference checks of the LSTM and the losses. The LSTM cases cover
 * both row layouts (batch_first and time-major), both directions, a second
 * layer reading the concatenated first layer, and bias=False. */
#include "gradcheck.h"

#define EPS 1e-2
#define TOL 2e-2

typedef struct lstm_case {
  ser_lstm_opts o;
} lstm_case;

static int f_lstm(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  const lstm_case *c = ctx;
  return ser_lstm(out, NULL, NULL, in[0], in + 1, &c->o);
}

static void check_lstm(const ser_lstm_opts *o, int B, int T) {
  lstm_case c = {*o};
  const int nw = ser_lstm_num_weights(o), D = o->bidirectional ? 2 : 1, per = o->no_bias ? 2 : 4;
  ser_tensor *in[1 + 64];
  const int64_t I = o->input_size, H = o->hidden_size;
  in[0] = o->batch_first ? gc_randn(3, SER_DIMS(B, T, I), 1) : gc_randn(3, SER_DIMS(T, B, I), 1);
  for (int i = 0; i < nw; i++) {
    const int kind = i % per, layer = i / (per * D);
    const int64_t in_w = layer == 0 ? I : D * H;
    in[1 + i] = kind == 0   ? gc_uniform(2, SER_DIMS(4 * H, in_w), -0.6f, 0.6f, 1)
                : kind == 1 ? gc_uniform(2, SER_DIMS(4 * H, H), -0.6f, 0.6f, 1)
                            : gc_uniform(1, SER_DIMS(4 * H), -0.6f, 0.6f, 1);
  }
  gc_assert(f_lstm, &c, 1 + nw, in, EPS, TOL);
  gc_release(1 + nw, in);
}

GRADCHECK_CASE(LSTM, lstm_bidirectional_two_layers_batch_first) {
  ser_lstm_opts o = {.input_size = 3, .hidden_size = 2, .num_layers = 2, .bidirectional = 1, .batch_first = 1};
  check_lstm(&o, 2, 4);
}

GRADCHECK_CASE(LSTM, lstm_time_major_no_bias) {
  ser_lstm_opts o = {.input_size = 2, .hidden_size = 3, .num_layers = 1, .bidirectional = 1, .no_bias = 1};
  check_lstm(&o, 3, 3);
}

/* One direction, unbatched [T, in] input (time-major with B = 1). */
GRADCHECK_CASE(LSTM, lstm_unidirectional_unbatched) {
  ser_lstm_opts o = {.input_size = 3, .hidden_size = 4, .num_layers = 1};
  lstm_case c = {o};
  ser_tensor *in[5] = {gc_randn(2, SER_DIMS(5, 3), 1), gc_uniform(2, SER_DIMS(16, 3), -0.6f, 0.6f, 1),
                       gc_uniform(2, SER_DIMS(16, 4), -0.6f, 0.6f, 1), gc_uniform(1, SER_DIMS(16), -0.6f, 0.6f, 1),
                       gc_uniform(1, SER_DIMS(16), -0.6f, 0.6f, 1)};
  gc_assert(f_lstm, &c, 5, in, EPS, TOL);
  gc_release(5, in);
}

/* Targets: 0-based classes, one per row. */
static ser_tensor *targets_of(int n, const float *v) { return ser_tensor_from_data(1, SER_DIMS(n), v); }

typedef struct ce_case {
  ser_tensor *targets, *weight;
  double ls;
} ce_case;

static int f_ce(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  const ce_case *c = ctx;
  return ser_cross_entropy(out, in[0], c->targets, c->weight, c->ls);
}
static int f_nll(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  const ce_case *c = ctx;
  return ser_nll_loss(out, in[0], c->targets, c->weight);
}

GRADCHECK_CASE(CROSS_ENTROPY, cross_entropy_weight_and_smoothing) {
  const float y[5] = {0, 3, 3, 1, 2};
  ce_case c = {targets_of(5, y), gc_uniform(1, SER_DIMS(4), 0.2f, 2.0f, 0), 0.15};
  ser_tensor *z = gc_randn(2, SER_DIMS(5, 4), 1);
  gc_assert(f_ce, &c, 1, &z, EPS, TOL);
  c.weight = (ser_tensor_release(c.weight), NULL);
  c.ls = 0;
  gc_assert(f_ce, &c, 1, &z, EPS, TOL);
  gc_release(2, (ser_tensor *[]){z, c.targets});
}

GRADCHECK_CASE(NLL_LOSS, nll_loss_weighted) {
  const float y[4] = {2, 0, 1, 2};
  ce_case c = {targets_of(4, y), gc_uniform(1, SER_DIMS(3), 0.2f, 2.0f, 0), 0};
  ser_tensor *z = gc_randn(2, SER_DIMS(4, 3), 1);
  gc_assert(f_nll, &c, 1, &z, EPS, TOL);
  gc_release(3, (ser_tensor *[]){z, c.targets, c.weight});
}

static int f_mse(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_mse_loss(out, in[0], in[1]); }

GRADCHECK_CASE(MSE_LOSS, mse_loss_both_sides) {
  ser_tensor *a = gc_randn(2, SER_DIMS(3, 4), 1), *b = gc_randn(2, SER_DIMS(3, 4), 1);
  gc_assert(f_mse, NULL, 2, (ser_tensor *[]){a, b}, EPS, TOL);
  gc_release(2, (ser_tensor *[]){a, b});
}
