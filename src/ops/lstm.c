/* LSTM kernels: one layer and direction, forward and backward through time.
 * See lstm.h for the row layout; the op wrappers are in lstm_op.c. */
#include "lstm.h"

#include <math.h>
#include <string.h>

#include "gemm.h"

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* Row index of (b, t). */
static inline int64_t row_of(const ser_lstm_dims *d, int b, int t) {
  return d->batch_first ? (int64_t)b * d->T + t : (int64_t)t * d->B + b;
}

/* Rows between two batch entries of one time step, and between two time steps of one batch entry. */
static inline int64_t batch_stride(const ser_lstm_dims *d) { return d->batch_first ? d->T : 1; }
static inline int64_t time_stride(const ser_lstm_dims *d) { return d->batch_first ? 1 : d->B; }

void ser_lstm_dir_forward(float *h, float *gates, float *cell, const float *x, const float *w_ih,
                          const float *w_hh, const float *b_ih, const float *b_hh, const ser_lstm_dims *d) {
  const int B = d->B, T = d->T, I = d->I, H = d->H, G = 4 * H;
  const int64_t rows = (int64_t)B * T, sb = batch_stride(d);

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
    if (s > 0) ser_gemm(0, 1, B, G, H, 1.0f, h + row_of(d, 0, tp) * H, (int)(sb * H), w_hh, H, 1.0f, g_t, (int)(sb * G));
    for (int b = 0; b < B; b++) {
      const int64_t r = row_of(d, b, t);
      float *g = gates + r * G, *c = cell + r * H, *hh = h + r * H;
      const float *cp = s > 0 ? cell + row_of(d, b, tp) * H : NULL;
      for (int j = 0; j < H; j++) {
        const float ig = sigmoidf(g[j]), fg = sigmoidf(g[H + j]);
        const float gg = tanhf(g[2 * H + j]), og = sigmoidf(g[3 * H + j]);
        g[j] = ig;
        g[H + j] = fg;
        g[2 * H + j] = gg;
        g[3 * H + j] = og;
        const float cv = (cp ? fg * cp[j] : 0.0f) + ig * gg;
        c[j] = cv;
        hh[j] = og * tanhf(cv);
      }
    }
  }
}

void ser_lstm_dir_backward(float *dx, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *dgates,
                           float *dstate, const float *dh, const float *gates, const float *cell, const float *h,
                           const float *x, const float *w_ih, const float *w_hh, const ser_lstm_dims *d) {
  const int B = d->B, T = d->T, I = d->I, H = d->H, G = 4 * H;
  const int64_t rows = (int64_t)B * T, sb = batch_stride(d), st = time_stride(d);
  float *dh_rec = dstate;          /* [B,H] gradient reaching h_t from step t+1 (dG_{t+1} W_hh) */
  float *dc = dstate + (size_t)B * H; /* [B,H] gradient reaching c_t from step t+1 */
  memset(dstate, 0, sizeof(float) * 2 * (size_t)B * H);

  for (int s = T - 1; s >= 0; s--) {
    const int t = d->reverse ? T - 1 - s : s;
    const int tp = d->reverse ? t + 1 : t - 1;
    for (int b = 0; b < B; b++) {
      const int64_t r = row_of(d, b, t);
      const float *g = gates + r * G, *c = cell + r * H, *dhr = dh + r * H;
      const float *cp = s > 0 ? cell + row_of(d, b, tp) * H : NULL;
      float *dg = dgates + r * G, *dhb = dh_rec + (size_t)b * H, *dcb = dc + (size_t)b * H;
      for (int j = 0; j < H; j++) {
        const float ig = g[j], fg = g[H + j], gg = g[2 * H + j], og = g[3 * H + j];
        const float dhv = dhr[j] + dhb[j];
        const float tc = tanhf(c[j]);
        const float dcv = dcb[j] + dhv * og * (1.0f - tc * tc);
        dg[j] = dcv * gg * ig * (1.0f - ig);
        dg[H + j] = (cp ? dcv * cp[j] : 0.0f) * fg * (1.0f - fg);
        dg[2 * H + j] = dcv * ig * (1.0f - gg * gg);
        dg[3 * H + j] = dhv * tc * og * (1.0f - og);
        dcb[j] = dcv * fg;
      }
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
      ser_gemm(1, 0, G, H, k, 1.0f, dgates + (base + g_off) * G, G, h + (base + h_off) * H, H, 1.0f, dw_hh, H);
    }
  }
}
