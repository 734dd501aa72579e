#include "rowops.h"

#include <math.h>
#include <stdint.h>

#include "../core/cpu.h"
#include "isa.h"

/* Three copies of every row kernel, like src/audio/kernels.c: the parallel
 * loops stay in the callers (plain functions), so clang's OpenMP outlining
 * never meets a target attribute (tests/fuzz/run.sh).
 *
 * The selects in exp/erf only if-convert (vectorise) when float compares are
 * not treated as trapping; nothing here reads the floating-point flags.
 * Contraction to FMA (off by default under -std=c11) shortens the
 * polynomials of the AVX2 and AVX-512 copies; the tests hold every copy to
 * the same double-precision references. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#elif defined(__clang__)
#pragma clang fp contract(fast)
#endif

#define K(name) name##_base
#include "rowops_impl.h"
#undef K

SER_ISA_BEGIN("avx2,fma")
#define K(name) name##_avx2
#include "rowops_impl.h"
#undef K
SER_ISA_END

/* 512-bit vectors: GCC's generic tuning prefers 256 even with AVX-512 on;
 * Zen 4/5 and Intel server parts run full-width 512-bit FMAs. (clang has no
 * such target option; the fuzz build takes its default.) */
#if defined(__clang__)
SER_ISA_BEGIN("avx512f,avx512dq,avx512vl,avx2,fma")
#else
SER_ISA_BEGIN("avx512f,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")
#endif
#define K(name) name##_avx512
#include "rowops_impl.h"
#undef K
SER_ISA_END

int ser_row_max_level(void) {
  static int cached = -1;
  if (cached < 0) {
    int avx2 = ser_cpu_has(SER_CPU_AVX2 | SER_CPU_FMA);
    int avx512 = avx2 && ser_cpu_has(SER_CPU_AVX512F | SER_CPU_AVX512DQ | SER_CPU_AVX512VL);
    cached = avx512 ? 2 : avx2 ? 1 : 0;
  }
  return cached;
}

static int forced = -1;

int ser_row_level(void) { return forced >= 0 ? forced : ser_row_max_level(); }

int ser_row_set_level(int level) {
  int prev = ser_row_level();
  int mx = ser_row_max_level();
  forced = level < 0 ? -1 : level > mx ? mx : level;
  return prev;
}

#define DISPATCH(name, args)                   \
  switch (ser_row_level()) {                   \
    case 2: return name##_avx512 args;         \
    case 1: return name##_avx2 args;           \
    default: return name##_base args;          \
  }

void ser_row_gelu(float *out, const float *in, int64_t n) { DISPATCH(gelu, (out, in, n)) }
void ser_row_bias_gelu(float *x, const float *bias, int n) { DISPATCH(bias_gelu, (x, bias, n)) }
void ser_row_gelu_backward(float *din, const float *dout, const float *in, int64_t n) {
  DISPATCH(gelu_backward, (din, dout, in, n))
}
float ser_row_softmax(float *y, const float *x, int n) { DISPATCH(softmax, (y, x, n)) }
void ser_row_softmax_backward(float *ds, const float *p, const float *dp, int n, float scale) {
  DISPATCH(softmax_backward, (ds, p, dp, n, scale))
}
void ser_row_layernorm(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b, int n,
                       float eps) {
  DISPATCH(layernorm, (out, mean, rstd, x, w, b, n, eps))
}
void ser_row_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *x, const float *w,
                                float mean, float rstd, int n) {
  DISPATCH(layernorm_backward, (din, dw, db, dout, x, w, mean, rstd, n))
}
