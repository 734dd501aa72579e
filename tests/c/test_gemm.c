/* ser_gemm: the bf16 kernel (amp) against a double-precision reference for
 * every transpose combination, edge sizes, alpha/beta, leading dimensions and
 * calls from inside a parallel region; bf16 rounding; the amp switch. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "lib/fixture.h"

static float *randbuf(size_t n, unsigned seed) {
  float *p = malloc(n * sizeof(float));
  srand(seed);
  for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
  return p;
}

/* C = alpha op(A) op(B) + beta C in double; bound = 2^-7 |alpha| sum |a||b|: bf16 keeps 8
 * significant bits, so rounding each factor moves it by up to 2^-8 and a
 * product by up to 2^-7 (plus fp32 noise). */
static void reference(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc, double *bound) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0, sa = 0;
      for (int k = 0; k < K; k++) {
        double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        s += a * b;
        sa += fabs(a * b);
      }
      double c = beta == 0.0f ? 0.0 : beta * (double)C[(size_t)i * ldc + j];
      C[(size_t)i * ldc + j] = (float)(alpha * s + c);
      bound[(size_t)i * ldc + j] = ldexp(fabs(alpha) * sa, -7) + 1e-5 * (1 + fabs(c) + fabs(alpha * s));
    }
}

static int f32_mode; /* check_case runs ser_gemm_f32 (our AVX-512 fp32 kernel, forced) instead of the bf16 one */

static int check_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int extra_ld) {
  int lda = (ta ? M : K) + extra_ld, ldb = (tb ? K : N) + extra_ld, ldc = N + extra_ld;
  size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
  float *A = randbuf(na, 1), *B = randbuf(nb, 2), *C = randbuf(nc, 3), *R = malloc(nc * sizeof(float));
  double *bound = calloc(nc, sizeof(double));
  if (beta == 0.0f) /* beta = 0 must overwrite, even NaN */
    for (size_t i = 0; i < nc; i++) C[i] = NAN;
  memcpy(R, C, nc * sizeof(float));
  reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc, bound);
  int rc = 0;
  if (f32_mode) {
    /* fp32: sums of K products in float, at most (K + 2) 2^-24 sum |a b| apart from the exact value */
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        size_t at = (size_t)i * ldc + j;
        bound[at] = (bound[at] - 1e-5 * (1 + fabs(R[at]))) * ldexp(K + 2.0, -17) + 1e-6 * (1 + fabs(R[at]));
      }
    ser_gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    rc = ser_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  double worst = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      size_t at = (size_t)i * ldc + j;
      double r = fabs(C[at] - R[at]) / bound[at];
      if (!(r <= worst)) worst = isnan(r) ? INFINITY : r;
    }
  printf("  %s%s M%d N%d K%d alpha %g beta %g ld+%d: worst err / bound %.3f\n", ta ? "A^T" : "A", tb ? " B^T" : " B", M,
         N, K, alpha, beta, extra_ld, worst);
  free(A), free(B), free(C), free(R), free(bound);
  return rc == 0 && worst <= 1.0;
}

static void skip_without_bf16(void) {
  if (!ser_bf16_supported()) {
    printf("skip: AVX512-BF16 %s\n", ser_cpu_why_not(SER_CPU_AVX512BF16));
    skip();
  }
}

static void test_bf16_against_reference(void **state) {
  (void)state;
  skip_without_bf16();
  int sizes[][3] = {{1, 1, 1}, {8, 48, 2}, {9, 49, 3}, {17, 100, 33}, {64, 288, 300}, {7, 5, 513}, {130, 97, 64}};
  for (int t = 0; t < 4; t++)
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
      assert_true(check_case(t & 1, t >> 1, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f, 0.0f, 0));
  assert_true(check_case(0, 0, 33, 70, 41, -0.5f, 1.0f, 3));
  assert_true(check_case(1, 1, 33, 70, 41, 2.0f, 0.25f, 5));
  assert_true(check_case(0, 1, 20, 20, 0, 1.0f, 0.5f, 0)); /* K = 0: C = beta C */
}

/* Inside our own parallel region (conv over the batch) each thread packs into
 * its own scratch and the kernel must not spawn a nested team. */
static void test_bf16_inside_parallel_region(void **state) {
  (void)state;
  skip_without_bf16();
  int ok = 1;
#pragma omp parallel num_threads(2) reduction(& : ok)
  ok = check_case(omp_get_thread_num() & 1, 1, 40, 150, 90, 1.0f, 0.0f, 0);
  assert_true(ok);
}

/* Our AVX-512 fp32 kernel (used when OpenBLAS runs narrower kernels than the
 * CPU has), forced for every size: all transpositions, edges of the 8x48
 * tiles and of the 16-wide packing, K across the 256 block, alpha/beta,
 * leading dimensions, K = 0, and from inside a parallel region. */
