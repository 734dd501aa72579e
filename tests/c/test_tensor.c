/* Tensor core: creation, views, copies, broadcasting, reductions, matmul,
 * softmax, autograd engine behaviour, errors and memory accounting, checked
 * against hand-computed values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fixture.h"

static ser_tensor *from(int nd, const int64_t *shape, const float *v) {
  ser_tensor *t = ser_tensor_from_data(nd, shape, v);
  assert_non_null(t);
  return t;
}

static void expect_values(const ser_tensor *t, const float *want, int64_t n) {
  assert_int_equal(ser_tensor_numel(t), n);
  for (int64_t i = 0; i < n; i++) {
    float got = ser_tensor_get_flat(t, i);
    if (fabsf(got - want[i]) > 1e-5f * fmaxf(1, fabsf(want[i]))) {
      printf("  element %lld: got %g, want %g\n", (long long)i, got, want[i]);
      fail();
    }
  }
}

static void creation_and_fill(void **state) {
  size_t base = ser_memory_live();
  ser_tensor *z = ser_tensor_zeros(2, SER_DIMS(3, 4));
  assert_int_equal(ser_tensor_numel(z), 12);
  assert_true(ser_tensor_is_contiguous(z));
  assert_int_equal(((uintptr_t)ser_tensor_data(z)) % 64, 0);
  assert_true(ser_memory_live() >= base + 48);
  ser_tensor *f = ser_tensor_full(1, SER_DIMS(3), 2.5f);
  expect_values(f, (float[]){2.5f, 2.5f, 2.5f}, 3);
  ser_tensor *r;
  assert_int_equal(ser_tensor_arange(&r, 1, 2, 0.25), 0);
  expect_values(r, (float[]){1, 1.25f, 1.5f, 1.75f}, 4);
  ser_tensor_release(z);
  ser_tensor_release(f);
  ser_tensor_release(r);
  assert_int_equal(ser_memory_live(), base);
}

static void bad_shapes_are_errors(void **state) {
  assert_null(ser_tensor_zeros(2, SER_DIMS(3, -1)));
  assert_non_null(strstr(ser_errmsg(), "negative size -1"));
  assert_null(ser_tensor_zeros(7, SER_DIMS(1, 1, 1, 1, 1, 1, 1)));
  assert_non_null(strstr(ser_errmsg(), "expected 0 to 6"));
  ser_tensor *r;
  assert_int_equal(ser_tensor_arange(&r, 0, 1, 0), SER_EINVAL);
}

static void seeded_random_is_reproducible(void **state) {
  ser_tensor *a = ser_tensor_empty(1, SER_DIMS(1000)), *b = ser_tensor_empty(1, SER_DIMS(1000));
  ser_manual_seed(7);
  ser_tensor_fill_normal(a, 0, 1, NULL);
  ser_manual_seed(7);
  ser_tensor_fill_normal(b, 0, 1, NULL);
  assert_memory_equal(ser_tensor_data(a), ser_tensor_data(b), 4000);
  double s = 0, ss = 0;
  for (int i = 0; i < 1000; i++) {
    float v = ser_tensor_data(a)[i];
    s += v;
    ss += v * v;
  }
  assert_true(fabs(s / 1000) < 0.1 && fabs(ss / 1000 - 1) < 0.15); /* N(0,1) moments */
  ser_tensor_release(a);
  ser_tensor_release(b);
}

/* A generator's words put back (a resumed training run) continue its stream exactly, the
 * cached spare normal included; words no generator has are refused before anything changes. */
static void rng_state_round_trips(void **state) {
  ser_rng r, copy;
  ser_rng_seed(&r, 99);
  (void)ser_rng_normal(&r); /* leaves a spare */
  uint32_t w[6];
  ser_rng_get_words(&r, w);
  float expect[5];
  for (int i = 0; i < 5; i++) expect[i] = ser_rng_normal(&r);
  ser_rng_seed(&copy, 1);
  assert_int_equal(ser_rng_set_words(&copy, w), 0);
  for (int i = 0; i < 5; i++) assert_true(ser_rng_normal(&copy) == expect[i]);
  uint32_t even[6] = {1, 2, 3, 4, 0, 0};
  ser_rng before = copy;
  assert_int_equal(ser_rng_set_words(&copy, even), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "increment"));
  assert_memory_equal(&before, &copy, sizeof copy);
  uint32_t spare[6] = {1, 2, 3, 5, 7, 0};
  assert_int_equal(ser_rng_set_words(&copy, spare), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "has_spare"));
}

