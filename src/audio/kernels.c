#include "kernels.h"

#include <math.h>
#include <string.h>

#include "../core/cpu.h"

/* Two copies of every kernel: the -march baseline and AVX2+FMA, picked per
 * call from the CPU's features (a load and a test). GCC's target_clones did
 * this automatically but does not link under clang (bugs.md). */
#define K(name) name##_base
#include "kernels_impl.h"
#undef K

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#elif defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#endif
#define K(name) name##_avx2
#include "kernels_impl.h"
#undef K
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#elif defined(__clang__)
#pragma clang attribute pop
#endif

static int have_avx2(void) { return ser_cpu_has(SER_CPU_AVX2 | SER_CPU_FMA); }

#define DISPATCH(name, args) (have_avx2() ? name##_avx2 args : name##_base args)

void ser_k_window(float *dst, const float *src, const float *win, int n) { DISPATCH(ser_k_window, (dst, src, win, n)); }
void ser_k_power(float *p, const float *s, int nf, int magnitude) { DISPATCH(ser_k_power, (p, s, nf, magnitude)); }
void ser_k_power_lane(float *pb, const float *s, int nf, int j, int magnitude) {
  DISPATCH(ser_k_power_lane, (pb, s, nf, j, magnitude));
}
void ser_k_mel_block(float *out, int64_t ostride, const float *pb, int n_mels, float *const *w, const int *lo,
                     const int *len, int jn) {
  DISPATCH(ser_k_mel_block, (out, ostride, pb, n_mels, w, lo, len, jn));
}
void ser_k_matmul_cols(float *out, const float *a, const float *in, int nc, int nr, int64_t cols) {
  DISPATCH(ser_k_matmul_cols, (out, a, in, nc, nr, cols));
}
float ser_k_dot(const float *w, const float *p, int n) { return DISPATCH(ser_k_dot, (w, p, n)); }
float ser_k_db(float *x, int64_t n) { return DISPATCH(ser_k_db, (x, n)); }
void ser_k_clamp_min(float *x, int64_t n, float lo) { DISPATCH(ser_k_clamp_min, (x, n, lo)); }
double ser_k_sum(const float *x, int64_t n) { return DISPATCH(ser_k_sum, (x, n)); }
double ser_k_sqdev(const float *x, int64_t n, double mean) { return DISPATCH(ser_k_sqdev, (x, n, mean)); }
void ser_k_affine(float *x, int64_t n, float m, float s) { DISPATCH(ser_k_affine, (x, n, m, s)); }
