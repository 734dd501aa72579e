/* Test helpers: load ../shared/fixtures (skip when absent) and compare arrays
 * with a tolerance, printing the worst element and its index. */
#ifndef SER_TEST_FIXTURE_H
#define SER_TEST_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ser.h"

/* Directory of the fixtures: $SER_FIXTURES or ../shared/fixtures. */
const char *fixture_dir(void);
int fixtures_available(void);
/* Reads NAME.f32 into a new malloc'd buffer; *n gets the element count.
 * Returns NULL if missing (tests then call skip()). */
float *fixture_load(const char *name, size_t *n);
/* Loads or skips the test; checks the element count when expect_n > 0. */
float *fixture_require(const char *name, size_t expect_n);
/* Loads a fixture as a tensor of the given shape (skips when absent). */
ser_tensor *fixture_tensor(const char *name, int ndim, const int64_t *shape);

/* Max |a-b| and max |a-b|/max(|b|,floor); prints "label: worst abs err E at [i] (got G, want W)". */
double compare_abs(const char *label, const float *got, const float *want, size_t n);
double compare_rel(const char *label, const float *got, const float *want, size_t n, double floor);
#define assert_close_abs(label, got, want, n, tol) assert_true(compare_abs(label, got, want, n) <= (tol))
#define assert_close_rel(label, got, want, n, floor, tol) \
  assert_true(compare_rel(label, got, want, n, floor) <= (tol))

#endif
