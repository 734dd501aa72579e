/* Optimisers, clipping and schedules against PyTorch 1.13: adamw_* and schedule
 * fixtures from ../shared, SGD and clip_grad_norm_ values printed by torch 1.13
 * (the script is in the comment of each test), plus groups, skipped grads,
 * state restore and the error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fixture.h"
#include "optim/optim.h"

static ser_tensor *vec(int n, const float *v) { return ser_tensor_from_data(1, SER_DIMS(n), v); }

static void set_grad(ser_tensor *p, ser_tensor *g) {
  ser_tensor_release(p->grad);
  p->grad = g;
}

static void adamw_case(const char *prefix, double wd) {
  ser_tensor *p = fixture_tensor("adamw_p0", 1, SER_DIMS(10));
  p->requires_grad = 1;
  ser_optimizer *o;
  assert_int_equal(ser_optimizer_new(&o, SER_OPTIM_ADAMW), 0);
  ser_optim_hparams h = ser_optim_defaults(SER_OPTIM_ADAMW);
  h.weight_decay = wd;
  assert_int_equal(ser_optimizer_add_group(o, &p, 1, &h), 0);
  for (int step = 1; step <= 2; step++) {
    char name[64];
    snprintf(name, sizeof name, "adamw_g%d", step);
    set_grad(p, fixture_tensor(name, 1, SER_DIMS(10)));
    assert_int_equal(ser_optimizer_step(o), 0);
    const ser_optim_param *st = &o->groups[0].params[0];
    assert_int_equal(st->step, step);
    const char *what[3] = {"p", "m", "v"};
    const ser_tensor *got[3] = {p, st->state1, st->state2};
    for (int k = 0; k < 3; k++) {
      snprintf(name, sizeof name, "%s_%s%d", prefix, what[k], step);
      float *want = fixture_require(name, 10);
      assert_close_abs(name, ser_tensor_data(got[k]), want, 10, 1e-6); /* float32 vs the float64 reference: an ulp */
      free(want);
    }
  }
  ser_optimizer_free(o);
  ser_tensor_release(p);
}

/* The vectorised update against the same formula written out per element here:
 * bit-identical over 1003 elements (vector body and scalar tail) and 20 steps,
 * with NaN, zero and tiny gradients planted. */
static void adamw_vector_path_is_bitwise_the_formula(void **state) {
  enum { N = 1003, STEPS = 20 };
  static float p[N], g[N], m[N], v[N], rp[N], rm[N], rv[N];
  uint32_t r = 12345;
  for (int i = 0; i < N; i++) {
    r = r * 1664525u + 1013904223u;
    p[i] = rp[i] = (float)(r >> 8) / 16777216.0f - 0.5f;
  }
  const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 1e-2;
  for (int step = 1; step <= STEPS; step++) {
    for (int i = 0; i < N; i++) {
      r = r * 1664525u + 1013904223u;
      g[i] = (float)(r >> 8) / 16777216.0f - 0.5f;
      if (i % 97 == 0) g[i] = 0.0f;
      if (i % 89 == 0) g[i] *= 1e-30f;
      if (i == 500 && step == 3) g[i] = NAN;
    }
    ser_adamw_update(p, g, m, v, N, step, lr, b1, b2, eps, wd);
    const float decay = (float)(1.0 - lr * wd);
    const float step_size = (float)(lr / (1.0 - pow(b1, step))), bc2_sqrt = (float)sqrt(1.0 - pow(b2, step));
    for (int i = 0; i < N; i++) {
      const float pi = rp[i] * decay;
      rm[i] = rm[i] * (float)b1 + (float)(1.0 - b1) * g[i];
      rv[i] = rv[i] * (float)b2 + (float)(1.0 - b2) * g[i] * g[i];
      rp[i] = pi - step_size * (rm[i] / (sqrtf(rv[i]) / bc2_sqrt + (float)eps));
    }
  }
  assert_memory_equal(p, rp, sizeof p);
  assert_memory_equal(m, rm, sizeof m);
  assert_memory_equal(v, rv, sizeof v);
  assert_true(isnan(p[500]));
}