static void views_share_storage(void **state) {
  float v[6] = {1, 2, 3, 4, 5, 6};
  ser_tensor *t = from(2, SER_DIMS(2, 3), v), *tt, *n, *s, *vw;
  assert_int_equal(ser_tensor_permute_raw(&tt, t, (int[]){1, 0}), 0);
  assert_false(ser_tensor_is_contiguous(tt));
  expect_values(tt, (float[]){1, 4, 2, 5, 3, 6}, 6);
  assert_int_equal(ser_tensor_narrow_raw(&n, t, 1, 1, 2), 0);
  expect_values(n, (float[]){2, 3, 5, 6}, 4);
  assert_int_equal(ser_tensor_select_raw(&s, t, 0, 1), 0);
  expect_values(s, (float[]){4, 5, 6}, 3);
  ser_tensor_data(t)[4] = 50; /* visible through every view */
  assert_true(ser_tensor_get_flat(s, 1) == 50 && ser_tensor_get_flat(tt, 3) == 50);
  assert_int_equal(ser_tensor_view_raw(&vw, t, 2, SER_DIMS(3, -1)), 0);
  assert_int_equal(vw->shape[1], 2);
  ser_tensor *bad;
  assert_int_equal(ser_tensor_view_raw(&bad, tt, 1, SER_DIMS(6)), SER_EINVAL); /* not contiguous */
  assert_non_null(strstr(ser_errmsg(), "not contiguous"));
  assert_int_equal(ser_tensor_view_raw(&bad, t, 1, SER_DIMS(7)), SER_EINVAL);
  assert_int_equal(ser_tensor_narrow_raw(&bad, t, 1, 2, 2), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "out of range"));
  ser_tensor *c = ser_tensor_contiguous_raw(tt);
  assert_true(ser_tensor_is_contiguous(c));
  expect_values(c, (float[]){1, 4, 2, 50, 3, 6}, 6);
  ser_tensor_release(c);
  ser_tensor_release(vw);
  ser_tensor_release(s);
  ser_tensor_release(n);
  ser_tensor_release(tt);
  ser_tensor_release(t);
}

static void broadcasting_arithmetic(void **state) {
  ser_tensor *a = from(2, SER_DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6});
  ser_tensor *b = from(1, SER_DIMS(3), (float[]){10, 20, 30});
  ser_tensor *c = from(2, SER_DIMS(2, 1), (float[]){2, 4});
  ser_tensor *o;
  assert_int_equal(ser_add(&o, a, b), 0);
  expect_values(o, (float[]){11, 22, 33, 14, 25, 36}, 6);
  ser_tensor_release(o);
  assert_int_equal(ser_div(&o, a, c), 0);
  expect_values(o, (float[]){0.5f, 1, 1.5f, 1, 1.25f, 1.5f}, 6);
  ser_tensor_release(o);
  ser_tensor *bad = from(1, SER_DIMS(2), (float[]){1, 2});
  assert_int_equal(ser_mul(&o, a, bad), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "[2,3] and [2] cannot be broadcast"));
  assert_int_equal(ser_compare(&o, a, b, SER_CMP_GT), 0);
  expect_values(o, (float[]){0, 0, 0, 0, 0, 0}, 6);
  ser_tensor_release(o);
  ser_tensor_release(a);
  ser_tensor_release(b);
  ser_tensor_release(c);
  ser_tensor_release(bad);
}

