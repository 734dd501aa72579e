/* The AMX bf16 GEMM. No machine of the session that wrote it had AMX, so the
 * kernel source (src/ops/gemm_amx_impl.h) is built a second time here with its
 * tile layer mapped to a software emulator of the tile instructions, and that
 * build is checked against a double reference, our fp32 GEMM and the
 * AVX512-BF16 kernel on odd shapes, partial tiles, every transposition and
 * alpha/beta. The hardware path (src/ops/gemm_amx.c) is tested where the CPU
 * has AMX and is skipped, with the reason, elsewhere.
 *
 * The emulator follows the pseudo-code of Intel's SDM (TDPBF16PS, TILELOADD,
 * TILESTORED, LDTILECFG, TILEZERO), with these readings stated:
 *  - tdpbf16ps: for each row m of the destination and pair k of A's columns,
 *    for each column n: c += fp32(a[m].bf16[2k]) * fp32(b[k].bf16[2n]), then
 *    c += fp32(a[m].bf16[2k+1]) * fp32(b[k].bf16[2n+1]): two additions, each
 *    rounded to nearest even in fp32 (a product of two bf16 is exact in fp32,
 *    so "FMA" and "multiply, then add" agree); bf16 input denormals are read
 *    as zero and fp32 output denormals are flushed to zero (as VDPBF16PS,
 *    whose text the SDM repeats for the tile form); MXCSR is not used.
 *  - the shapes must agree (dst.rows == a.rows, dst.colsb == b.colsb,
 *    a.colsb / 4 == b.rows) or the instruction faults (#UD): counted here as
 *    an error, which fails the test.
 *  - tileloadd reads `rows` rows of `colsb` bytes and zeroes the rest of the
 *    tile; tilestored writes `rows` rows of `colsb` bytes; ldtilecfg zeroes
 *    every tile; a configuration with palette 1 allows 16 rows x 64 bytes. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "lib/fixture.h"

/* ---- the tile emulator (per thread, as tile state is) ------------------- */

static _Thread_local uint8_t emu_tile[8][16][64];
static _Thread_local int emu_rows[8], emu_colsb[8], emu_configured;
static int emu_errors; /* shape faults, any thread */
static _Thread_local long emu_dp_count;

static void emu_fault(const char *what) {
#pragma omp atomic
  emu_errors++;
  printf("  emulator fault: %s\n", what);
}

static void emu_config(const void *p) {
  const uint8_t *b = p;
  if (b[0] != 1) emu_fault("palette is not 1");
  for (int t = 0; t < 8; t++) {
    uint16_t colsb;
    memcpy(&colsb, b + 16 + 2 * t, 2);
    emu_rows[t] = b[48 + t], emu_colsb[t] = colsb;
    if (emu_rows[t] > 16 || colsb > 64) emu_fault("tile larger than 16 rows x 64 bytes");
  }
  memset(emu_tile, 0, sizeof emu_tile);
  emu_configured = 1;
}

static void emu_check(int t) {
  if (!emu_configured) emu_fault("tile used before ldtilecfg");
  if (emu_rows[t] == 0 || emu_colsb[t] == 0) emu_fault("tile used but not configured");
}

static void emu_load(int t, const void *base, size_t stride) {
  emu_check(t);
  memset(emu_tile[t], 0, sizeof emu_tile[t]);
  for (int r = 0; r < emu_rows[t]; r++) memcpy(emu_tile[t][r], (const uint8_t *)base + r * stride, emu_colsb[t]);
}

static void emu_store(int t, void *base, size_t stride) {
  emu_check(t);
  for (int r = 0; r < emu_rows[t]; r++) memcpy((uint8_t *)base + r * stride, emu_tile[t][r], emu_colsb[t]);
}

static void emu_zero(int t) { memset(emu_tile[t], 0, sizeof emu_tile[t]); }

