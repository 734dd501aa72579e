/* Gradient checks of the core tensor ops (elementwise, reductions, matmul,
 * softmax, shape ops). Shapes are small and include broadcasting and
 * non-contiguous inputs, where backward bugs hide. */
#include <math.h>

#include "gradcheck.h"

#define EPS 1e-2
#define TOL 2e-2

typedef int (*bin_fn)(ser_tensor **, ser_tensor *, ser_tensor *);
typedef int (*un_fn)(ser_tensor **, ser_tensor *);

static int f_binary(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ((bin_fn)ctx)(out, in[0], in[1]); }
static int f_unary(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ((un_fn)ctx)(out, in[0]); }

static void check_binary(bin_fn fn, float lo_b) {
  /* [2,3,4] op [3,1]: broadcasting on both sides */
  ser_tensor *a = gc_randn(3, SER_DIMS(2, 3, 4), 1);
  ser_tensor *b = gc_uniform(2, SER_DIMS(3, 1), lo_b, lo_b + 1.0f, 1);
  gc_assert(f_binary, (void *)fn, 2, (ser_tensor *[]){a, b}, EPS, TOL);
  gc_release(2, (ser_tensor *[]){a, b});
}

GRADCHECK_CASE(ADD, add_broadcast) { check_binary(ser_add, -0.5f); }
GRADCHECK_CASE(SUB, sub_broadcast) { check_binary(ser_sub, -0.5f); }
GRADCHECK_CASE(MUL, mul_broadcast) { check_binary(ser_mul, -0.5f); }
GRADCHECK_CASE(DIV, div_broadcast) { check_binary(ser_div, 1.0f); }

static void check_unary(un_fn fn, float lo, float hi) {
  ser_tensor *x = gc_uniform(2, SER_DIMS(3, 5), lo, hi, 1);
  gc_assert(f_unary, (void *)fn, 1, &x, EPS, TOL);
  ser_tensor_release(x);
}

/* Keep inputs away from kinks (|x| > eps) so central differences are valid. */
static void check_unary_away_from_zero(un_fn fn) {
  ser_tensor *x = gc_uniform(2, SER_DIMS(3, 5), 0.1f, 1.5f, 1);
  float *d = ser_tensor_data(x);
  for (int i = 0; i < 15; i += 2) d[i] = -d[i];
  gc_assert(f_unary, (void *)fn, 1, &x, EPS / 2, TOL);
  ser_tensor_release(x);
}

GRADCHECK_CASE(NEG, neg) { check_unary(ser_neg, -2, 2); }
GRADCHECK_CASE(EXP, exp) { check_unary(ser_exp, -2, 2); }
GRADCHECK_CASE(LOG, log) { check_unary(ser_log, 0.5f, 3); }
GRADCHECK_CASE(SQRT, sqrt) { check_unary(ser_sqrt, 0.5f, 3); }
GRADCHECK_CASE(ABS, abs) { check_unary_away_from_zero(ser_abs); }
GRADCHECK_CASE(RELU, relu) { check_unary_away_from_zero(ser_relu); }
GRADCHECK_CASE(SIGMOID, sigmoid) { check_unary(ser_sigmoid, -3, 3); }
GRADCHECK_CASE(TANH, tanh) { check_unary(ser_tanh, -2, 2); }

static int f_pow(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_pow(out, in[0], *(float *)ctx); }
GRADCHECK_CASE(POW, pow_cube_and_sqrt) {
  float p = 3.0f, q = 0.5f;
  ser_tensor *x = gc_uniform(2, SER_DIMS(2, 4), 0.5f, 2, 1);
  gc_assert(f_pow, &p, 1, &x, EPS, TOL);
  gc_assert(f_pow, &q, 1, &x, EPS, TOL);
  ser_tensor_release(x);
}

static int f_clamp(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_clamp(out, in[0], -0.5f, 0.7f); }
GRADCHECK_CASE(CLAMP, clamp) {
  ser_tensor *x = gc_uniform(1, SER_DIMS(12), -1.5f, 1.5f, 1);
  float *d = ser_tensor_data(x);
  for (int i = 0; i < 12; i++) /* away from the clamp edges */
    if (fabsf(d[i] + 0.5f) < 0.05f || fabsf(d[i] - 0.7f) < 0.05f) d[i] += 0.2f;
  gc_assert(f_clamp, NULL, 1, &x, EPS / 4, TOL);
  ser_tensor_release(x);
}

static int f_sum_dim1(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_sum(out, in[0], 1u << 1, 0); }
static int f_mean_dims(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_mean(out, in[0], 0x5, 1); }
static int f_var(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_var(out, in[0], 1u << 2, 1, 0); }
static int f_std_all(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_std(out, in[0], SER_ALL_DIMS, 0, 0); }

GRADCHECK_CASE(SUM, sum_over_dim) {
  ser_tensor *x = gc_randn(3, SER_DIMS(2, 3, 4), 1);
  gc_assert(f_sum_dim1, NULL, 1, &x, EPS, TOL);
  ser_tensor_release(x);
}