static void reductions(void **state) {
  ser_tensor *a = from(2, SER_DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 9}), *o, *ix;
  assert_int_equal(ser_sum(&o, a, 1u << 0, 0), 0);
  expect_values(o, (float[]){5, 7, 12}, 3);
  ser_tensor_release(o);
  assert_int_equal(ser_mean(&o, a, 1u << 1, 1), 0);
  assert_int_equal(o->ndim, 2);
  expect_values(o, (float[]){2, 6}, 2);
  ser_tensor_release(o);
  assert_int_equal(ser_var(&o, a, 1u << 1, 1, 0), 0); /* unbiased */
  expect_values(o, (float[]){1, 7}, 2);
  ser_tensor_release(o);
  assert_int_equal(ser_std(&o, a, SER_ALL_DIMS, 0, 0), 0);
  expect_values(o, (float[]){sqrtf(136.0f / 6.0f - 16.0f)}, 1); /* biased std: E[x^2] - mean^2 */
  ser_tensor_release(o);
  assert_int_equal(ser_max_dim(&o, &ix, a, 1, 0), 0);
  expect_values(o, (float[]){3, 9}, 2);
  expect_values(ix, (float[]){2, 2}, 2);
  ser_tensor_release(o);
  ser_tensor_release(ix);
  ser_tensor *one = from(1, SER_DIMS(1), (float[]){3});
  assert_int_equal(ser_var(&o, one, SER_ALL_DIMS, 1, 0), SER_EINVAL);
  ser_tensor_release(one);
  ser_tensor_release(a);
}

static void matmul_and_softmax(void **state) {
  ser_tensor *a = from(2, SER_DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6});
  ser_tensor *b = from(2, SER_DIMS(3, 2), (float[]){7, 8, 9, 10, 11, 12}), *o;
  assert_int_equal(ser_matmul(&o, a, b), 0);
  expect_values(o, (float[]){58, 64, 139, 154}, 4);
  ser_tensor_release(o);
  assert_int_equal(ser_matmul(&o, a, a), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "inner sizes differ: [2,3] @ [2,3]"));
  assert_int_equal(ser_softmax(&o, a, 1), 0);
  float e1 = expf(1), e2 = expf(2), e3 = expf(3), s = e1 + e2 + e3;
  expect_values(o, (float[]){e1 / s, e2 / s, e3 / s, e1 / s, e2 / s, e3 / s}, 6);
  ser_tensor_release(o);
  assert_int_equal(ser_log_softmax(&o, a, 1), 0);
  expect_values(o, (float[]){1 - logf(s), 2 - logf(s), 3 - logf(s), 1 - logf(s), 2 - logf(s), 3 - logf(s)}, 6);
  ser_tensor_release(o);
  ser_tensor_release(a);
  ser_tensor_release(b);
}

static void autograd_accumulates_and_frees(void **state) {
  size_t base = ser_memory_live();
  ser_tensor *x = from(1, SER_DIMS(3), (float[]){1, 2, 3}), *y, *z, *s;
  x->requires_grad = 1;
  /* z = x*x + x used twice: dz/dx = 2x + 1 */
  assert_int_equal(ser_mul(&y, x, x), 0);
  assert_int_equal(ser_add(&z, y, x), 0);
  assert_int_equal(ser_sum(&s, z, SER_ALL_DIMS, 0), 0);
  assert_int_equal(ser_backward(s, NULL, 0), 0);
  expect_values(x->grad, (float[]){3, 5, 7}, 3);
  assert_int_equal(ser_backward(s, NULL, 0), SER_ESTATE); /* graph freed */
  assert_non_null(strstr(ser_errmsg(), "second time"));
  ser_tensor_release(s);
  ser_tensor_release(z);
  ser_tensor_release(y);
  /* gradients accumulate across backward calls until zeroed */
  assert_int_equal(ser_mul(&y, x, x), 0);
  assert_int_equal(ser_sum(&s, y, SER_ALL_DIMS, 0), 0);
  assert_int_equal(ser_backward(s, NULL, 1), 0);
  assert_int_equal(ser_backward(s, NULL, 0), 0); /* retained once */
  expect_values(x->grad, (float[]){3 + 4, 5 + 8, 7 + 12}, 3);
  ser_tensor_zero_grad(x, 0);
  expect_values(x->grad, (float[]){0, 0, 0}, 3);
  ser_tensor_release(s);
  ser_tensor_release(y);
  /* no_grad records nothing */
  int prev = ser_set_grad_enabled(0);
  assert_int_equal(ser_mul(&y, x, x), 0);
  assert_null(y->grad_fn);
  assert_false(y->requires_grad);
  ser_set_grad_enabled(prev);
  ser_tensor_release(y);
  /* non-scalar root needs a gradient */
  assert_int_equal(ser_mul(&y, x, x), 0);
  assert_int_equal(ser_backward(y, NULL, 0), SER_EINVAL);
  ser_tensor_release(y);
  /* a leaf as the root: the given gradient (here a transposed view) is added as it reads */
  ser_tensor *leaf = ser_tensor_zeros(2, SER_DIMS(2, 2)), *g2 = from(2, SER_DIMS(2, 2), (float[]){1, 2, 3, 4}), *g2t;
  leaf->requires_grad = 1;
  assert_int_equal(ser_tensor_permute_raw(&g2t, g2, (int[]){1, 0}), 0);
  assert_int_equal(ser_backward(leaf, g2t, 0), 0);
  assert_int_equal(ser_backward(leaf, g2t, 0), 0);
  expect_values(leaf->grad, (float[]){2, 6, 4, 8}, 4);
  ser_tensor_release(g2t);
  ser_tensor_release(g2);
  ser_tensor_release(leaf);
  ser_tensor_release(x);
  assert_int_equal(ser_memory_live(), base); /* the whole graph was released */
}

