/* LSTM: PyTorch parity (../shared/fixtures/lstm_*: LSTM(4, 3, batch_first=True,
 * bidirectional=True), x [2,6,4]) through the autograd op, layout equivalence,
 * h_n / c_n, no-grad mode and the error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fixture.h"

static const char *wnames[8] = {"weight_ih_l0",         "weight_hh_l0",         "bias_ih_l0",
                                "bias_hh_l0",           "weight_ih_l0_reverse", "weight_hh_l0_reverse",
                                "bias_ih_l0_reverse",   "bias_hh_l0_reverse"};

static ser_tensor *load_weight(int i) {
  char name[64];
  snprintf(name, sizeof name, "lstm_%s", wnames[i]);
  return (i % 4) < 2 ? fixture_tensor(name, 2, SER_DIMS(12, (i % 4) == 0 ? 4 : 3)) : fixture_tensor(name, 1, SER_DIMS(12));
}

static const ser_lstm_opts fixture_opts = {.input_size = 4, .hidden_size = 3, .num_layers = 1, .bidirectional = 1,
                                           .batch_first = 1};

static void fixture_parity(void **state) {
  ser_tensor *x = fixture_tensor("lstm_x", 3, SER_DIMS(2, 6, 4));
  ser_tensor *R = fixture_tensor("lstm_R", 3, SER_DIMS(2, 6, 6));
  ser_tensor *w[8];
  for (int i = 0; i < 8; i++) {
    w[i] = load_weight(i);
    w[i]->requires_grad = 1;
  }
  x->requires_grad = 1;
  ser_tensor *out, *hn, *cn;
  assert_int_equal(ser_lstm(&out, &hn, &cn, x, w, &fixture_opts), 0);
  assert_int_equal(out->ndim, 3);
  assert_int_equal(out->shape[2], 6);
  float *want = fixture_require("lstm_out", 72);
  ser_tensor *oc = ser_tensor_contiguous_raw(out);
  assert_close_abs("out", ser_tensor_data(oc), want, 72, 1e-5);
  free(want);
  want = fixture_require("lstm_h_n", 12);
  assert_close_abs("h_n", ser_tensor_data(hn), want, 12, 1e-5);
  free(want);
  want = fixture_require("lstm_c_n", 12);
  assert_close_abs("c_n", ser_tensor_data(cn), want, 12, 1e-5);
  free(want);
  assert_false(hn->requires_grad);

  assert_int_equal(ser_backward(out, R, 0), 0);
  want = fixture_require("lstm_dx", 48);
  assert_close_abs("dx", ser_tensor_data(x->grad), want, 48, 1e-4);
  assert_close_rel("dx rel", ser_tensor_data(x->grad), want, 48, 1e-2, 1e-3);
  free(want);
  for (int i = 0; i < 8; i++) {
    char name[64];
    snprintf(name, sizeof name, "lstm_d%s", wnames[i]);
    const size_t n = (size_t)ser_tensor_numel(w[i]);
    want = fixture_require(name, n);
    assert_non_null(w[i]->grad);
    assert_close_abs(name, ser_tensor_data(w[i]->grad), want, n, 1e-4);
    assert_close_rel(name, ser_tensor_data(w[i]->grad), want, n, 1e-2, 1e-3);
    free(want);
  }
  ser_tensor_release(oc);
  for (int i = 0; i < 8; i++) ser_tensor_release(w[i]);
  ser_tensor_release(out);
  ser_tensor_release(hn);
  ser_tensor_release(cn);
  ser_tensor_release(x);
  ser_tensor_release(R);
}

/* The time-major path must give the same numbers as batch_first on the transposed input. */
static void time_major_matches_batch_first(void **state) {
  ser_tensor *x = fixture_tensor("lstm_x", 3, SER_DIMS(2, 6, 4));
  ser_tensor *w[8];
  for (int i = 0; i < 8; i++) w[i] = load_weight(i);
  ser_tensor *xt_view, *xt;
  assert_int_equal(ser_tensor_permute_raw(&xt_view, x, (const int[]){1, 0, 2}), 0);
  xt = ser_tensor_clone_raw(xt_view);
  ser_lstm_opts o = fixture_opts;
  o.batch_first = 0;
  ser_tensor *out_bf, *out_tm, *hn_bf, *hn_tm;
  assert_int_equal(ser_lstm(&out_bf, &hn_bf, NULL, x, w, &fixture_opts), 0);
  assert_int_equal(ser_lstm(&out_tm, &hn_tm, NULL, xt_view, w, &o), 0); /* non-contiguous input too */
  assert_int_equal(out_tm->shape[0], 6);
  assert_int_equal(out_tm->shape[1], 2);
  for (int b = 0; b < 2; b++)
    for (int t = 0; t < 6; t++)
      for (int j = 0; j < 6; j++)
        assert_float_equal(ser_tensor_get_flat(out_bf, (b * 6 + t) * 6 + j), ser_tensor_get_flat(out_tm, (t * 2 + b) * 6 + j),
                           1e-6);
  for (int i = 0; i < 12; i++) assert_float_equal(ser_tensor_data(hn_bf)[i], ser_tensor_data(hn_tm)[i], 1e-6);
  for (int i = 0; i < 8; i++) ser_tensor_release(w[i]);
  ser_tensor_release(out_bf);
  ser_tensor_release(out_tm);
  ser_tensor_release(hn_bf);
  ser_tensor_release(hn_tm);
  ser_tensor_release(xt_view);
  ser_tensor_release(xt);
  ser_tensor_release(x);
}