static void adamw_weight_decay_1e2(void **state) { adamw_case("adamw", 1e-2); }
static void adamw_weight_decay_1e4(void **state) { adamw_case("adamw_wd1e-4", 1e-4); }

static const float sgd_p0[4] = {0.5f, -1.0f, 2.0f, 0.25f};
static const float sgd_g[3][4] = {{0.1f, -0.2f, 0.3f, 0.0f}, {-0.5f, 0.4f, 0.1f, 1.0f}, {0.2f, 0.2f, -0.2f, -0.3f}};

static void sgd_run(const ser_optim_hparams *h, const float want[3][4]) {
  ser_tensor *p = vec(4, sgd_p0);
  p->requires_grad = 1;
  ser_optimizer *o;
  assert_int_equal(ser_optimizer_new(&o, SER_OPTIM_SGD), 0);
  assert_int_equal(ser_optimizer_add_group(o, &p, 1, h), 0);
  for (int s = 0; s < 3; s++) {
    set_grad(p, vec(4, sgd_g[s]));
    assert_int_equal(ser_optimizer_step(o), 0);
    assert_close_abs("sgd p", ser_tensor_data(p), want[s], 4, 1e-7);
  }
  ser_optimizer_free(o);
  ser_tensor_release(p);
}

/* torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1), three steps */
static void sgd_nesterov_weight_decay(void **state) {
  static const float want[3][4] = {{0.48574999f, -0.971499979f, 1.95249999f, 0.247624993f},
                                   {0.522560358f, -0.988120735f, 1.90420127f, 0.149260059f},
                                   {0.51141125f, -0.999064028f, 1.87492871f, 0.133927956f}};
  ser_optim_hparams h = ser_optim_defaults(SER_OPTIM_SGD);
  h.lr = 0.05;
  h.momentum = 0.9;
  h.nesterov = 1;
  h.weight_decay = 0.1;
  sgd_run(&h, want);
}

/* torch.optim.SGD([p], lr=0.05, momentum=0.9, dampening=0.3): the first step is undampened */
static void sgd_momentum_dampening(void **state) {
  static const float want[3][4] = {{0.495000005f, -0.99000001f, 1.98500001f, 0.25f},
                                   {0.508000016f, -0.995000005f, 1.96800005f, 0.215000004f},
                                   {0.512700021f, -1.00650001f, 1.95970011f, 0.194000006f}};
  ser_optim_hparams h = ser_optim_defaults(SER_OPTIM_SGD);
  h.lr = 0.05;
  h.momentum = 0.9;
  h.dampening = 0.3;
  sgd_run(&h, want);
}

/* Two groups: no decay for the second (biases); a NULL grad is skipped and its step stays 0. */
static void groups_and_skipped_grads(void **state) {
  const float v[3] = {1, 2, 3}, g[3] = {0.5f, -0.5f, 0.25f};
  ser_tensor *w = vec(3, v), *b = vec(3, v), *unused = vec(3, v);
  ser_optimizer *o;
  assert_int_equal(ser_optimizer_new(&o, SER_OPTIM_ADAMW), 0);
  ser_optim_hparams h = ser_optim_defaults(SER_OPTIM_ADAMW);
  h.weight_decay = 0.5;
  h.lr = 0.1;
  assert_int_equal(ser_optimizer_add_group(o, &w, 1, &h), 0);
  h.weight_decay = 0;
  assert_int_equal(ser_optimizer_add_group(o, (ser_tensor *[]){b, unused}, 2, &h), 0);
  set_grad(w, vec(3, g));
  set_grad(b, vec(3, g));
  assert_int_equal(ser_optimizer_step(o), 0);
  /* step 1 of Adam moves each element by lr·sign(g) (up to eps); decay multiplies by 1 - lr·wd first */
  for (int i = 0; i < 3; i++) {
    const float s = g[i] > 0 ? 1.0f : -1.0f;
    assert_float_equal(ser_tensor_data(b)[i], v[i] - 0.1f * s, 1e-6);
    assert_float_equal(ser_tensor_data(w)[i], v[i] * 0.95f - 0.1f * s, 1e-6);
    assert_float_equal(ser_tensor_data(unused)[i], v[i], 0);
  }
  assert_int_equal(o->groups[1].params[1].step, 0);
  assert_null(o->groups[1].params[1].state1);
  ser_optimizer_zero_grad(o, 0);
  assert_float_equal(ser_tensor_data(w->grad)[0], 0, 0);
  ser_optimizer_zero_grad(o, 1);
  assert_null(w->grad);
  ser_optimizer_free(o);
  ser_tensor_release(w);
  ser_tensor_release(b);
  ser_tensor_release(unused);
}

