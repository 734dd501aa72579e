/* LSTM kernels: one layer and direction, forward and backward through time.
 * See lstm.h for the row layout; the op wrappers are in lstm_op.c. */
#include "lstm.h"

#include <math.h>
#include <string.h>

#include "../core/cpu.h"
#include "gemm.h"
#include "isa.h"

/* Elementwise math of the cell. The gate nonlinearities are most of the
 * LSTM's time outside the GEMMs, and glibc's scalar expf/tanhf keep the
 * compiler from vectorising, so exp is Cephes' expf (range reduction by ln 2,
 * degree-6 polynomial, about 1 ulp) written on vector types of 4 floats (GCC
 * and clang vector extensions): plain arithmetic and masks, no branches, no
 * libm. Four lanes because that is the baseline ABI: 8-float types passed
 * between functions compiled without AVX are an error in clang (the fuzz
 * build) and an ABI warning in GCC. The row functions are built for
 * x86-64-v4, v3 (FMA) and the baseline (lstm_rows_impl.h), picked by ISA level
 * (not CPU model, which would never match AMD) through src/core/cpu.h. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void v4_store(float *p, v4f v) { memcpy(p, &v, sizeof v); }
static inline v4f v4_splat(float x) { return (v4f){x, x, x, x}; }
/* mask ? a : b, mask lanes all-ones or zero */
static inline v4f v4_select(v4i mask, v4f a, v4f b) { return (v4f)(((v4i)a & mask) | ((v4i)b & ~mask)); }

static inline v4f v4_exp(v4f x) {
  const v4i is_num = x == x;
  v4f xc = v4_select(is_num, x, v4_splat(0.0f)); /* NaN computes on 0, returned as is below */
  xc = v4_select(xc < v4_splat(-87.3f), v4_splat(-87.3f), xc);
  xc = v4_select(xc > v4_splat(88.7f), v4_splat(88.7f), xc);
  /* round to nearest through the 1.5*2^23 magic number: n in the float and in the low bits */
  const v4f magic = v4_splat(12582912.0f);
  const v4f t = xc * v4_splat(1.44269504088896341f) + magic;
  const v4f n = t - magic;
  const v4i ni = (v4i)t - (v4i)magic;
  v4f r = xc - n * v4_splat(0.693359375f);
  r = r - n * v4_splat(-2.12194440e-4f);
  const v4f r2 = r * r;
  v4f p = v4_splat(1.9875691500e-4f);
  p = p * r + v4_splat(1.3981999507e-3f);
  p = p * r + v4_splat(8.3334519073e-3f);
  p = p * r + v4_splat(4.1665795894e-2f);
  p = p * r + v4_splat(1.6666665459e-1f);
  p = p * r + v4_splat(5.0000001201e-1f);
  p = p * r2 + r + v4_splat(1.0f);
  const v4f y = p * (v4f)((ni + 127) << 23);
  return v4_select(is_num, y, x);
}
static inline v4f v4_sigmoid(v4f x) { return v4_splat(1.0f) / (v4_splat(1.0f) + v4_exp(-x)); }
/* tanh x = 2σ(2x) - 1: absolute error ~1e-7, which is all the cell needs */
static inline v4f v4_tanh(v4f x) { return v4_splat(2.0f) / (v4_splat(1.0f) + v4_exp(x * v4_splat(-2.0f))) - v4_splat(1.0f); }

/* Scalar tails (H not a multiple of 4) go through the same vector code. */
static inline float sigmoid1(float x) { return v4_sigmoid(v4_splat(x))[0]; }
static inline float tanh1(float x) { return v4_tanh(v4_splat(x))[0]; }

#define K(name) name##_base
#include "lstm_rows_impl.h"
#undef K
SER_ISA_BEGIN("arch=x86-64-v3")
#define K(name) name##_v3
#include "lstm_rows_impl.h"
#undef K
SER_ISA_END
SER_ISA_BEGIN("arch=x86-64-v4")
#define K(name) name##_v4
#include "lstm_rows_impl.h"
#undef K
SER_ISA_END

/* The copies one layer's pass uses, chosen per call (SER_ISA can lower them). */
typedef struct {
  void (*activate)(float *g, int H);
  void (*cell)(float *c, float *tc, float *h, const float *g, const float *cp, int H);
  void (*cell_backward)(float *dg, float *dc, const float *dh_out, const float *dh_rec, const float *g,
                        const float *tc, const float *cp, int H);
} lstm_rows;

static lstm_rows rows_for_cpu(void) {
  if (ser_cpu_has(SER_CPU_X86_64_V4)) return (lstm_rows){activate_row_v4, cell_row_v4, cell_row_backward_v4};
  if (ser_cpu_has(SER_CPU_X86_64_V3)) return (lstm_rows){activate_row_v3, cell_row_v3, cell_row_backward_v3};
  return (lstm_rows){activate_row_base, cell_row_base, cell_row_backward_base};
}

/* Row index of (b, t). */
static inline int64_t row_of(const ser_lstm_dims *d, int b, int t) {
  return d->batch_first ? (int64_t)b * d->T + t : (int64_t)t * d->B + b;
}