static float bf16_daz(uint16_t h) { /* bf16 -> fp32, denormal inputs as zero */
  if ((h & 0x7f80) == 0) h &= 0x8000;
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static float ftz(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x; }

static void emu_dp(int c, int a, int b) {
  emu_check(c), emu_check(a), emu_check(b);
  if (emu_rows[c] != emu_rows[a] || emu_colsb[c] != emu_colsb[b] || emu_colsb[a] / 4 != emu_rows[b])
    emu_fault("tdpbf16ps operand shapes disagree");
  emu_dp_count++;
  for (int m = 0; m < emu_rows[c]; m++)
    for (int k = 0; k < emu_colsb[a] / 4; k++)
      for (int n = 0; n < emu_colsb[c] / 4; n++) {
        uint16_t a0, a1, b0, b1;
        float acc;
        memcpy(&a0, &emu_tile[a][m][4 * k], 2), memcpy(&a1, &emu_tile[a][m][4 * k + 2], 2);
        memcpy(&b0, &emu_tile[b][k][4 * n], 2), memcpy(&b1, &emu_tile[b][k][4 * n + 2], 2);
        memcpy(&acc, &emu_tile[c][m][4 * n], 4);
        volatile float s = acc + bf16_daz(a0) * bf16_daz(b0); /* volatile: one rounding per addition */
        s = ftz(s);
        s = s + bf16_daz(a1) * bf16_daz(b1);
        acc = ftz(s);
        memcpy(&emu_tile[c][m][4 * n], &acc, 4);
      }
}

static void emu_release(void) { emu_configured = 0; }

#define AMX_FN
#define AMX_CONFIG(p) emu_config(p)
#define AMX_LOAD(t, p, s) emu_load(t, p, s)
#define AMX_STORE(t, p, s) emu_store(t, p, s)
#define AMX_ZERO(t) emu_zero(t)
#define AMX_DP(c, a, b) emu_dp(c, a, b)
#define AMX_RELEASE() emu_release()
#include "ops/gemm_amx_impl.h"
#include "ops/gemm_amx.h"

/* The emulated kernel with the packing of gemm_amx.c (A packed here, or given). */
static void emu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  uint32_t *Ap = aligned_alloc(64, amx_pack_a_bytes(M, K) + 64), *Bp = aligned_alloc(64, amx_pack_b_bytes(N, K) + 64);
  amx_pack_a(Ap, ta, A, lda, M, K);
  amx_gemm_packed(Ap, Bp, tb, B, ldb, M, N, K, alpha, beta, C, ldc);
  free(Ap), free(Bp);
}

/* ---- checks ------------------------------------------------------------- */

static float *randbuf(size_t n, unsigned seed) {
  float *p = malloc(n * sizeof(float));
  srand(seed);
  for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
  return p;
}

enum { KERNEL_EMU, KERNEL_HW };

/* One case: the kernel against (1) a double reference with the bf16 bound
 * 2^-7 |alpha| sum |a b| (each factor rounded to 8 significant bits) plus fp32
 * noise, (2) ser_gemm_f32 within the same bound, and (3) the AVX512-BF16
 * kernel, which multiplies the same rounded inputs, within the fp32 summation
 * bound of both: (K + 2) 2^-23 |alpha| sum |a b|. Prints the worst ratios. */
static int check_case(int kernel, int ta, int tb, int M, int N, int K, float alpha, float beta, int extra_ld) {
  const int lda = (ta ? M : K) + extra_ld, ldb = (tb ? K : N) + extra_ld, ldc = N + extra_ld;
  const size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
  float *A = randbuf(na, 11), *B = randbuf(nb, 12), *C0 = randbuf(nc, 13);
  if (beta == 0.0f) /* beta = 0 must overwrite, even NaN */
    for (size_t i = 0; i < nc; i++) C0[i] = NAN;
  float *C = malloc(nc * 4), *F = malloc(nc * 4), *H = malloc(nc * 4);
  double *R = calloc(nc, sizeof(double)), *bb = calloc(nc, sizeof(double)), *bs = calloc(nc, sizeof(double));
  memcpy(C, C0, nc * 4), memcpy(F, C0, nc * 4), memcpy(H, C0, nc * 4);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0, sa = 0;
      for (int k = 0; k < K; k++) {
        const double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        const double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        s += a * b, sa += fabs(a * b);
      }
      const size_t at = (size_t)i * ldc + j;
      const double c = beta == 0.0f ? 0.0 : beta * (double)C0[at];
      R[at] = alpha * s + c;
      bb[at] = ldexp(fabs(alpha) * sa, -7) * 1.02 + 1e-5 * (1 + fabs(c) + fabs(alpha * s));
      bs[at] = ldexp(fabs(alpha) * sa * 1.02, -7) * (K + 2.0) * ldexp(1, -16) + 1e-6 * (1 + fabs(c) + fabs(alpha * s));
    }
  int rc = 0;
  if (kernel == KERNEL_EMU) emu_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else rc = ser_gemm_amx(NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  ser_gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, F, ldc);
  const int have_bf16 = ser_bf16_supported();
  if (have_bf16) ser_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, H, ldc);
  double wr = 0, wf = 0, wh = 0, abs_f = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      const size_t at = (size_t)i * ldc + j;
      const double er = fabs(C[at] - R[at]) / bb[at], ef = fabs(C[at] - F[at]) / (bb[at] + bs[at]);
      const double eh = have_bf16 ? fabs(C[at] - H[at]) / bs[at] : 0;
      if (!(er <= wr)) wr = isnan(er) ? INFINITY : er;
      if (!(ef <= wf)) wf = isnan(ef) ? INFINITY : ef;
      if (!(eh <= wh)) wh = isnan(eh) ? INFINITY : eh;
      if (fabs(C[at] - F[at]) > abs_f) abs_f = fabs(C[at] - F[at]);
    }
  /* the columns past N in each row (ldc padding) are never written */
  for (int i = 0; i < M; i++)
    for (int j = N; j < ldc; j++)
      if (memcmp(&C[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j], 4) != 0) wr = INFINITY;
  printf("  %s %s%s M%d N%d K%d alpha %g beta %g ld+%d: err/bound vs double %.3f, vs fp32 %.3f (max |diff| %.2e), "
         "vs AVX512-BF16 %.3f\n",
         kernel == KERNEL_EMU ? "emulated" : "hardware", ta ? "A^T" : "A", tb ? " B^T" : " B", M, N, K, alpha, beta,
         extra_ld, wr, wf, abs_f, wh);
  free(A), free(B), free(C0), free(C), free(F), free(H), free(R), free(bb), free(bs);
  return rc == 0 && wr <= 1.0 && wf <= 1.0 && wh <= 1.0;
}