/* Unbatched [T, in] equals batch 1. */
static void unbatched_equals_batch_of_one(void **state) {
  ser_rng rng;
  ser_rng_seed(&rng, 7);
  ser_tensor *x = ser_tensor_empty(2, SER_DIMS(5, 4)), *w[8];
  ser_tensor_fill_normal(x, 0, 1, &rng);
  for (int i = 0; i < 8; i++) {
    w[i] = (i % 4) < 2 ? ser_tensor_empty(2, SER_DIMS(12, (i % 4) == 0 ? 4 : 3)) : ser_tensor_empty(1, SER_DIMS(12));
    ser_tensor_fill_uniform(w[i], -0.5f, 0.5f, &rng);
  }
  ser_tensor *x3, *o2, *o3, *h2, *h3;
  assert_int_equal(ser_tensor_view_raw(&x3, x, 3, SER_DIMS(1, 5, 4)), 0);
  assert_int_equal(ser_lstm(&o2, &h2, NULL, x, w, &fixture_opts), 0);
  assert_int_equal(ser_lstm(&o3, &h3, NULL, x3, w, &fixture_opts), 0);
  assert_int_equal(o2->ndim, 2);
  assert_int_equal(h2->ndim, 2);
  for (int i = 0; i < 30; i++) assert_float_equal(ser_tensor_data(o2)[i], ser_tensor_data(o3)[i], 1e-6);
  for (int i = 0; i < 6; i++) assert_float_equal(ser_tensor_data(h2)[i], ser_tensor_data(h3)[i], 1e-6);
  for (int i = 0; i < 8; i++) ser_tensor_release(w[i]);
  ser_tensor *ts[] = {x, x3, o2, o3, h2, h3};
  for (int i = 0; i < 6; i++) ser_tensor_release(ts[i]);
}

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

/* The fixture's hidden size 3 runs only the cell's scalar tail; hidden 8 and 9
 * run its 4-lane vector rows (and 9 a tail after them), against the cell
 * written out in double here: h_n, c_n and every output. make test runs this
 * under SER_ISA=avx2 and generic too, so each of the cell's three copies meets it. */
