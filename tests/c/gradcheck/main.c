#include <stdio.h>
#include <stdlib.h>

#include "gradcheck.h"

#define MAX_CASES 256
static struct {
  const char *name;
  ser_op op;
  void (*fn)(void **);
} cases[MAX_CASES];
static int n_cases;

void gc_register(const char *name, ser_op op, void (*fn)(void **state)) {
  if (n_cases == MAX_CASES) {
    fprintf(stderr, "gradcheck: more than %d cases; raise MAX_CASES\n", MAX_CASES);
    exit(1);
  }
  cases[n_cases].name = name;
  cases[n_cases].op = op;
  cases[n_cases].fn = fn;
  n_cases++;
}

static uint64_t next_seed = 1;

ser_tensor *gc_randn(int ndim, const int64_t *shape, int requires_grad) {
  ser_rng rng;
  ser_rng_seed(&rng, next_seed++);
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  assert_non_null(t);
  ser_tensor_fill_normal(t, 0, 1, &rng);
  t->requires_grad = requires_grad;
  return t;
}

ser_tensor *gc_uniform(int ndim, const int64_t *shape, float lo, float hi, int requires_grad) {
  ser_rng rng;
  ser_rng_seed(&rng, next_seed++);
  ser_tensor *t = ser_tensor_empty(ndim, shape);
  assert_non_null(t);
  ser_tensor_fill_uniform(t, lo, hi, &rng);
  t->requires_grad = requires_grad;
  return t;
}

void gc_assert(ser_gradcheck_fn f, void *ctx, int n, ser_tensor *const *inputs, double eps, double tol) {
  double worst = 0;
  int rc = ser_gradcheck(f, ctx, n, inputs, eps, tol, &worst);
  printf("  worst relative error %.3g (tolerance %.3g)\n", worst, tol);
  if (rc) {
    printf("  %s\n", ser_errmsg());
    fail();
  }
}

void gc_release(int n, ser_tensor *const *ts) {
  for (int i = 0; i < n; i++) ser_tensor_release(ts[i]);
}

/* Every op in the table has a case, and that case reached the op's backward. */
static void every_op_has_a_gradient_check(void **state) {
  int missing = 0;
  for (int op = 0; op < SER_OP_COUNT; op++) {
    int has_case = 0;
    for (int i = 0; i < n_cases; i++) has_case |= cases[i].op == (ser_op)op;
    if (!has_case) {
      printf("  op '%s' has no gradient check (add a GRADCHECK_CASE in tests/c/gradcheck/)\n", ser_op_table[op].name);
      missing++;
    } else if (!ser_autograd_seen((ser_op)op)) {
      printf("  op '%s' has a case, but its backward never ran\n", ser_op_table[op].name);
      missing++;
    }
  }
  assert_int_equal(missing, 0);
}

int main(void) {
  struct CMUnitTest *tests = calloc((size_t)n_cases + 1, sizeof *tests);
  ser_autograd_seen_reset();
  for (int i = 0; i < n_cases; i++) {
    tests[i].name = cases[i].name;
    tests[i].test_func = cases[i].fn;
  }
  tests[n_cases].name = "every_op_has_a_gradient_check";
  tests[n_cases].test_func = every_op_has_a_gradient_check;
  int failed = _cmocka_run_group_tests("gradcheck", tests, (size_t)n_cases + 1, NULL, NULL);
  free(tests);
  return failed ? 1 : 0;
}