static void skip_without_bf16(void) {
  if (!ser_bf16_supported()) { /* the packers use AVX512-BF16 conversions, also in the emulated build */
    printf("skip: AVX512-BF16 %s (the AMX packers need it)\n", ser_cpu_why_not(SER_CPU_AVX512BF16));
    skip();
  }
}

static int run_cases(int kernel) {
  /* M, N across the 16-row/column partial tiles and the 32x32 blocks; K across
   * the 32-k tile step (odd K: the last pair's high half is padding). */
  static const int sizes[][3] = {{1, 1, 1},    {16, 16, 32},  {17, 15, 33}, {31, 33, 31},  {32, 32, 64},
                                 {33, 47, 65}, {8, 48, 2},    {40, 300, 7}, {130, 97, 64}, {7, 5, 513},
                                 {64, 288, 300}, {100, 260, 96}};
  int ok = 1;
  for (int t = 0; t < 4; t++)
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
      ok &= check_case(kernel, t & 1, t >> 1, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f, 0.0f, 0);
  ok &= check_case(kernel, 0, 0, 33, 70, 41, -0.5f, 1.0f, 3);
  ok &= check_case(kernel, 1, 1, 33, 70, 41, 2.0f, 0.25f, 5);
  ok &= check_case(kernel, 1, 0, 45, 19, 100, 0.75f, -1.5f, 1);
  ok &= check_case(kernel, 0, 1, 20, 20, 0, 1.0f, 0.5f, 0); /* K = 0: C = beta C */
  return ok;
}

/* The emulator itself, on hand-made tiles: the two additions of a pair are
 * rounded separately (1 + 2^-24 + 2^-24 stays 1 in fp32, where one rounding of
 * the exact sum would give 1 + 2^-23), denormal inputs count as zero, shapes
 * that disagree fault. */
static void test_emulator_semantics(void **state) {
  (void)state;
  struct amx_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  cfg.rows[0] = 1, cfg.colsb[0] = 4; /* C: 1 x 1 fp32 */
  cfg.rows[1] = 1, cfg.colsb[1] = 4; /* A: 1 row, one pair */
  cfg.rows[2] = 1, cfg.colsb[2] = 4; /* B: one pair row, one column */
  emu_errors = 0;
  emu_config(&cfg);
  const float one = 1.0f;
  const uint16_t a[2] = {0x3f80, 0x3f80}; /* 1, 1 */
  const uint16_t b[2] = {0x3380, 0x3380}; /* 2^-24, 2^-24 */
  emu_load(0, &one, 4), emu_load(1, a, 4), emu_load(2, b, 4);
  emu_dp(0, 1, 2);
  float got;
  emu_store(0, &got, 4);
  assert_true(got == 1.0f);
  const uint16_t dn[2] = {0x0001, 0x8040}; /* bf16 denormals */
  emu_load(1, dn, 4);
  emu_zero(0);
  emu_dp(0, 1, 2);
  emu_store(0, &got, 4);
  assert_true(got == 0.0f);
  assert_int_equal(emu_errors, 0);
  cfg.rows[2] = 2; /* B has 2 pair rows, A one pair: #UD on hardware */
  emu_config(&cfg);
  emu_dp(0, 1, 2);
  assert_int_equal(emu_errors, 1);
  emu_errors = 0;
  emu_release();
}

static void test_emulated_kernel(void **state) {
  (void)state;
  skip_without_bf16();
  emu_errors = 0;
  emu_dp_count = 0;
  assert_true(run_cases(KERNEL_EMU));
  assert_int_equal(emu_errors, 0);
  assert_true(emu_dp_count > 0); /* the tiles did the work (the main thread's share at least) */
}