/* Rows between two batch entries of one time step, and between two time steps of one batch entry. */
static inline int64_t batch_stride(const ser_lstm_dims *d) { return d->batch_first ? d->T : 1; }
static inline int64_t time_stride(const ser_lstm_dims *d) { return d->batch_first ? 1 : d->B; }

void ser_lstm_dir_forward(float *h, float *gates, float *cell, float *tcell, const float *x, const float *w_ih,
                          const float *w_hh, const float *b_ih, const float *b_hh, const ser_lstm_dims *d) {
  const int B = d->B, T = d->T, I = d->I, H = d->H, G = 4 * H, ldh = d->ldh ? d->ldh : H;
  const int64_t rows = (int64_t)B * T, sb = batch_stride(d);
  const lstm_rows R = rows_for_cpu();

  /* Input projections of every time step in one GEMM: gates = x W_ih^T + b_ih + b_hh. */
  ser_gemm(0, 1, (int)rows, G, I, 1.0f, x, I, w_ih, I, 0.0f, gates, G);
  if (b_ih || b_hh) {
    for (int64_t r = 0; r < rows; r++) {
      float *g = gates + r * G;
      for (int j = 0; j < G; j++) g[j] += (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
    }
  }

  for (int s = 0; s < T; s++) {
    const int t = d->reverse ? T - 1 - s : s;
    const int tp = d->reverse ? t + 1 : t - 1; /* the step before in processing order */
    float *g_t = gates + row_of(d, 0, t) * G;
    /* Recurrent term for the B rows of this step: one strided GEMM (h_{-1} = 0 adds nothing). */
    if (s > 0)
      ser_gemm(0, 1, B, G, H, 1.0f, h + row_of(d, 0, tp) * ldh, (int)(sb * ldh), w_hh, H, 1.0f, g_t, (int)(sb * G));
    for (int b = 0; b < B; b++) {
      const int64_t r = row_of(d, b, t);
      R.activate(gates + r * G, H);
      R.cell(cell + r * H, tcell + r * H, h + r * ldh, gates + r * G, s > 0 ? cell + row_of(d, b, tp) * H : NULL, H);
    }
  }
}

void ser_lstm_dir_backward(float *dx, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *dgates,
                           float *dstate, const float *dh, const float *gates, const float *cell, const float *tcell,
                           const float *h, const float *x, const float *w_ih, const float *w_hh,
                           const ser_lstm_dims *d) {
  const int B = d->B, T = d->T, I = d->I, H = d->H, G = 4 * H, ldh = d->ldh ? d->ldh : H;
  const int64_t rows = (int64_t)B * T, sb = batch_stride(d), st = time_stride(d);
  float *dh_rec = dstate;          /* [B,H] gradient reaching h_t from step t+1 (dG_{t+1} W_hh) */
  float *dc = dstate + (size_t)B * H; /* [B,H] gradient reaching c_t from step t+1 */
  const lstm_rows R = rows_for_cpu();
  memset(dstate, 0, sizeof(float) * 2 * (size_t)B * H);

  for (int s = T - 1; s >= 0; s--) {
    const int t = d->reverse ? T - 1 - s : s;
    const int tp = d->reverse ? t + 1 : t - 1;
    for (int b = 0; b < B; b++) {
      const int64_t r = row_of(d, b, t);
      R.cell_backward(dgates + r * G, dc + (size_t)b * H, dh + r * ldh, dh_rec + (size_t)b * H, gates + r * G,
                      tcell + r * H, s > 0 ? cell + row_of(d, b, tp) * H : NULL, H);
    }
    /* dh_{t-1} from the recurrent product: dG_t W_hh ([B,4H] x [4H,H]). */
    if (s > 0)
      ser_gemm(0, 0, B, H, G, 1.0f, dgates + row_of(d, 0, t) * G, (int)(sb * G), w_hh, H, 0.0f, dh_rec, H);
  }

  /* Weight gradients over all time steps at once. */
  if (dw_ih) ser_gemm(1, 0, G, I, (int)rows, 1.0f, dgates, G, x, I, 1.0f, dw_ih, I);
  if (dx) ser_gemm(0, 0, (int)rows, I, G, 1.0f, dgates, G, w_ih, I, 1.0f, dx, I);
  if (db_ih || db_hh) {
    for (int64_t r = 0; r < rows; r++) {
      const float *dg = dgates + r * G;
      if (db_ih)
        for (int j = 0; j < G; j++) db_ih[j] += dg[j];
      if (db_hh)
        for (int j = 0; j < G; j++) db_hh[j] += dg[j];
    }
  }
  /* dW_hh = sum over steps with a predecessor of dG_t^T h_prev. The rows of those
   * steps and of their predecessors are each contiguous runs: one run per batch
   * entry when batch_first (T-1 rows), a single run when time-major ((T-1)*B rows). */
  if (dw_hh && T > 1) {
    const int outer = d->batch_first ? B : 1;
    const int k = d->batch_first ? T - 1 : (T - 1) * B;
    const int64_t g_off = d->reverse ? 0 : st, h_off = d->reverse ? st : 0;
    for (int o = 0; o < outer; o++) {
      const int64_t base = d->batch_first ? (int64_t)o * sb : 0;
      ser_gemm(1, 0, G, H, k, 1.0f, dgates + (base + g_off) * G, G, h + (base + h_off) * ldh, ldh, 1.0f, dw_hh, H);
    }
  }
}