static void test_f32_own_against_reference(void **state) {
  (void)state;
  if (!ser_cpu_has(SER_CPU_AVX512F | SER_CPU_AVX512VL)) {
    printf("skip: no AVX-512 (CPU or SER_ISA; OpenBLAS does all fp32 products)\n");
    skip();
  }
  const int prev = ser_gemm_set_f32_kernel(2);
  f32_mode = 1;
  int sizes[][3] = {{1, 1, 1}, {8, 48, 16}, {9, 49, 17}, {17, 100, 33}, {64, 288, 300}, {7, 5, 513}, {130, 97, 64}};
  for (int t = 0; t < 4; t++)
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
      assert_true(check_case(t & 1, t >> 1, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f, 0.0f, 0));
  assert_true(check_case(0, 0, 33, 70, 41, -0.5f, 1.0f, 3));
  assert_true(check_case(1, 1, 33, 70, 41, 2.0f, 0.25f, 5));
  assert_true(check_case(0, 1, 20, 20, 0, 1.0f, 0.5f, 0));
  int ok = 1;
#pragma omp parallel num_threads(2) reduction(& : ok)
  ok = check_case(omp_get_thread_num() & 1, 1, 40, 150, 90, 1.0f, 0.0f, 0);
  assert_true(ok);
  /* the thread count does not change a bit */
  const int M = 300, N = 200, K = 700;
  float *A = randbuf((size_t)M * K, 7), *B = randbuf((size_t)N * K, 8), *C1 = malloc(sizeof(float) * M * N),
        *C2 = malloc(sizeof(float) * M * N);
  omp_set_num_threads(1);
  ser_gemm_f32(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
  omp_set_num_threads(2);
  ser_gemm_f32(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
  assert_memory_equal(C1, C2, sizeof(float) * M * N);
  free(A), free(B), free(C1), free(C2);
  f32_mode = 0;
  ser_gemm_set_f32_kernel(prev == 2 ? 2 : -1);
}

static void test_bf16_rounding(void **state) {
  (void)state;
  assert_int_equal(ser_f32_to_bf16(1.0f), 0x3f80);
  /* 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0) */
  assert_int_equal(ser_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  /* 1 + 3*2^-8 is halfway too: rounds up to the even 1 + 2^-6 */
  assert_int_equal(ser_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  assert_int_equal(ser_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81); /* just above the tie */
  assert_int_equal(ser_f32_to_bf16(INFINITY), 0x7f80);
  assert_true(isnan(ser_bf16_to_f32(ser_f32_to_bf16(NAN))));
  assert_true(ser_bf16_to_f32(ser_f32_to_bf16(-2.5f)) == -2.5f);
}

static void test_amp_switch(void **state) {
  (void)state;
  int prev = ser_set_amp(1);
  assert_int_equal(prev, 0);
  assert_int_equal(ser_amp_enabled(), ser_bf16_supported());
  assert_int_equal(ser_set_amp(0), ser_bf16_supported());
  assert_int_equal(ser_amp_enabled(), 0);
  /* with amp off ser_gemm is plain sgemm: exact on small integers */
  float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4] = {0};
  ser_gemm(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
  float want[4] = {4, 5, 10, 11};
  assert_close_abs("fp32 gemm", C, want, 4, 0);
}

/* ser_gemm_pack_a + ser_gemm_packed give exactly ser_gemm's result (A packed
 * once, used for several B, also from worker threads); NULL when the
 * product would not run in bf16, and then ser_gemm_packed is plain ser_gemm. */
static void test_prepacked_a(void **state) {
  (void)state;
  skip_without_bf16();
  assert_null(ser_gemm_pack_a(0, 40, 50, NULL, 50)); /* amp off */
  ser_set_amp(1);
  assert_null(ser_gemm_pack_a(0, 8, 50, NULL, 50)); /* M too small for bf16 */
  for (int ta = 0; ta < 2; ta++) {
    int M = 37, K = 45, N = 100;
    int lda = ta ? M : K;
    float *A = randbuf((size_t)M * K, 21), *B = randbuf((size_t)K * N, 22);
    float *C1 = calloc((size_t)M * N, 4), *C2 = calloc((size_t)M * N, 4);
    const void *Ap = ser_gemm_pack_a(ta, M, K, A, lda);
    assert_non_null(Ap);
    int ok = 1;
#pragma omp parallel for num_threads(2) reduction(& : ok)
    for (int part = 0; part < 4; part++) { /* four column blocks of B and C, like a conv's */
      int n0 = part * 25;
      ser_gemm_packed(Ap, ta, 0, M, 25, K, 1.0f, A, lda, B + n0, N, 0.0f, C1 + n0, N);
      ser_gemm(ta, 0, M, 25, K, 1.0f, A, lda, B + n0, N, 0.0f, C2 + n0, N);
    }
    assert_true(ok);
    assert_close_abs(ta ? "packed A^T" : "packed A", C1, C2, (size_t)M * N, 0.0);
    /* N below the bf16 minimum: falls back to ser_gemm (fp32 for this size) */
    ser_gemm_packed(Ap, ta, 0, M, 5, K, 1.0f, A, lda, B, N, 0.0f, C1, N);
    ser_gemm(ta, 0, M, 5, K, 1.0f, A, lda, B, N, 0.0f, C2, N);
    assert_close_abs("packed, small N", C1, C2, (size_t)M * N, 0.0);
    free(A), free(B), free(C1), free(C2);
  }
  ser_set_amp(0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bf16_against_reference), cmocka_unit_test(test_bf16_inside_parallel_region),
      cmocka_unit_test(test_bf16_rounding), cmocka_unit_test(test_amp_switch), cmocka_unit_test(test_prepacked_a),
      cmocka_unit_test(test_f32_own_against_reference)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
