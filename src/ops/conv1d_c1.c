#include "conv1d_c1.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "../core/cpu.h"
#include "../core/error.h"
#include "scratch.h"

int ser_conv1d_c1s2_supported(void) {
  return ser_cpu_has(SER_CPU_AVX512F);   /* detected once, in core/cpu.c */
}

/* One image's phases: E[i] = x[2 (i - M)], D[i] = x[2 (i - M) + 1], zero
 * outside the signal. M = ceil(pad / 2) is the lowest phase offset of a tap, so
 * every tap's read starts at index >= 0; len covers the last vector of outputs
 * (rounded up to 16) at the highest tap offset. */
typedef struct {
  int W, OC, K, pad, OW, M, len;
} geom;

static void geom_init(geom *g, int W, int OC, int K, int pad) {
  g->W = W, g->OC = OC, g->K = K, g->pad = pad;
  g->OW = (W + 2 * pad - K) / 2 + 1;
  g->M = (pad + 1) / 2;
  int owr = (g->OW + 15) / 16 * 16;
  g->len = (owr + K / 2 + g->M + 1 + 15) / 16 * 16;
}

static void split(float *E, float *D, const float *x, const geom *g) {
  memset(E, 0, sizeof(float) * 2 * (size_t)g->len); /* D follows E */
  int ne = (g->W + 1) / 2, nd = g->W / 2;
  for (int j = 0; j < ne && j + g->M < g->len; j++) E[j + g->M] = x[2 * j];
  for (int j = 0; j < nd && j + g->M < g->len; j++) D[j + g->M] = x[2 * j + 1];
}

/* Where tap k reads for output 0: phase (k - pad) & 1 at offset floor((k - pad) / 2). */
static const float *tap_src(const float *E, const float *D, const geom *g, int k) {
  int q = k - g->pad, ph = q & 1, s = (q - ph) / 2;
  return (ph ? D : E) + g->M + s;
}

/* Inlined with K a constant (9) in the common case, so the taps unroll and the
 * accumulators stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void row_forward_k(float *o, const float *E,
                                                                                    const float *D, const float *w,
                                                                                    float bias, const geom *g,
                                                                                    int K) {
  const float *src[SER_CONV1D_C1_MAX_K];
  for (int k = 0; k < K; k++) src[k] = tap_src(E, D, g, k);
  int OW = g->OW;
  for (int i = 0; i < OW; i += 16) {
    __m512 acc = _mm512_set1_ps(bias);
    for (int k = 0; k < K; k++) acc = _mm512_fmadd_ps(_mm512_set1_ps(w[k]), _mm512_loadu_ps(src[k] + i), acc);
    int left = OW - i;
    _mm512_mask_storeu_ps(o + i, left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1), acc);
  }
}

__attribute__((target("avx512f"))) static void row_forward(float *o, const float *E, const float *D, const float *w,
                                                           float bias, const geom *g) {
  if (g->K == 9)
    row_forward_k(o, E, D, w, bias, g, 9);
  else
    row_forward_k(o, E, D, w, bias, g, g->K);
}

/* part[k] = sum_o dy[o] x[2o + k - pad], part[K] = sum_o dy[o], over one output row. */
__attribute__((target("avx512f"), always_inline)) static inline void row_dweight_k(float *part, const float *dy,
                                                                                    const float *E, const float *D,
                                                                                    const geom *g, int K) {
  const float *src[SER_CONV1D_C1_MAX_K];
  __m512 acc[SER_CONV1D_C1_MAX_K + 1];
  for (int k = 0; k < K; k++) src[k] = tap_src(E, D, g, k);
  for (int k = 0; k <= K; k++) acc[k] = _mm512_setzero_ps();
  int OW = g->OW;
  for (int i = 0; i < OW; i += 16) {
    int left = OW - i;
    __m512 dv = _mm512_maskz_loadu_ps(left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1), dy + i);
    for (int k = 0; k < K; k++) acc[k] = _mm512_fmadd_ps(dv, _mm512_loadu_ps(src[k] + i), acc[k]);
    acc[K] = _mm512_add_ps(acc[K], dv);
  }
  for (int k = 0; k <= K; k++) part[k] = _mm512_reduce_add_ps(acc[k]);
}

