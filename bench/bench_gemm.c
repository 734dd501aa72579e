/* GEMM throughput on the conv shapes of the three models: our bf16 kernel
 * (ser_gemm_bf16, packing and rounding included) vs OpenBLAS sgemm, and, when
 * built with SER_BENCH_DNNL (bench/bench_gemm.sh does so if libdnnl-dev is
 * installed), oneDNN 2.6's bf16 matmul with the f32 -> bf16 reorders of both
 * inputs counted, as our kernel's packing is. The three run interleaved so
 * that load from other processes hits them alike. Also prints the worst
 * relative error of our bf16 result against fp32. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "ser.h"
#ifdef SER_BENCH_DNNL
#include <dnnl.h>
#define CK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { printf("dnnl error %d at %s\n", s_, #x); exit(1); } } while (0)
static dnnl_engine_t eng; static dnnl_stream_t st;
typedef struct { dnnl_primitive_t mm, ra, rb; dnnl_memory_t a32, b32, a16, b16, c; } plan;
static void md2(dnnl_memory_desc_t *md, int r, int c, dnnl_data_type_t dt, int trans) {
  dnnl_dims_t d = {r, c};
  CK(dnnl_memory_desc_init_by_tag(md, 2, d, dt, trans ? dnnl_ba : dnnl_ab));
}
static void mkplan(plan *p, int ta, int tb, int M, int N, int K, float *A, float *B, float *C) {
  dnnl_memory_desc_t a32, b32, a16, b16, c32;
  md2(&a32, M, K, dnnl_f32, ta); md2(&b32, K, N, dnnl_f32, tb);
  md2(&a16, M, K, dnnl_bf16, 0); md2(&b16, K, N, dnnl_bf16, 0); md2(&c32, M, N, dnnl_f32, 0);
  dnnl_matmul_desc_t d; CK(dnnl_matmul_desc_init(&d, &a16, &b16, NULL, &c32));
  dnnl_primitive_desc_t pd; CK(dnnl_primitive_desc_create(&pd, &d, NULL, eng, NULL));
  CK(dnnl_primitive_create(&p->mm, pd));
  dnnl_primitive_desc_t rpa, rpb;
  CK(dnnl_reorder_primitive_desc_create(&rpa, &a32, eng, &a16, eng, NULL));
  CK(dnnl_reorder_primitive_desc_create(&rpb, &b32, eng, &b16, eng, NULL));
  CK(dnnl_primitive_create(&p->ra, rpa)); CK(dnnl_primitive_create(&p->rb, rpb));
  CK(dnnl_memory_create(&p->a32, &a32, eng, A)); CK(dnnl_memory_create(&p->b32, &b32, eng, B));
  CK(dnnl_memory_create(&p->a16, &a16, eng, DNNL_MEMORY_ALLOCATE));
  CK(dnnl_memory_create(&p->b16, &b16, eng, DNNL_MEMORY_ALLOCATE));
  CK(dnnl_memory_create(&p->c, &c32, eng, C));
}
static void run_dnnl(plan *p) {
  dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, p->a32}, {DNNL_ARG_TO, p->a16}};
  dnnl_exec_arg_t rb[2] = {{DNNL_ARG_FROM, p->b32}, {DNNL_ARG_TO, p->b16}};
  dnnl_exec_arg_t mm[3] = {{DNNL_ARG_SRC, p->a16}, {DNNL_ARG_WEIGHTS, p->b16}, {DNNL_ARG_DST, p->c}};
  CK(dnnl_primitive_execute(p->ra, st, 2, ra)); CK(dnnl_primitive_execute(p->rb, st, 2, rb));
  CK(dnnl_primitive_execute(p->mm, st, 3, mm)); CK(dnnl_stream_wait(st));
}
#endif
int main(void) {
  if (!ser_bf16_supported()) {
    printf("this CPU has no AVX512-BF16: nothing to compare\n");
    return 0;
  }
#ifdef SER_BENCH_DNNL
  CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  CK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
#endif
  printf("threads %d; GFLOP/s (higher is better)\n", omp_get_max_threads());
  /* per-image conv GEMMs: forward [OC x OHW x CKK], weight grad (B transposed), column grad (A transposed) */
  int S[][5] = {{64, 4000, 288, 0, 0},  {128, 992, 576, 0, 0},  {64, 288, 4000, 0, 1}, {288, 4000, 64, 1, 0},
                {64, 16000, 288, 0, 0}, {256, 4000, 1152, 0, 0}, {256, 1152, 4000, 0, 1}, {1152, 4000, 256, 1, 0}};
  for (size_t s = 0; s < sizeof S / sizeof *S; s++) {
    int M = S[s][0], N = S[s][1], K = S[s][2], ta = S[s][3], tb = S[s][4];
    float *A = malloc(4L * M * K), *B = malloc(4L * K * N), *C = malloc(4L * M * N), *C32 = malloc(4L * M * N);
    srand(1);
    for (long i = 0; i < (long)M * K; i++) A[i] = (float)rand() / RAND_MAX - 0.5f;
    for (long i = 0; i < (long)K * N; i++) B[i] = (float)rand() / RAND_MAX - 0.5f;
    int lda = ta ? M : K, ldb = tb ? K : N, R = 10;
    double fl = 2.0 * M * N * K * R, t[3] = {0, 0, 0}, a, b, c, d;
#ifdef SER_BENCH_DNNL
    plan p;
    mkplan(&p, ta, tb, M, N, K, A, B, C);
    run_dnnl(&p);
#endif
    ser_gemm_bf16(ta, tb, M, N, K, 1, A, lda, B, ldb, 0, C, N);
    ser_gemm_f32(ta, tb, M, N, K, 1, A, lda, B, ldb, 0, C32, N);
    double err = 0, scale = 0;
    for (long i = 0; i < (long)M * N; i++) err = fmax(err, fabs(C[i] - C32[i])), scale = fmax(scale, fabs(C32[i]));
    for (int r = 0; r < R; r++) {
      a = omp_get_wtime();
#ifdef SER_BENCH_DNNL
      run_dnnl(&p);
#endif
      b = omp_get_wtime();
      ser_gemm_bf16(ta, tb, M, N, K, 1, A, lda, B, ldb, 0, C, N);
      c = omp_get_wtime();
      ser_gemm_f32(ta, tb, M, N, K, 1, A, lda, B, ldb, 0, C, N);
      d = omp_get_wtime();
      t[0] += b - a, t[1] += c - b, t[2] += d - c;
    }
    printf("M%-5d N%-6d K%-5d %s%s  ours bf16 %6.1f   OpenBLAS f32 %6.1f   bf16/f32 %.2fx", M, N, K, ta ? "A^T" : "A  ",
           tb ? " B^T" : " B  ", fl / t[1] / 1e9, fl / t[2] / 1e9, t[2] / t[1]);
#ifdef SER_BENCH_DNNL
    printf("   oneDNN bf16 %6.1f   ours/oneDNN %.2fx", fl / t[0] / 1e9, t[0] / t[1]);
#endif
    printf("   max|err|/max|C| %.1e\n", err / scale);
    free(A), free(B), free(C), free(C32);
  }
  return 0;
}