GRADCHECK_CASE(MEAN, mean_over_dims_keepdim) {
  ser_tensor *x = gc_randn(3, SER_DIMS(2, 3, 4), 1);
  gc_assert(f_mean_dims, NULL, 1, &x, EPS, TOL);
  ser_tensor_release(x);
}

GRADCHECK_CASE(VAR, var_and_std) {
  ser_tensor *x = gc_randn(3, SER_DIMS(2, 3, 4), 1);
  gc_assert(f_var, NULL, 1, &x, EPS, TOL);
  gc_assert(f_std_all, NULL, 1, &x, EPS, TOL);
  ser_tensor_release(x);
}

GRADCHECK_CASE(MATMUL, matmul_shared_and_batched) {
  ser_tensor *a = gc_randn(3, SER_DIMS(2, 3, 4), 1), *b = gc_randn(2, SER_DIMS(4, 5), 1);
  ser_tensor *c = gc_randn(3, SER_DIMS(2, 4, 2), 1), *v = gc_randn(1, SER_DIMS(4), 1);
  gc_assert(f_binary, (void *)ser_matmul, 2, (ser_tensor *[]){a, b}, EPS, TOL);
  gc_assert(f_binary, (void *)ser_matmul, 2, (ser_tensor *[]){a, c}, EPS, TOL);
  gc_assert(f_binary, (void *)ser_matmul, 2, (ser_tensor *[]){a, v}, EPS, TOL);
  gc_release(4, (ser_tensor *[]){a, b, c, v});
}

static int f_softmax(void *ctx, ser_tensor *const *in, ser_tensor **out) { return ser_softmax(out, in[0], *(int *)ctx); }
static int f_log_softmax(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  return ser_log_softmax(out, in[0], *(int *)ctx);
}

GRADCHECK_CASE(SOFTMAX, softmax_inner_and_middle_dim) {
  ser_tensor *x = gc_randn(3, SER_DIMS(2, 5, 3), 1);
  int d1 = 1, d2 = 2;
  gc_assert(f_softmax, &d1, 1, &x, EPS, TOL);
  gc_assert(f_softmax, &d2, 1, &x, EPS, TOL);
  ser_tensor_release(x);
}

GRADCHECK_CASE(LOG_SOFTMAX, log_softmax_inner_and_middle_dim) {
  ser_tensor *x = gc_randn(3, SER_DIMS(2, 5, 3), 1);
  int d1 = 1, d2 = 2;
  gc_assert(f_log_softmax, &d1, 1, &x, EPS, TOL);
  gc_assert(f_log_softmax, &d2, 1, &x, EPS, TOL);
  ser_tensor_release(x);
}

/* Shape ops are checked through a non-linear tail (x*x), so a misplaced
 * gradient element shows up as a wrong value, not just a permutation. */
static int squared(ser_tensor *y, ser_tensor **out) {
  int rc = ser_mul(out, y, y);
  ser_tensor_release(y);
  return rc;
}

static int f_view(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  ser_tensor *y;
  int rc = ser_view(&y, in[0], 2, SER_DIMS(4, -1));
  return rc ? rc : squared(y, out);
}
static int f_permute(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  ser_tensor *y;
  int rc = ser_permute(&y, in[0], (int[]){2, 0, 1});
  return rc ? rc : squared(y, out);
}
static int f_narrow(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  ser_tensor *y;
  int rc = ser_narrow(&y, in[0], 2, 1, 2);
  return rc ? rc : squared(y, out);
}
static int f_select(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  ser_tensor *y;
  int rc = ser_select(&y, in[0], 1, 2);
  return rc ? rc : squared(y, out);
}
static int f_contiguous(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  ser_tensor *p, *y;
  int rc = ser_transpose(&p, in[0], 0, 2);
  if (rc) return rc;
  rc = ser_contiguous(&y, p);
  ser_tensor_release(p);
  return rc ? rc : squared(y, out);
}
static int f_cat(void *ctx, ser_tensor *const *in, ser_tensor **out) {
  ser_tensor *y;
  int rc = ser_cat(&y, in, 2, 1);
  return rc ? rc : squared(y, out);
}

#define SHAPE_CASE(OP, name, fn)                             \
  GRADCHECK_CASE(OP, name) {                                 \
    ser_tensor *x = gc_randn(3, SER_DIMS(2, 3, 4), 1);       \
    gc_assert(fn, NULL, 1, &x, EPS, TOL);                    \
    ser_tensor_release(x);                                   \
  }
SHAPE_CASE(VIEW, view, f_view)
SHAPE_CASE(PERMUTE, permute, f_permute)
SHAPE_CASE(NARROW, narrow, f_narrow)
SHAPE_CASE(SELECT, select, f_select)
SHAPE_CASE(CONTIGUOUS, contiguous_of_transpose, f_contiguous)

GRADCHECK_CASE(CAT, cat_dim2) {
  ser_tensor *a = gc_randn(3, SER_DIMS(2, 3, 4), 1), *b = gc_randn(3, SER_DIMS(2, 1, 4), 1);
  gc_assert(f_cat, NULL, 2, (ser_tensor *[]){a, b}, EPS, TOL);
  gc_release(2, (ser_tensor *[]){a, b});
}