static void files_round_trip(void **state) {
  char path[] = "/tmp/ser_test_tensorXXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  ser_tensor *a = from(2, SER_DIMS(2, 2), (float[]){1, -2, 3.5f, 4}), *b, *p;
  assert_int_equal(ser_tensor_permute_raw(&p, a, (int[]){1, 0}), 0);
  assert_int_equal(ser_tensor_tofile(p, path), 0); /* non-contiguous writes in logical order */
  assert_int_equal(ser_tensor_fromfile(&b, path, 2, SER_DIMS(2, 2)), 0);
  expect_values(b, (float[]){1, 3.5f, -2, 4}, 4);
  ser_tensor_release(b);
  assert_int_equal(ser_tensor_fromfile(&b, path, 1, SER_DIMS(5)), SER_EFORMAT);
  assert_non_null(strstr(ser_errmsg(), "has 16 bytes, shape [5] needs 20"));
  assert_int_equal(ser_tensor_fromfile(&b, "/nonexistent/x.f32", 1, SER_DIMS(1)), SER_EIO);
  assert_int_equal(ser_tensor_tofile(a, "/nonexistent/dir/x.f32"), SER_EIO);
  unlink(path);
  ser_tensor_release(p);
  ser_tensor_release(a);
}

static void threads_and_blas(void **state) {
  assert_true(ser_num_threads() >= 1);
  assert_non_null(strstr(ser_blas_info(), "OpenBLAS"));
}

static void block_cache_keeps_the_latest_sizes(void **state) {
  (void)state;
  /* A cap of 1 MiB: freeing a third block evicts the one freed longest ago, not the new one. */
  ser_memory_trim();
  ser_memory_set_cache_limit((size_t)1 << 20);
  const size_t a = 300 << 10, b = 400 << 10, c = 500 << 10;
  void *pa = ser_alloc(a), *pb = ser_alloc(b), *pc = ser_alloc(c);
  assert_true(pa && pb && pc);
  ser_free(pa, a);
  ser_free(pb, b);
  assert_int_equal(ser_memory_cached(), a + b);
  ser_free(pc, c); /* 1200 KiB > 1 MiB: a goes */
  assert_int_equal(ser_memory_cached(), b + c);
  void *again = ser_alloc(a); /* not cached any more: a new block */
  assert_int_equal(ser_memory_cached(), b + c);
  void *pb2 = ser_alloc(b);   /* from the cache */
  assert_ptr_equal(pb2, pb);
  assert_int_equal(ser_memory_cached(), c);
  ser_free(again, a);
  ser_free(pb2, b);
  void *big = ser_alloc((size_t)2 << 20); /* larger than the cap: never kept */
  ser_free(big, (size_t)2 << 20);
  assert_true(ser_memory_cached() <= ((size_t)1 << 20));
  ser_memory_set_cache_limit((size_t)512 << 20);
  ser_memory_trim();
  assert_int_equal(ser_memory_cached(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(creation_and_fill),
      cmocka_unit_test(bad_shapes_are_errors),
      cmocka_unit_test(seeded_random_is_reproducible),
      cmocka_unit_test(rng_state_round_trips),
      cmocka_unit_test(views_share_storage),
      cmocka_unit_test(broadcasting_arithmetic),
      cmocka_unit_test(reductions),
      cmocka_unit_test(matmul_and_softmax),
      cmocka_unit_test(autograd_accumulates_and_frees),
      cmocka_unit_test(files_round_trip),
      cmocka_unit_test(threads_and_blas),
      cmocka_unit_test(block_cache_keeps_the_latest_sizes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