/* Restored state continues exactly like the original optimizer. */
static void state_restore_continues_identically(void **state) {
  const float v[4] = {0.3f, -0.2f, 0.9f, 1.1f};
  ser_tensor *p1 = vec(4, v), *p2 = vec(4, v);
  ser_optimizer *a, *b;
  ser_optim_hparams h = ser_optim_defaults(SER_OPTIM_ADAMW);
  assert_int_equal(ser_optimizer_new(&a, SER_OPTIM_ADAMW), 0);
  assert_int_equal(ser_optimizer_new(&b, SER_OPTIM_ADAMW), 0);
  assert_int_equal(ser_optimizer_add_group(a, &p1, 1, &h), 0);
  assert_int_equal(ser_optimizer_add_group(b, &p2, 1, &h), 0);
  for (int s = 0; s < 3; s++) {
    set_grad(p1, vec(4, sgd_g[s]));
    assert_int_equal(ser_optimizer_step(a), 0);
  }
  assert_int_equal(ser_tensor_copy_(p2, p1), 0);
  const ser_optim_param *sa = &a->groups[0].params[0];
  assert_int_equal(ser_optimizer_set_state(b, 0, 0, sa->step, sa->state1, sa->state2), 0);
  set_grad(p1, vec(4, sgd_g[0]));
  set_grad(p2, vec(4, sgd_g[0]));
  assert_int_equal(ser_optimizer_step(a), 0);
  assert_int_equal(ser_optimizer_step(b), 0);
  assert_memory_equal(ser_tensor_data(p1), ser_tensor_data(p2), 16);
  /* wrong shape: refused, state unchanged */
  ser_tensor *bad = ser_tensor_zeros(1, SER_DIMS(5));
  assert_int_equal(ser_optimizer_set_state(b, 0, 0, 1, bad, bad), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_int_equal(b->groups[0].params[0].step, 4);
  assert_int_equal(ser_optimizer_set_state(b, 0, 3, 1, NULL, NULL), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  ser_tensor_release(bad);
  ser_optimizer_free(a);
  ser_optimizer_free(b);
  ser_tensor_release(p1);
  ser_tensor_release(p2);
}

static void bad_hyperparameters_are_reported(void **state) {
  const float v[2] = {1, 2};
  ser_tensor *p = vec(2, v);
  ser_optimizer *o;
  assert_int_equal(ser_optimizer_new(&o, SER_OPTIM_SGD), 0);
  ser_optim_hparams h = ser_optim_defaults(SER_OPTIM_SGD);
  assert_int_equal(ser_optimizer_add_group(o, &p, 1, &h), SER_EINVAL); /* no lr */
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "lr"));
  h.lr = 0.1;
  h.nesterov = 1;
  assert_int_equal(ser_optimizer_add_group(o, &p, 1, &h), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  h.nesterov = 0;
  assert_int_equal(ser_optimizer_add_group(o, (ser_tensor *[]){p, p}, 2, &h), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_non_null(strstr(ser_errmsg(), "more than once"));
  assert_int_equal(ser_optimizer_add_group(o, &p, 1, &h), 0);
  assert_int_equal(ser_optimizer_add_group(o, &p, 1, &h), SER_EINVAL); /* already in group 1 */
  ser_optimizer_free(o);
  assert_int_equal(ser_optimizer_new(&o, SER_OPTIM_ADAMW), 0);
  h = ser_optim_defaults(SER_OPTIM_ADAMW);
  h.beta2 = 1.0;
  assert_int_equal(ser_optimizer_add_group(o, &p, 1, &h), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  ser_optimizer_free(o);
  ser_tensor_release(p);
}

/* torch.nn.utils.clip_grad_norm_([a, b], 2.5) with a.grad = [[1,-2,3],[.5,.5,-4]], b.grad = [2,0,-1,1] */
static void clip_grad_norm_like_torch(void **state) {
  const float ga[6] = {1, -2, 3, 0.5f, 0.5f, -4}, gb[4] = {2, 0, -1, 1};
  const float want[10] = {0.413802862f, -0.827605724f, 1.24140859f, 0.206901431f, 0.206901431f,
                          -1.65521145f, 0.827605724f, 0.0f, -0.413802862f, 0.413802862f};
  ser_tensor *a = ser_tensor_zeros(2, SER_DIMS(2, 3)), *b = ser_tensor_zeros(1, SER_DIMS(4)), *c = vec(2, ga);
  set_grad(a, ser_tensor_from_data(2, SER_DIMS(2, 3), ga));
  set_grad(b, vec(4, gb));
  double norm;
  assert_int_equal(ser_clip_grad_norm(&norm, (ser_tensor *[]){a, b, c}, 3, 2.5, 2.0), 0); /* c: no grad */
  assert_float_equal(norm, 6.04152298, 1e-6);
  float got[10];
  memcpy(got, ser_tensor_data(a->grad), 24);
  memcpy(got + 6, ser_tensor_data(b->grad), 16);
  assert_close_abs("clipped grads", got, want, 10, 1e-7);
  /* under the limit: unchanged */
  assert_int_equal(ser_clip_grad_norm(&norm, (ser_tensor *[]){a, b}, 2, 10.0, 2.0), 0);
  assert_close_abs("unclipped", ser_tensor_data(b->grad), want + 6, 4, 0);
  assert_int_equal(ser_clip_grad_norm(&norm, (ser_tensor *[]){a, b}, 2, 1.0, INFINITY), 0);
  assert_float_equal(norm, 1.65521145, 1e-6);
  assert_int_equal(ser_clip_grad_norm(&norm, &a, 1, -1.0, 2.0), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  ser_tensor_release(a);
  ser_tensor_release(b);
  ser_tensor_release(c);
}

/* avg <- d * avg + (1 - d) * src; a shape mismatch anywhere leaves every average untouched. */
static void ema_update_blends_and_checks_first(void **state) {
  const float a0[3] = {1, 2, 3}, s0[3] = {3, 2, -1}, want[3] = {1.5f, 2.0f, 2.0f};
  ser_tensor *a = vec(3, a0), *s = vec(3, s0), *b = vec(2, a0), *t = vec(3, s0);
  assert_int_equal(ser_ema_update((ser_tensor *[]){a}, (ser_tensor *[]){s}, 1, 0.75), 0);
  assert_close_abs("ema", ser_tensor_data(a), want, 3, 1e-7);
  assert_int_equal(ser_ema_update((ser_tensor *[]){a, b}, (ser_tensor *[]){s, t}, 2, 0.5), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_close_abs("untouched after a failed update", ser_tensor_data(a), want, 3, 0);
  assert_int_equal(ser_ema_update((ser_tensor *[]){a}, (ser_tensor *[]){s}, 1, 1.5), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_int_equal(ser_ema_update((ser_tensor *[]){a}, (ser_tensor *[]){s}, 1, 0.0), 0); /* decay 0 copies */
  assert_close_abs("copy", ser_tensor_data(a), s0, 3, 0);
  ser_tensor_release(a);
  ser_tensor_release(s);
  ser_tensor_release(b);
  ser_tensor_release(t);
}

/* The vectorised average against the formula per element: the same bits over 1003
 * elements (vector body and tail), decay 0.999 as training uses it. */
static void ema_vector_path_is_bitwise_the_formula(void **state) {
  enum { N = 1003 };
  ser_tensor *a = ser_tensor_zeros(1, SER_DIMS(N)), *s = ser_tensor_zeros(1, SER_DIMS(N));
  assert_non_null(a);
  assert_non_null(s);
  float *pa = ser_tensor_data(a), *ps = ser_tensor_data(s), want[N];
  for (int i = 0; i < N; i++) {
    pa[i] = want[i] = sinf((float)i);
    ps[i] = cosf((float)i * 0.37f) * (i % 13 ? 1.0f : 1e-30f);
  }
  for (int k = 0; k < 5; k++) {
    assert_int_equal(ser_ema_update(&a, &s, 1, 0.999), 0);
    for (int i = 0; i < N; i++) want[i] = 0.999f * want[i] + (float)(1.0 - 0.999) * ps[i];
  }
  assert_memory_equal(pa, want, sizeof want);
  ser_tensor_release(a);
  ser_tensor_release(s);
}

static void onecycle_lr_and_beta1(void **state) {
  float *want_lr = fixture_require("onecycle_lr", 100), *want_b1 = fixture_require("onecycle_beta1", 100);
  ser_onecycle_opts o = ser_onecycle_defaults(1e-3, 100);
  float lr[100], b1[100];
  for (int s = 0; s < 100; s++) {
    double l, m;
    assert_int_equal(ser_onecycle(&l, &m, s, &o), 0);
    lr[s] = (float)l;
    b1[s] = (float)m;
  }
  assert_close_rel("onecycle_lr", lr, want_lr, 100, 1e-12, 1e-6);
  assert_close_abs("onecycle_beta1", b1, want_b1, 100, 1e-7);
  double l;
  assert_int_equal(ser_onecycle(&l, NULL, 100, &o), 0); /* PyTorch allows step == total_steps */
  assert_int_equal(ser_onecycle(&l, NULL, 101, &o), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  o.total_steps = 0;
  assert_int_equal(ser_onecycle(&l, NULL, 0, &o), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  free(want_lr);
  free(want_b1);
}

static void cosine_annealing(void **state) {
  float *want = fixture_require("cosine_lr", 35), *after = fixture_require("cosine_lr_after35", 1);
  float got[36];
  for (int e = 0; e <= 35; e++) {
    double l;
    assert_int_equal(ser_cosine_lr(&l, e, 1e-3, 35, 0), 0);
    got[e] = (float)l;
  }
  assert_close_rel("cosine_lr", got, want, 35, 1e-12, 1e-6);
  assert_close_abs("cosine_lr_after35", got + 35, after, 1, 1e-12);
  double l;
  assert_int_equal(ser_cosine_lr(&l, 0, 1e-3, 0, 0), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_int_equal(ser_cosine_lr(&l, 35, 1e-3, 35, 1e-5), 0);
  assert_float_equal(l, 1e-5, 1e-15);
  free(want);
  free(after);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(adamw_weight_decay_1e2),
      cmocka_unit_test(adamw_weight_decay_1e4),
      cmocka_unit_test(adamw_vector_path_is_bitwise_the_formula),
      cmocka_unit_test(sgd_nesterov_weight_decay),
      cmocka_unit_test(sgd_momentum_dampening),
      cmocka_unit_test(groups_and_skipped_grads),
      cmocka_unit_test(state_restore_continues_identically),
      cmocka_unit_test(bad_hyperparameters_are_reported),
      cmocka_unit_test(clip_grad_norm_like_torch),
      cmocka_unit_test(ema_update_blends_and_checks_first),
      cmocka_unit_test(ema_vector_path_is_bitwise_the_formula),
      cmocka_unit_test(onecycle_lr_and_beta1),
      cmocka_unit_test(cosine_annealing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
