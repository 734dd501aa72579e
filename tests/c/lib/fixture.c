#include "fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *fixture_dir(void) {
  const char *env = getenv("SER_FIXTURES");
  return env ? env : "../shared/fixtures";
}

int fixtures_available(void) {
  struct stat st;
  char path[1024];
  snprintf(path, sizeof path, "%s/MANIFEST.txt", fixture_dir());
  return stat(path, &st) == 0;
}

float *fixture_load(const char *name, size_t *n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.f32", fixture_dir(), name);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  float *buf = malloc(bytes > 0 ? (size_t)bytes : 4);
  size_t got = fread(buf, 1, (size_t)bytes, f);
  fclose(f);
  if (got != (size_t)bytes) {
    free(buf);
    return NULL;
  }
  *n = (size_t)bytes / sizeof(float);
  return buf;
}

float *fixture_require(const char *name, size_t expect_n) {
  size_t n = 0;
  float *buf = fixture_load(name, &n);
  if (!buf) {
    printf("skip: fixture %s not found in %s\n", name, fixture_dir());
    skip();
  }
  if (expect_n && n != expect_n) {
    printf("fixture %s has %zu floats, expected %zu\n", name, n, expect_n);
    fail();
  }
  return buf;
}

ser_tensor *fixture_tensor(const char *name, int ndim, const int64_t *shape) {
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
  float *buf = fixture_require(name, n);
  ser_tensor *t = ser_tensor_from_data(ndim, shape, buf);
  free(buf);
  assert_non_null(t);
  return t;
}

static double compare(const char *label, const float *got, const float *want, size_t n, int relative,
                      double floor) {
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)want[i]);
    if (relative) d /= fmax(fabs((double)want[i]), floor);
    if (isnan(d) || d > worst) {
      worst = isnan(d) ? INFINITY : d;
      at = i;
      if (isnan(d)) break;
    }
  }
  printf("  %s: worst %s err %.3g at [%zu] (got %.7g, want %.7g)\n", label, relative ? "rel" : "abs", worst, at,
         n ? got[at] : 0.0, n ? want[at] : 0.0);
  return worst;
}

double compare_abs(const char *label, const float *got, const float *want, size_t n) {
  return compare(label, got, want, n, 0, 0);
}

double compare_rel(const char *label, const float *got, const float *want, size_t n, double floor) {
  return compare(label, got, want, n, 1, floor);
}
