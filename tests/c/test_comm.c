/* The communicator hook (src/core/comm.h) without MPI: install checks, the flat gradient
 * block (src/optim/flat.c), and synchronised BatchNorm against a "mirror" communicator
 * that plays K processes holding the same batch (its allreduce multiplies by K): BatchNorm
 * synchronised over K copies of x must equal plain BatchNorm over x repeated K times along
 * the batch -- output, running statistics (the unbiased variance's n is K times larger),
 * input gradient, and K times the local weight and bias gradients. The two-process runs
 * under mpirun are tests/lua/dist_spec.lua. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/fixture.h"

enum { K = 3 };

static int mirror_f32(float *buf, size_t n, int compress, void *ctx) {
  for (size_t i = 0; i < n; i++) buf[i] *= K;
  return 0;
}
static int mirror_f64(double *buf, size_t n, void *ctx) {
  for (size_t i = 0; i < n; i++) buf[i] *= K;
  return 0;
}
static int mirror_bcast(void *buf, size_t bytes, int root, void *ctx) { return 0; }
static int mirror_gather(const void *in, void *out, size_t n, void *ctx) {
  for (int r = 0; r < K; r++) memcpy((char *)out + (size_t)r * n, in, n);
  return 0;
}
static int mirror_barrier(void *ctx) { return 0; }

static ser_comm mirror(void) {
  ser_comm c = {SER_COMM_MAGIC, SER_COMM_VERSION, 0, K, mirror_f32, mirror_f64, mirror_bcast, mirror_gather,
                mirror_barrier, NULL, {0}};
  return c;
}

static void install_checks_magic_version_and_functions(void **state) {
  (void)state;
  ser_comm c = mirror();
  c.version = 99;
  assert_int_equal(ser_comm_install(&c), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "rebuild ser_mpi.so"));
  printf("  %s\n", ser_errmsg());
  c = mirror();
  c.barrier = NULL;
  assert_int_equal(ser_comm_install(&c), SER_EINVAL);
  c = mirror();
  c.rank = K;
  assert_int_equal(ser_comm_install(&c), SER_EINVAL);
  assert_null(ser_comm_get());
  ser_comm_set_sync_batchnorm(1);
  assert_int_equal(ser_comm_sync_batchnorm(), 0); /* no communicator: nothing to synchronise with */
  ser_comm_set_sync_batchnorm(0);
  c = mirror();
  assert_int_equal(ser_comm_install(&c), 0);
  ser_comm_activity("epoch %d", 3);
  assert_string_equal(c.activity, "epoch 3");
  assert_int_equal(ser_comm_install(NULL), 0);
  assert_null(ser_comm_get());
}

static void grads_pack_and_unpack(void **state) {
  (void)state;
  ser_tensor *a = ser_tensor_zeros(2, SER_DIMS(2, 3)), *b = ser_tensor_zeros(1, SER_DIMS(4));
  a->requires_grad = b->requires_grad = 1;
  a->grad = ser_tensor_from_data(2, SER_DIMS(2, 3), (const float[]){1, 2, 3, 4, 5, 6});
  ser_tensor *ps[] = {a, b};
  assert_int_equal(ser_grads_numel(ps, 2), 10);
  float buf[10], small[9];
  assert_int_equal(ser_grads_pack(small, 9, ps, 2), SER_EINVAL);
  printf("  %s\n", ser_errmsg());
  assert_int_equal(ser_grads_pack(buf, 10, ps, 2), 0);
  const float want[10] = {1, 2, 3, 4, 5, 6, 0, 0, 0, 0}; /* b has no gradient: zeros */
  assert_memory_equal(buf, want, sizeof want);
  for (int i = 0; i < 10; i++) buf[i] = (float)(i + 1);
  assert_int_equal(ser_grads_unpack(ps, 2, buf, 10, 0.5), 0);
  assert_non_null(b->grad); /* created */
  assert_float_equal(ser_tensor_data(a->grad)[5], 3.0f, 0);
  assert_float_equal(ser_tensor_data(b->grad)[3], 5.0f, 0);
  ser_tensor_release(a);
  ser_tensor_release(b);
}

static ser_tensor *ones(int C) { return ser_tensor_from_data(1, SER_DIMS(C), (const float[]){1, 1, 1}); }

static void fill(ser_tensor *t, uint64_t seed) {
  ser_rng r;
  ser_rng_seed(&r, seed);
  float *d = ser_tensor_data(t);
  for (int64_t i = 0; i < ser_tensor_numel(t); i++) d[i] = 2.0f * ser_rng_normal(&r) + 0.5f;
}