static void vector_rows_match_a_plain_reference(void **state) {
  (void)state;
  const int B = 2, T = 4, I = 5;
  for (int H = 8; H <= 9; H++) {
    ser_rng rng;
    ser_rng_seed(&rng, 100 + H);
    ser_tensor *x = ser_tensor_empty(3, SER_DIMS(B, T, I)), *w[4];
    ser_tensor_fill_normal(x, 0, 1, &rng);
    for (int i = 0; i < 4; i++) {
      w[i] = i < 2 ? ser_tensor_empty(2, SER_DIMS(4 * H, i == 0 ? I : H)) : ser_tensor_empty(1, SER_DIMS(4 * H));
      ser_tensor_fill_uniform(w[i], -0.6f, 0.6f, &rng);
    }
    ser_lstm_opts o = {.input_size = I, .hidden_size = H, .num_layers = 1, .bidirectional = 0, .batch_first = 1};
    ser_tensor *out, *hn, *cn;
    assert_int_equal(ser_lstm(&out, &hn, &cn, x, w, &o), 0);
    const float *X = ser_tensor_data(x), *Wi = ser_tensor_data(w[0]), *Wh = ser_tensor_data(w[1]),
                *bi = ser_tensor_data(w[2]), *bh = ser_tensor_data(w[3]);
    double worst = 0;
    for (int b = 0; b < B; b++) {
      double h[9] = {0}, c[9] = {0}, g[36];
      for (int t = 0; t < T; t++) {
        for (int r = 0; r < 4 * H; r++) {
          double a = (double)bi[r] + bh[r];
          for (int k = 0; k < I; k++) a += (double)Wi[r * I + k] * X[((size_t)b * T + t) * I + k];
          for (int k = 0; k < H; k++) a += (double)Wh[r * H + k] * h[k];
          g[r] = a;
        }
        for (int j = 0; j < H; j++) {
          c[j] = sigm(g[H + j]) * c[j] + sigm(g[j]) * tanh(g[2 * H + j]);
          h[j] = sigm(g[3 * H + j]) * tanh(c[j]);
          worst = fmax(worst, fabs(h[j] - ser_tensor_data(out)[((size_t)b * T + t) * H + j]));
        }
      }
      for (int j = 0; j < H; j++) {
        worst = fmax(worst, fabs(h[j] - ser_tensor_data(hn)[b * H + j]));
        worst = fmax(worst, fabs(c[j] - ser_tensor_data(cn)[b * H + j]));
      }
    }
    printf("  hidden %d: worst abs err %.3g against the double reference\n", H, worst);
    assert_true(worst < 2e-6);
    for (int i = 0; i < 4; i++) ser_tensor_release(w[i]);
    ser_tensor *ts[] = {x, out, hn, cn};
    for (int i = 0; i < 4; i++) ser_tensor_release(ts[i]);
  }
}

/* A one-direction LSTM with the forward weights is the first half of the bidirectional output. */
static void unidirectional_is_the_forward_half(void **state) {
  ser_tensor *x = fixture_tensor("lstm_x", 3, SER_DIMS(2, 6, 4)), *w[8];
  for (int i = 0; i < 8; i++) w[i] = load_weight(i);
  ser_lstm_opts o = fixture_opts;
  o.bidirectional = 0;
  ser_tensor *bi, *uni, *hn;
  assert_int_equal(ser_lstm(&bi, NULL, NULL, x, w, &fixture_opts), 0);
  assert_int_equal(ser_lstm(&uni, &hn, NULL, x, w, &o), 0);
  assert_int_equal(uni->shape[2], 3);
  assert_int_equal(hn->shape[0], 1);
  for (int r = 0; r < 12; r++)
    for (int j = 0; j < 3; j++)
      assert_float_equal(ser_tensor_data(uni)[r * 3 + j], ser_tensor_data(bi)[r * 6 + j], 1e-6);
  for (int i = 0; i < 8; i++) ser_tensor_release(w[i]);
  ser_tensor_release(bi);
  ser_tensor_release(uni);
  ser_tensor_release(hn);
  ser_tensor_release(x);
}