__attribute__((target("avx512f"))) static void row_dweight(float *part, const float *dy, const float *E,
                                                           const float *D, const geom *g) {
  if (g->K == 9)
    row_dweight_k(part, dy, E, D, g, 9);
  else
    row_dweight_k(part, dy, E, D, g, g->K);
}

static int check(int B, int W, int OC, int K, int pad, const char *op) {
  if (!ser_conv1d_c1s2_supported()) return ser_error(SER_EUNSUPPORTED, "%s: needs AVX-512, which this CPU lacks", op);
  if (B < 0 || W < 1 || OC < 0 || K < 1 || K > SER_CONV1D_C1_MAX_K || pad < 0 || W + 2 * pad < K)
    return ser_error(SER_EINVAL,
                     "%s: unsupported geometry B %d, W %d, OC %d, kernel %d, padding %d; expected kernel 1..%d, "
                     "padding >= 0 and kernel <= W + 2*padding",
                     op, B, W, OC, K, pad, SER_CONV1D_C1_MAX_K);
  return 0;
}

/* The phases of every image in the calling thread's scratch (the OpenMP
 * workers only read them), followed by `extra` floats; NULL when out of memory. */
static float *phases(const float *in, int B, const geom *g, size_t extra) {
  size_t per = 2 * (size_t)g->len;
  float *P = ser_scratch(SER_SCRATCH_COL, sizeof(float) * (per * B + extra));
  if (!P) return NULL;
#pragma omp parallel for schedule(static) if (B > 1 && omp_get_max_threads() > 1 && !omp_in_parallel())
  for (int b = 0; b < B; b++) split(P + per * b, P + per * b + g->len, in + (size_t)b * g->W, g);
  return P;
}

int ser_conv1d_c1s2_forward(float *out, const float *in, const float *weight, const float *bias, int B, int W,
                            int OC, int K, int pad) {
  int rc = check(B, W, OC, K, pad, "conv1d (1 input channel, stride 2)");
  if (rc || B == 0 || OC == 0) return rc;
  geom g;
  geom_init(&g, W, OC, K, pad);
  size_t per = 2 * (size_t)g.len;
  float *P = phases(in, B, &g, 0);
  if (!P) return ser_error(SER_ENOMEM, "conv1d: out of memory for the phase scratch (%zu bytes)", sizeof(float) * per * B);
  long items = (long)B * OC;
#pragma omp parallel for schedule(static) if (items > 1 && omp_get_max_threads() > 1 && !omp_in_parallel())
  for (long it = 0; it < items; it++) {
    int b = (int)(it / OC), oc = (int)(it % OC);
    const float *E = P + per * b;
    row_forward(out + (size_t)it * g.OW, E, E + g.len, weight + (size_t)oc * K, bias ? bias[oc] : 0.0f, &g);
  }
  return 0;
}

int ser_conv1d_c1s2_backward_weight(float *dweight, float *dbias, const float *dout, const float *in, int B, int W,
                                    int OC, int K, int pad) {
  int rc = check(B, W, OC, K, pad, "conv1d backward (1 input channel, stride 2)");
  if (rc || B == 0 || OC == 0 || (!dweight && !dbias)) return rc;
  geom g;
  geom_init(&g, W, OC, K, pad);
  size_t per = 2 * (size_t)g.len, np = (size_t)B * OC * (K + 1);
  float *P = phases(in, B, &g, np);
  if (!P)
    return ser_error(SER_ENOMEM, "conv1d backward: out of memory for the phase scratch (%zu bytes)",
                     sizeof(float) * (per * B + np));
  float *part = P + per * B; /* [B][OC][K + 1]: each image's sums, added over images in order below */
  long items = (long)B * OC;
#pragma omp parallel for schedule(static) if (items > 1 && omp_get_max_threads() > 1 && !omp_in_parallel())
  for (long it = 0; it < items; it++) {
    int b = (int)(it / OC);
    const float *E = P + per * b;
    row_dweight(part + (size_t)it * (K + 1), dout + (size_t)it * g.OW, E, E + g.len, &g);
  }
  for (int b = 0; b < B; b++)
    for (int oc = 0; oc < OC; oc++) {
      const float *s = part + ((size_t)b * OC + oc) * (K + 1);
      if (dweight)
        for (int k = 0; k < K; k++) dweight[(size_t)oc * K + k] += s[k];
      if (dbias) dbias[oc] += s[K];
    }
  return 0;
}
