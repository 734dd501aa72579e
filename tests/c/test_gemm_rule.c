/* amp's measured per-shape rule (src/ops/gemm_rule.c): the modes, a class
 * measured once and then read back from the table file (as a new process
 * would), a cached decision obeyed bit for bit by ser_gemm, a table of another
 * CPU kind ignored, the file parser on bad lines, and concurrent first uses
 * measuring a class once. The table goes to a temporary file ($SER_AMP_TABLE). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cpu.h"
#include "lib/fixture.h"
#include "ops/gemm_rule.h"
#include "ops/winograd.h"

static char table[256];

static void skip_without_bf16(void) {
  if (!ser_bf16_supported()) {
    printf("skip: AVX512-BF16 %s (amp runs fp32; no rule to measure)\n", ser_cpu_why_not(SER_CPU_AVX512BF16));
    skip();
  }
}

/* The class of a product, as documented: transpositions, then the bands of M, N, K. */
static int band(int x) { return x < 32 ? 0 : x < 64 ? 1 : x < 128 ? 2 : x < 256 ? 3 : x < 512 ? 4 : 5; }
static int class_of(int ta, int tb, int M, int N, int K) {
  return ((ta * 2 + tb) * 6 + band(M)) * 36 + band(N) * 6 + band(K);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* The key line of the table this process wrote (the CPU kind). */
static void current_key(char *key, size_t n) {
  const char *t = slurp(table);
  assert_non_null(t);
  const char *tab = strchr(t, '\t'), *nl = strchr(t, '\n');
  assert_non_null(tab);
  assert_non_null(nl);
  snprintf(key, n, "%.*s", (int)(nl - tab - 1), tab + 1);
}

static void test_modes(void **state) {
  (void)state;
  assert_int_equal(ser_gemm_set_amp_rule(SER_AMP_RULE_BF16), SER_AMP_RULE_AUTO);
  assert_true(ser_gemm_rule_bf16(0, 0, 16, 16, 16));
  ser_gemm_set_amp_rule(SER_AMP_RULE_FP32);
  assert_false(ser_gemm_rule_bf16(1, 1, 4096, 4096, 4096));
  assert_int_equal(ser_gemm_set_amp_rule(-1), SER_AMP_RULE_FP32); /* -1 only asks */
  assert_non_null(strstr(ser_gemm_rule_info(), "SER_AMP_GEMM=fp32"));
  ser_gemm_set_amp_rule(SER_AMP_RULE_AUTO);
}

static void test_measured_once_then_read(void **state) {
  (void)state;
  skip_without_bf16();
  remove(table);
  ser_gemm_rule_forget();
  double f = 0, b = 0;
  const int d = ser_gemm_rule_lookup(0, 1, 40, 100, 300, &f, &b);
  printf("  class of 40x100x300 (B^T): fp32 %.1f us, bf16 %.1f us -> %s\n", f, b, d ? "bf16" : "fp32");
  assert_int_equal(ser_gemm_rule_measured(), 1);
  assert_true(f > 0 && b > 0);
  assert_int_equal(d, b <= 0.95 * f); /* the documented margin */
  /* the same class again (another shape in the same bands): no new measurement */
  assert_int_equal(ser_gemm_rule_bf16(0, 1, 63, 127, 511), d);
  assert_int_equal(ser_gemm_rule_measured(), 1);
  const char *t = slurp(table);
  assert_non_null(t);
  assert_true(strncmp(t, "# serlua amp rule v1\t", 21) == 0);
  char line[64];
  snprintf(line, sizeof line, "\n%d\t", class_of(0, 1, 40, 100, 300));
  assert_non_null(strstr(t, line));
  /* a new process: the decision comes from the file, nothing is timed */
  ser_gemm_rule_forget();
  assert_int_equal(ser_gemm_rule_bf16(0, 1, 40, 100, 300), d);
  assert_int_equal(ser_gemm_rule_measured(), 0);
  assert_non_null(strstr(ser_gemm_rule_info(), table));
}

/* A decision in the file is what ser_gemm does, whatever the timings would say. */
static void test_cached_decision_obeyed(void **state) {
  (void)state;
  skip_without_bf16();
  ser_gemm_rule_forget();
  ser_gemm_rule_bf16(0, 0, 20, 20, 20); /* makes sure the file exists with this CPU's key */
  char key[300], text[800];
  current_key(key, sizeof key);
  const int M = 40, N = 50, K = 60, c = class_of(0, 0, M, N, K);
  float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
  float *C = malloc(sizeof(float) * M * N), *W = malloc(sizeof(float) * M * N);
  for (int i = 0; i < M * K; i++) A[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
  for (int i = 0; i < K * N; i++) B[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
  ser_set_amp(1);
  for (int want = 0; want < 2; want++) {
    /* times that argue for the other side: the recorded decision wins */
    snprintf(text, sizeof text, "# serlua amp rule v1\t%s\n%d\t%s\t%s\n", key, c, want ? "1.0\t9.0" : "9.0\t1.0",
             want ? "bf16" : "fp32");
    write_file(table, text);
    ser_gemm_rule_forget();
    ser_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    assert_int_equal(ser_gemm_rule_measured(), 0);
    if (want) assert_int_equal(ser_gemm_amp_bf16(NULL, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, W, N), 0);
    else ser_gemm_f32(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, W, N);
    assert_memory_equal(C, W, sizeof(float) * M * N);
  }
  ser_set_amp(0);
  free(A), free(B), free(C), free(W);
}

/* The same for the Winograd convolution's own bf16 kernel (classes 864 + bands
 * of Co and Ci): the recorded decision is what a 3x3 conv runs under amp. */
static void test_winograd_decision_obeyed(void **state) {
  (void)state;
  skip_without_bf16();
  if (!ser_winograd_supported()) {
    printf("skip: no Winograd path: AVX-512 %s\n", ser_cpu_why_not(SER_CPU_AVX512F));
    skip();
  }
  ser_gemm_rule_forget();
  ser_gemm_rule_bf16(0, 0, 20, 20, 20);
  char key[300], text[800];
  current_key(key, sizeof key);
  const int Ci = 20, Co = 40, H = 12, c = 864 + band(Co) * 6 + band(Ci);
  float *in = malloc(sizeof(float) * Ci * H * H), *w = malloc(sizeof(float) * Co * Ci * 9);
  float *o = malloc(sizeof(float) * Co * H * H), *want = malloc(sizeof(float) * Co * H * H);
  for (int i = 0; i < Ci * H * H; i++) in[i] = (float)((i * 29) % 83) / 41.0f - 1.0f;
  for (int i = 0; i < Co * Ci * 9; i++) w[i] = (float)((i * 31) % 79) / 39.0f - 1.0f;
  ser_set_amp(1);
  for (int bf = 0; bf < 2; bf++) {
    snprintf(text, sizeof text, "# serlua amp rule v1\t%s\n%d\t5.0\t5.0\t%s\n", key, c, bf ? "bf16" : "fp32");
    write_file(table, text);
    ser_gemm_rule_forget();
    assert_int_equal(ser_conv3x3_winograd(o, in, w, NULL, 1, Ci, H, H, Co, 1, 1, 0, 0), 0);
    assert_int_equal(ser_gemm_rule_measured(), 0);
    assert_int_equal(ser_conv3x3_winograd_prec(want, in, w, NULL, 1, Ci, H, H, Co, 1, 1, 0, 0, bf), 0);
    assert_memory_equal(o, want, sizeof(float) * Co * H * H);
  }
  /* and the two precisions really differ (bf16 rounding), so the check above can fail */
  assert_int_equal(ser_conv3x3_winograd_prec(o, in, w, NULL, 1, Ci, H, H, Co, 1, 1, 0, 0, 0), 0);
  assert_true(memcmp(o, want, sizeof(float) * Co * H * H) != 0);
  ser_set_amp(0);
  free(in), free(w), free(o), free(want);
}

/* A table measured on another CPU kind (another key) is not used. */
static void test_other_cpu_ignored(void **state) {
  (void)state;
  skip_without_bf16();
  char text[200];
  snprintf(text, sizeof text, "# serlua amp rule v1\tSome Other CPU|amx|fp32 SapphireRapids\n%d\t1.0\t9.0\tfp32\n",
           class_of(0, 0, 20, 20, 20));
  write_file(table, text);
  ser_gemm_rule_forget();
  ser_gemm_rule_bf16(0, 0, 20, 20, 20);
  assert_int_equal(ser_gemm_rule_measured(), 1);
  assert_null(strstr(slurp(table), "Some Other CPU")); /* rewritten for this CPU */
}

static void test_parser(void **state) {
  (void)state;
  static signed char d[SER_GEMM_RULE_CLASSES];
  static float f[SER_GEMM_RULE_CLASSES], b[SER_GEMM_RULE_CLASSES];
  const char *good = "# serlua amp rule v1\tK\n5\t10.0\t4.0\tbf16\n6\t1\t2\tfp32\n";
  assert_int_equal(ser_gemm_rule_parse(good, strlen(good), "K", d, f, b), 2);
  assert_int_equal(d[5], 2);
  assert_int_equal(d[6], 1);
  assert_true(f[5] == 10.0f && b[5] == 4.0f);
  memset(d, 0, sizeof d);
  assert_int_equal(ser_gemm_rule_parse(good, strlen(good), "KK", d, f, b), 0); /* another key */
  assert_int_equal(ser_gemm_rule_parse(good, 10, "K", d, f, b), 0);           /* cut in the header */
  const char *bad = "# serlua amp rule v1\tK\n"
                    "900\t1\t2\tbf16\n"   /* class out of range */
                    "-1\t1\t2\tbf16\n"    /* negative class */
                    "7\t1\t2\tfp16\n"     /* unknown side */
                    "8\t1\t2\tbf16 x\n"   /* trailing text */
                    "9\t-1\t2\tbf16\n"    /* negative time */
                    "10\tnan\t2\tbf16\n"  /* NaN time */
                    "11\t1\t2\n"          /* missing field */
                    "12\t3\t2\tfp32";     /* last line without a newline: fine */
  memset(d, 0, sizeof d);
  assert_int_equal(ser_gemm_rule_parse(bad, strlen(bad), "K", d, f, b), 1);
  assert_int_equal(d[12], 1);
}

/* Two threads meeting a new class at once: one measures, both agree. */
static void test_concurrent_first_use(void **state) {
  (void)state;
  skip_without_bf16();
  remove(table);
  ser_gemm_rule_forget();
  int got[2];
#pragma omp parallel num_threads(2)
  got[omp_get_thread_num()] = ser_gemm_rule_bf16(1, 0, 100, 200, 50);
  assert_int_equal(ser_gemm_rule_measured(), 1);
  assert_int_equal(got[0], got[1]);
}

int main(void) {
  snprintf(table, sizeof table, "/tmp/ser-test-amp-rule-%ld.tsv", (long)getpid());
  setenv("SER_AMP_TABLE", table, 1);
  unsetenv("SER_AMP_GEMM");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_modes),           cmocka_unit_test(test_measured_once_then_read),
      cmocka_unit_test(test_cached_decision_obeyed), cmocka_unit_test(test_winograd_decision_obeyed),
      cmocka_unit_test(test_other_cpu_ignored),
      cmocka_unit_test(test_parser),          cmocka_unit_test(test_concurrent_first_use)};
  const int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char lock[300];
  snprintf(lock, sizeof lock, "%s.lock", table);
  remove(table), remove(lock);
  return rc;
}