static void no_grad_records_nothing(void **state) {
  ser_tensor *x = ser_tensor_zeros(3, SER_DIMS(1, 2, 4)), *w[8];
  for (int i = 0; i < 8; i++) {
    w[i] = (i % 4) < 2 ? ser_tensor_zeros(2, SER_DIMS(12, (i % 4) == 0 ? 4 : 3)) : ser_tensor_zeros(1, SER_DIMS(12));
    w[i]->requires_grad = 1;
  }
  int prev = ser_set_grad_enabled(0);
  ser_tensor *out;
  assert_int_equal(ser_lstm(&out, NULL, NULL, x, w, &fixture_opts), 0);
  ser_set_grad_enabled(prev);
  assert_null(out->grad_fn);
  assert_false(out->requires_grad);
  /* zero weights: every gate is σ(0) = 0.5, g = 0, so h = 0 */
  for (int i = 0; i < 12; i++) assert_float_equal(ser_tensor_data(out)[i], 0.0f, 0);
  ser_tensor_release(out);
  for (int i = 0; i < 8; i++) ser_tensor_release(w[i]);
  ser_tensor_release(x);
}

static void bad_shapes_are_reported(void **state) {
  ser_tensor *w[8];
  for (int i = 0; i < 8; i++)
    w[i] = (i % 4) < 2 ? ser_tensor_zeros(2, SER_DIMS(12, (i % 4) == 0 ? 4 : 3)) : ser_tensor_zeros(1, SER_DIMS(12));
  ser_tensor *out = (ser_tensor *)1, *x5 = ser_tensor_zeros(3, SER_DIMS(2, 6, 5));
  assert_int_equal(ser_lstm(&out, NULL, NULL, x5, w, &fixture_opts), SER_EINVAL);
  assert_null(out);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "[2,6,5]"));
  assert_non_null(strstr(ser_errmsg(), "input_size 4"));

  ser_tensor *x = ser_tensor_zeros(3, SER_DIMS(2, 6, 4));
  ser_tensor *bad = ser_tensor_zeros(2, SER_DIMS(12, 2));
  ser_tensor *keep = w[5];
  w[5] = bad; /* weight_hh_l0_reverse */
  assert_int_equal(ser_lstm(&out, NULL, NULL, x, w, &fixture_opts), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "weight_hh_l0_reverse has shape [12,2], expected [12,3]"));
  w[5] = keep;

  ser_tensor *empty = ser_tensor_zeros(3, SER_DIMS(2, 0, 4));
  assert_int_equal(ser_lstm(&out, NULL, NULL, empty, w, &fixture_opts), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  ser_lstm_opts o = fixture_opts;
  o.num_layers = 0;
  assert_int_equal(ser_lstm(&out, NULL, NULL, x, w, &o), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  for (int i = 0; i < 8; i++) ser_tensor_release(w[i]);
  ser_tensor_release(bad);
  ser_tensor_release(x);
  ser_tensor_release(x5);
  ser_tensor_release(empty);
}

static void weight_names_follow_pytorch(void **state) {
  ser_lstm_opts o = {.input_size = 4, .hidden_size = 3, .num_layers = 2, .bidirectional = 1};
  char buf[64];
  assert_int_equal(ser_lstm_num_weights(&o), 16);
  assert_string_equal(ser_lstm_weight_name(&o, 0, buf, 64), "weight_ih_l0");
  assert_string_equal(ser_lstm_weight_name(&o, 7, buf, 64), "bias_hh_l0_reverse");
  assert_string_equal(ser_lstm_weight_name(&o, 9, buf, 64), "weight_hh_l1");
  o.no_bias = 1;
  o.bidirectional = 0;
  assert_int_equal(ser_lstm_num_weights(&o), 4);
  assert_string_equal(ser_lstm_weight_name(&o, 2, buf, 64), "weight_ih_l1");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(vector_rows_match_a_plain_reference),
      cmocka_unit_test(fixture_parity),
      cmocka_unit_test(time_major_matches_batch_first),
      cmocka_unit_test(unbatched_equals_batch_of_one),
      cmocka_unit_test(unidirectional_is_the_forward_half),
      cmocka_unit_test(no_grad_records_nothing),
      cmocka_unit_test(bad_shapes_are_reported),
      cmocka_unit_test(weight_names_follow_pytorch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