/* Returns y, dx (new references) and writes the running statistics and dweight, dbias. */
static void bn_run(ser_tensor *x, ser_tensor *dy, ser_tensor *rm, ser_tensor *rv, ser_tensor **y, ser_tensor **dx,
                   float *dw, float *db, int C, int relu) {
  ser_tensor *xx = ser_tensor_clone_raw(x);
  ser_tensor *w = ser_tensor_from_data(1, SER_DIMS(C), (const float[]){1.5f, -0.5f, 0.8f});
  ser_tensor *b = ser_tensor_from_data(1, SER_DIMS(C), (const float[]){0.1f, 0.2f, -0.3f});
  xx->requires_grad = w->requires_grad = b->requires_grad = 1;
  int rc = relu ? ser_batch_norm_relu(y, xx, rm, rv, w, b, 1, 0.1, 1e-5) : ser_batch_norm(y, xx, rm, rv, w, b, 1, 0.1, 1e-5);
  assert_int_equal(rc, 0);
  assert_int_equal(ser_backward(*y, dy, 0), 0);
  *dx = ser_tensor_retain(xx->grad);
  memcpy(dw, ser_tensor_data(w->grad), sizeof(float) * C);
  memcpy(db, ser_tensor_data(b->grad), sizeof(float) * C);
  ser_tensor_release(xx);
  ser_tensor_release(w);
  ser_tensor_release(b);
}

static void sync_batchnorm_case(int relu) {
  enum { B = 2, C = 3, H = 4, W = 5 };
  const size_t n = (size_t)B * C * H * W;
  ser_tensor *x = ser_tensor_empty(4, SER_DIMS(B, C, H, W)), *dy = ser_tensor_empty(4, SER_DIMS(B, C, H, W));
  fill(x, 1);
  fill(dy, 2);
  /* K copies along the batch, for the plain reference */
  ser_tensor *xk = ser_tensor_empty(4, SER_DIMS(K * B, C, H, W)), *dyk = ser_tensor_empty(4, SER_DIMS(K * B, C, H, W));
  for (int k = 0; k < K; k++) {
    memcpy(ser_tensor_data(xk) + k * n, ser_tensor_data(x), n * sizeof(float));
    memcpy(ser_tensor_data(dyk) + k * n, ser_tensor_data(dy), n * sizeof(float));
  }
  ser_tensor *rm1 = ser_tensor_zeros(1, SER_DIMS(C)), *rv1 = ones(C);
  ser_tensor *rm2 = ser_tensor_zeros(1, SER_DIMS(C)), *rv2 = ones(C);
  ser_tensor *y1, *dx1, *y2, *dx2;
  float dw1[C], db1[C], dw2[C], db2[C];
  bn_run(xk, dyk, rm1, rv1, &y1, &dx1, dw1, db1, C, relu);
  ser_comm c = mirror();
  assert_int_equal(ser_comm_install(&c), 0);
  ser_comm_set_sync_batchnorm(1);
  bn_run(x, dy, rm2, rv2, &y2, &dx2, dw2, db2, C, relu);
  ser_comm_set_sync_batchnorm(0);
  assert_int_equal(ser_comm_install(NULL), 0);
  assert_close_abs("y", ser_tensor_data(y2), ser_tensor_data(y1), n, 1e-5);
  assert_close_abs("running_mean", ser_tensor_data(rm2), ser_tensor_data(rm1), C, 1e-6);
  assert_close_abs("running_var", ser_tensor_data(rv2), ser_tensor_data(rv1), C, 1e-6);
  assert_close_abs("dx", ser_tensor_data(dx2), ser_tensor_data(dx1), n, 1e-5);
  for (int i = 0; i < C; i++) {
    dw2[i] *= K;
    db2[i] *= K;
  }
  assert_close_rel("dweight", dw2, dw1, C, 1e-5, 1e-4);
  assert_close_rel("dbias", db2, db1, C, 1e-5, 1e-4);
  /* the per-process statistics differ in the unbiased variance: the test can tell */
  ser_tensor *rm3 = ser_tensor_zeros(1, SER_DIMS(C)), *rv3 = ones(C), *y3, *dx3;
  float dw3[C], db3[C];
  bn_run(x, dy, rm3, rv3, &y3, &dx3, dw3, db3, C, relu);
  assert_true(fabsf(ser_tensor_data(rv3)[0] - ser_tensor_data(rv1)[0]) > 1e-4f);
  ser_tensor *all[] = {x, dy, xk, dyk, rm1, rv1, rm2, rv2, rm3, rv3, y1, dx1, y2, dx2, y3, dx3};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ser_tensor_release(all[i]);
}

static void sync_batchnorm_equals_the_whole_batch(void **state) {
  (void)state;
  sync_batchnorm_case(0);
}

static void sync_batchnorm_relu_equals_the_whole_batch(void **state) {
  (void)state;
  sync_batchnorm_case(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(install_checks_magic_version_and_functions),
      cmocka_unit_test(grads_pack_and_unpack),
      cmocka_unit_test(sync_batchnorm_equals_the_whole_batch),
      cmocka_unit_test(sync_batchnorm_relu_equals_the_whole_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