/* From worker threads (conv over the batch calls the GEMM inside its own
 * parallel region) and with several threads sharing one product; the thread
 * count does not change a bit (each element is summed in one order). */
static void test_emulated_threads(void **state) {
  (void)state;
  skip_without_bf16();
  int ok = 1;
  emu_errors = 0;
#pragma omp parallel num_threads(2) reduction(& : ok)
  ok = check_case(KERNEL_EMU, omp_get_thread_num() & 1, 1, 40, 150, 90, 1.0f, 0.0f, 0);
  assert_true(ok);
  const int M = 150, N = 200, K = 300;
  float *A = randbuf((size_t)M * K, 7), *B = randbuf((size_t)N * K, 8), *C1 = malloc(sizeof(float) * M * N),
        *C2 = malloc(sizeof(float) * M * N);
  omp_set_num_threads(1);
  emu_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
  omp_set_num_threads(2);
  emu_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
  assert_memory_equal(C1, C2, sizeof(float) * M * N);
  assert_int_equal(emu_errors, 0);
  free(A), free(B), free(C1), free(C2);
}

/* The products of the three models under amp (conv im2col forward, input- and
 * weight-gradient, the LSTM input projection, the classifier): the error of
 * the emulated AMX kernel against fp32, per shape (docs/engine.md quotes it). */
static void test_emulated_model_shapes(void **state) {
  (void)state;
  skip_without_bf16();
  static const struct { const char *what; int ta, tb, M, N, K; } shapes[] = {
      {"CNN2D conv2 forward  [64,288]x[288,2000]", 0, 0, 64, 2000, 288},
      {"CNN2D conv2 dW       [64,2000]x[2000,288]^T", 0, 1, 64, 288, 2000},
      {"CNN2D conv2 dcol     [288,64]^T x[64,2000]", 1, 0, 288, 2000, 64},
      {"CRNN LSTM input proj [2008,256]x[512,256]^T", 0, 1, 2008, 512, 256},
      {"CNN1D conv forward   [128,384]x[384,1000]", 0, 0, 128, 1000, 384},
      {"Linear dW            [80,64]^T x[80,256]", 1, 0, 64, 256, 80},
  };
  int ok = 1;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    printf("%s\n", shapes[s].what);
    ok &= check_case(KERNEL_EMU, shapes[s].ta, shapes[s].tb, shapes[s].M, shapes[s].N, shapes[s].K, 1.0f, 0.0f, 0);
  }
  assert_true(ok);
  assert_int_equal(emu_errors, 0);
}

/* The hardware path: only where the CPU has AMX (and Linux grants the tiles). */
static void test_amx_hardware(void **state) {
  (void)state;
  if (!ser_gemm_amx_available()) {
    printf("skip: AMX hardware path not run: %s\n", ser_gemm_amx_reason());
    skip();
  }
  assert_true(run_cases(KERNEL_HW));
  /* through ser_gemm with amp, and the prepacked-A entry, against the emulator */
  const int M = 37, N = 100, K = 45;
  float *A = randbuf((size_t)M * K, 21), *B = randbuf((size_t)K * N, 22);
  float *C1 = calloc((size_t)M * N, 4), *C2 = calloc((size_t)M * N, 4);
  ser_set_amp(1);
  const int rule = ser_gemm_set_amp_rule(SER_AMP_RULE_BF16); /* AMX whatever this CPU measured */
  const void *Ap = ser_gemm_pack_a(0, M, K, A, K);
  assert_non_null(Ap);
  ser_gemm_packed(Ap, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
  ser_set_amp(0);
  ser_gemm_set_amp_rule(rule);
  emu_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
  assert_memory_equal(C1, C2, sizeof(float) * M * N); /* same packing, same tile order, same sums */
  free(A), free(B), free(C1), free(C2);
}

/* SER_AMX=0 and a CPU without AMX both say why in ser_gemm_info(). */
static void test_reason_named(void **state) {
  (void)state;
  const char *info = ser_gemm_info();
  printf("  ser_gemm_info: %s\n", info);
  if (ser_bf16_supported()) assert_non_null(strstr(info, ser_gemm_amx_available() ? "AMX tiles" : "AMX: "));
  const char *env = getenv("SER_AMX");
  if (env && strcmp(env, "0") == 0) assert_string_equal(ser_gemm_amx_reason(), "off (SER_AMX=0)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_emulator_semantics), cmocka_unit_test(test_emulated_kernel),
      cmocka_unit_test(test_emulated_threads),   cmocka_unit_test(test_emulated_model_shapes),
      cmocka_unit_test(test_amx_hardware),       cmocka_unit_test(test_reason_named)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
