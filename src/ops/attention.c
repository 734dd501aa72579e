#include "attention.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/cpu.h"
#include "../core/error.h"
#include "../core/threads.h"
#include "gemm.h"
#include "rowops.h"
#include "scratch.h"

/* Query rows per work item: all of them up to QMAX, else Tq split evenly
 * into blocks of at most QMAX. Fewer, larger products pay: each ser_gemm call
 * packs the head's keys again (and OpenBLAS has a fixed cost per call), and
 * measured on Whisper-base shapes (B 8, H 8, Dh 64, one thread) one block per
 * head ran T = 200 in half the time of 64-row blocks, and T = 1500 was
 * fastest with blocks of about 500 rows (3 MB of scores per thread). */
enum { QMAX = 512 };

static int block_rows(int Tq) {
  int nb = (Tq + QMAX - 1) / QMAX;
  return (Tq + nb - 1) / nb;
}

static int check_lengths(const int32_t *key_len, int B, int Tk) {
  if (!key_len) return 0;
  for (int b = 0; b < B; b++)
    if (key_len[b] < 1 || key_len[b] > Tk)
      return ser_error(SER_EINVAL, "attention: key_lengths[%d] = %d is outside 1..%d (the number of keys)", b,
                       (int)key_len[b], Tk);
  return 0;
}

/* ---- inference without probabilities: one fused AVX-512 pass per item --------
 *
 * For Whisper's shapes (T 200, head dim 64) the two products of a head are
 * 2.6 MFLOP each; through ser_gemm every call packs its operands (and OpenBLAS
 * or the bf16 kernel has a fixed cost per call), which made attention cost
 * several times its arithmetic. Here the head's keys are transposed once into
 * kt [Dh, L32] (zero columns up to a multiple of 32), scores are an 8-row x
 * 32-key FMA tile over Dh, the row softmax is ser_row_softmax over the L valid
 * keys, and out = P v is a 4-row x 64-column FMA tile over the keys reading v's
 * rows in place; keys past L score -inf so the softmax runs on whole vectors.
 * Only keys j < L are read. Used in fp32 when the head dim is a multiple of 16,
 * the CPU has AVX-512F and OpenBLAS runs narrower kernels than the CPU has
 * (B 8, T 200 masked, 8 heads of 64, one thread, min of 15: fused 5.3-6.2 ms,
 * ser_gemm fp32 7.5-8.0 ms with OpenBLAS's Haswell kernels or our fp32 GEMM,
 * but 5.5 ms with OpenBLAS's Cooperlake kernels; bf16 ser_gemm 5.3-5.7 ms, so
 * amp keeps it). SER_ATTN_FUSED=1/0 forces it on/off. */
static int fused_on = -1; /* -1: not decided yet (SER_ATTN_FUSED=0 turns it off) */

int ser_attention_set_fused(int on) {
  const int prev = fused_on > 0;
  fused_on = on && ser_cpu_has(SER_CPU_AVX512F);
  return prev;
}

static int fused_ok(int Dh) {
  if (fused_on < 0) {
    /* By default only where OpenBLAS runs narrower kernels than the CPU has:
     * with its own AVX-512 kernels (Cooperlake on Zen 5) its small products
     * measured faster than this pass (5.5 vs 6.2 ms on the shapes below). */
    const char *e = getenv("SER_ATTN_FUSED");
    ser_attention_set_fused(e ? strcmp(e, "0") != 0 : ser_blas_better_core() != NULL);
  }
  return fused_on && Dh % 16 == 0 && Dh <= 1024;
}

__attribute__((target("avx512f"))) static void fused_item(float *op, const float *qp, const float *kp,
                                                         const float *vp, float *s, float *kt, int rq, int L, int E,
                                                         int Dh, float scale) {
  const int L32 = (L + 31) & ~31, rq8 = (rq + 7) & ~7;
  for (int j = 0; j < L; j++) {
    const float *kr = kp + (int64_t)j * E;
    for (int c = 0; c < Dh; c++) kt[(int64_t)c * L32 + j] = kr[c];
  }
  for (int c = 0; c < Dh; c++)
    for (int j = L; j < L32; j++) kt[(int64_t)c * L32 + j] = 0.0f;
  const __m512 vs = _mm512_set1_ps(scale);
  for (int i0 = 0; i0 < rq8; i0 += 8) {
    const float *qr[8];
    for (int r = 0; r < 8; r++) qr[r] = qp + (int64_t)(i0 + r < rq ? i0 + r : rq - 1) * E; /* tail rows: repeat the last */
    for (int j0 = 0; j0 < L32; j0 += 32) {
      __m512 acc[8][2];
#pragma GCC unroll 8
      for (int r = 0; r < 8; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
      const float *kc = kt + j0;
      for (int c = 0; c < Dh; c++, kc += L32) {
        const __m512 b0 = _mm512_loadu_ps(kc), b1 = _mm512_loadu_ps(kc + 16);
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
          const __m512 a = _mm512_set1_ps(qr[r][c]);
          acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
      }
      /* keys past L score -inf: the softmax then runs over whole vectors (no
       * scalar tail) and gives them exactly 0 */
      const int left = L - j0;
      const __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
      const __mmask16 m1 = left >= 32 ? 0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
      const __m512 ninf = _mm512_set1_ps(-INFINITY);
#pragma GCC unroll 8
      for (int r = 0; r < 8; r++) {
        float *sr = s + (int64_t)(i0 + r) * L32 + j0;
        _mm512_storeu_ps(sr, _mm512_mask_mul_ps(ninf, m0, acc[r][0], vs));
        _mm512_storeu_ps(sr + 16, _mm512_mask_mul_ps(ninf, m1, acc[r][1], vs));
      }
    }
  }
  const int L16 = (L + 15) & ~15;
  for (int i = 0; i < rq; i++) ser_row_softmax(s + (int64_t)i * L32, s + (int64_t)i * L32, L16);
  for (int i0 = 0; i0 < rq; i0 += 4) {
    const int nr = rq - i0 < 4 ? rq - i0 : 4;
    const float *pr[4];
    for (int r = 0; r < 4; r++) pr[r] = s + (int64_t)(i0 + (r < nr ? r : 0)) * L32;
    for (int c0 = 0; c0 < Dh; c0 += 64) {
      const int nv = (Dh - c0) / 16 < 4 ? (Dh - c0) / 16 : 4;
      __m512 acc[4][4];
#pragma GCC unroll 4
      for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
      const float *vr = vp + c0;
      if (nv == 4) {
        for (int j = 0; j < L; j++, vr += E) {
          const __m512 v0 = _mm512_loadu_ps(vr), v1 = _mm512_loadu_ps(vr + 16), v2 = _mm512_loadu_ps(vr + 32),
                       v3 = _mm512_loadu_ps(vr + 48);
#pragma GCC unroll 4
          for (int r = 0; r < 4; r++) {
            const __m512 p = _mm512_set1_ps(pr[r][j]);
            acc[r][0] = _mm512_fmadd_ps(p, v0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(p, v1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(p, v2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(p, v3, acc[r][3]);
          }
        }
      } else {
        for (int j = 0; j < L; j++, vr += E)
          for (int v = 0; v < nv; v++) {
            const __m512 x = _mm512_loadu_ps(vr + 16 * v);
            for (int r = 0; r < 4; r++) acc[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(pr[r][j]), x, acc[r][v]);
          }
      }
      for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) _mm512_storeu_ps(op + (int64_t)(i0 + r) * E + c0 + 16 * v, acc[r][v]);
    }
  }
}

/* One item: query rows i0..i0+rq of head h in batch b. Returns nonzero when
 * the score scratch cannot grow. */
static int forward_item(float *out, float *probs, const float *q, const float *k, const float *v, int b, int h,
                        int i0, int rq, int L, int Tq, int Tk, int H, int Dh, float scale) {
  const int E = H * Dh;
  const float *qp = q + ((int64_t)b * Tq + i0) * E + (int64_t)h * Dh;
  const float *kp = k + (int64_t)b * Tk * E + (int64_t)h * Dh;
  const float *vp = v + (int64_t)b * Tk * E + (int64_t)h * Dh;
  float *op = out + ((int64_t)b * Tq + i0) * E + (int64_t)h * Dh;
  float *s;
  int lds;
  if (!probs && !ser_amp_enabled() && fused_ok(Dh)) {
    const int L32 = (L + 31) & ~31;
    s = ser_scratch(SER_SCRATCH_ATTN, ((size_t)((rq + 7) & ~7) + (size_t)Dh) * (size_t)L32 * sizeof(float));
    if (!s) return 1;
    fused_item(op, qp, kp, vp, s, s + (size_t)((rq + 7) & ~7) * L32, rq, L, E, Dh, scale);
    return 0;
  }
  if (probs) {
    s = probs + (((int64_t)b * H + h) * Tq + i0) * Tk;
    lds = Tk;
  } else {
    s = ser_scratch(SER_SCRATCH_ATTN, (size_t)rq * L * sizeof(float));
    if (!s) return 1;
    lds = L;
  }
  ser_gemm(0, 1, rq, L, Dh, scale, qp, E, kp, E, 0.0f, s, lds);
  for (int i = 0; i < rq; i++) {
    float *row = s + (int64_t)i * lds;
    ser_row_softmax(row, row, L);
    if (probs && L < Tk) memset(row + L, 0, (size_t)(Tk - L) * sizeof(float));
  }
  ser_gemm(0, 0, rq, Dh, L, 1.0f, s, lds, vp, E, 0.0f, op, E);
  return 0;
}

int ser_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          const int32_t *key_len, int B, int Tq, int Tk, int H, int Dh, float scale) {
  int rc = check_lengths(key_len, B, Tk);
  if (rc) return rc;
  if (B <= 0 || Tq <= 0 || Tk <= 0 || H <= 0 || Dh <= 0) return 0;
  const int QB = block_rows(Tq), nqb = (Tq + QB - 1) / QB;
  const int64_t items = (int64_t)B * H * nqb;
  const double work = (double)B * H * Tq * Tk * Dh;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed) if (items > 1 && work > 262144.0)
  for (int64_t it = 0; it < items; it++) {
    int b = (int)(it / ((int64_t)H * nqb)), rem = (int)(it % ((int64_t)H * nqb));
    int h = rem / nqb, i0 = rem % nqb * QB;
    int rq = Tq - i0 < QB ? Tq - i0 : QB;
    failed |= forward_item(out, probs, q, k, v, b, h, i0, rq, key_len ? key_len[b] : Tk, Tq, Tk, H, Dh, scale);
  }
  if (failed)
    return ser_error(SER_ENOMEM, "attention: out of memory for the scores of %d query rows x %d keys", QB, Tk);
  return 0;
}

/* All query blocks of head h in batch b, in order: dk and dv of the head sum
 * over them, so one thread owns a (b, h) pair. With S = scale q k^T, P = softmax(S):
 *   dv += P^T dout,  dP = dout v^T,  dS = scale P (dP - rowsum(P dP)),
 *   dq += dS k,      dk += dS^T q. */
static int backward_head(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                         const float *v, const float *probs, int b, int h, int L, int Tq, int Tk, int H, int Dh,
                         float scale) {
  const int E = H * Dh, QB = block_rows(Tq);
  const int64_t kv0 = (int64_t)b * Tk * E + (int64_t)h * Dh;
  float *ds = NULL;
  if (dq || dk) {
    ds = ser_scratch(SER_SCRATCH_ATTN, (size_t)QB * L * sizeof(float));
    if (!ds) return 1;
  }
  for (int i0 = 0; i0 < Tq; i0 += QB) {
    const int rq = Tq - i0 < QB ? Tq - i0 : QB;
    const int64_t q0 = ((int64_t)b * Tq + i0) * E + (int64_t)h * Dh;
    const float *p = probs + (((int64_t)b * H + h) * Tq + i0) * Tk;
    if (dv) ser_gemm(1, 0, L, Dh, rq, 1.0f, p, Tk, dout + q0, E, 1.0f, dv + kv0, E);
    if (!ds) continue;
    ser_gemm(0, 1, rq, L, Dh, 1.0f, dout + q0, E, v + kv0, E, 0.0f, ds, L);
    for (int i = 0; i < rq; i++) ser_row_softmax_backward(ds + (int64_t)i * L, p + (int64_t)i * Tk, ds + (int64_t)i * L, L, scale);
    if (dq) ser_gemm(0, 0, rq, Dh, L, 1.0f, ds, L, k + kv0, E, 1.0f, dq + q0, E);
    if (dk) ser_gemm(1, 0, L, Dh, rq, 1.0f, ds, L, q + q0, E, 1.0f, dk + kv0, E);
  }
  return 0;
}

int ser_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                           const float *v, const float *probs, const int32_t *key_len, int B, int Tq, int Tk,
                           int H, int Dh, float scale) {
  int rc = check_lengths(key_len, B, Tk);
  if (rc) return rc;
  if (B <= 0 || Tq <= 0 || Tk <= 0 || H <= 0 || Dh <= 0 || (!dq && !dk && !dv)) return 0;
  const int64_t items = (int64_t)B * H;
  const double work = (double)B * H * Tq * Tk * Dh;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed) if (items > 1 && work > 65536.0)
  for (int64_t it = 0; it < items; it++) {
    int b = (int)(it / H), h = (int)(it % H);
    failed |= backward_head(dq, dk, dv, dout, q, k, v, probs, b, h, key_len ? key_len[b] : Tk, Tq, Tk, H, Dh, scale);
  }
  if (failed)
    return ser_error(SER_ENOMEM, "attention backward: out of memory for the score gradients of %d query rows x %d keys",
                     block_rows(Tq), Tk);
  return 0;
}

/* ---- the op ------------------------------------------------------------- */

typedef struct len_ctx {
  size_t bytes;
  int32_t len[];
} len_ctx;

static void len_ctx_free(void *p) {
  if (p) ser_free(p, ((len_ctx *)p)->bytes);
}

typedef struct attn_dims {
  int B, Tq, Tk, H, Dh;
} attn_dims;

static int attn_geometry(attn_dims *d, const ser_tensor *q, const ser_tensor *k, const ser_tensor *v, int heads) {
  const char *fn = "scaled_dot_product_attention";
  if (q->ndim != 3) return ser_error(SER_EINVAL, "%s: q must be 3-d [B, Tq, heads*head_dim], got %s", fn, SER_SHAPE(q));
  if (k->ndim != 3) return ser_error(SER_EINVAL, "%s: k must be 3-d [B, Tk, heads*head_dim], got %s", fn, SER_SHAPE(k));
  if (v->ndim != 3) return ser_error(SER_EINVAL, "%s: v must be 3-d [B, Tk, heads*head_dim], got %s", fn, SER_SHAPE(v));
  if (k->shape[0] != v->shape[0] || k->shape[1] != v->shape[1] || k->shape[2] != v->shape[2])
    return ser_error(SER_EINVAL, "%s: k %s and v %s must have the same shape", fn, SER_SHAPE(k), SER_SHAPE(v));
  if (q->shape[0] != k->shape[0])
    return ser_error(SER_EINVAL, "%s: q %s and k %s have different batch sizes (%lld vs %lld)", fn, SER_SHAPE(q),
                     SER_SHAPE(k), (long long)q->shape[0], (long long)k->shape[0]);
  if (q->shape[2] != k->shape[2])
    return ser_error(SER_EINVAL, "%s: q %s and k %s have different feature sizes (%lld vs %lld)", fn, SER_SHAPE(q),
                     SER_SHAPE(k), (long long)q->shape[2], (long long)k->shape[2]);
  for (int i = 0; i < 3; i++)
    if (q->shape[i] < 1 || k->shape[i] < 1 || q->shape[i] > 0x7fffffff || k->shape[i] > 0x7fffffff)
      return ser_error(SER_EINVAL, "%s: sizes must be in 1..2147483647, got q %s, k %s", fn, SER_SHAPE(q), SER_SHAPE(k));
  if (heads < 1 || q->shape[2] % heads)
    return ser_error(SER_EINVAL, "%s: feature size %lld of q %s is not divisible by heads = %d", fn,
                     (long long)q->shape[2], SER_SHAPE(q), heads);
  d->B = (int)q->shape[0];
  d->Tq = (int)q->shape[1];
  d->Tk = (int)k->shape[1];
  d->H = heads;
  d->Dh = (int)(q->shape[2] / heads);
  return 0;
}

int ser_scaled_dot_product_attention(ser_tensor **out, ser_tensor *q, ser_tensor *k, ser_tensor *v,
                                     const int32_t *key_lengths, int heads, double scale) {
  *out = NULL;
  if (!q || !k || !v) return ser_error(SER_EINVAL, "scaled_dot_product_attention: q, k and v are required");
  attn_dims d;
  int rc = attn_geometry(&d, q, k, v, heads);
  if (rc) return rc;
  if (!isfinite(scale)) return ser_error(SER_EINVAL, "scaled_dot_product_attention: scale must be finite, got %g", scale);
  if (key_lengths)
    for (int b = 0; b < d.B; b++)
      if (key_lengths[b] < 1 || key_lengths[b] > d.Tk)
        return ser_error(SER_EINVAL,
                         "scaled_dot_product_attention: key length %d of batch item %d is outside 1..%d (k %s)",
                         (int)key_lengths[b], b + 1, d.Tk, SER_SHAPE(k));
  const int need = ser_autograd_needed(3, (ser_tensor *[]){q, k, v});
  ser_tensor *qc = ser_tensor_contiguous_raw(q), *kc = ser_tensor_contiguous_raw(k), *vc = ser_tensor_contiguous_raw(v);
  ser_tensor *y = ser_tensor_empty(3, (int64_t[]){d.B, d.Tq, q->shape[2]});
  ser_tensor *probs = need ? ser_tensor_empty(4, (int64_t[]){d.B, d.H, d.Tq, d.Tk}) : NULL;
  len_ctx *ctx = NULL;
  if (need && key_lengths) {
    size_t bytes = sizeof(len_ctx) + (size_t)d.B * sizeof(int32_t);
    ctx = ser_alloc(bytes);
    if (ctx) {
      ctx->bytes = bytes;
      memcpy(ctx->len, key_lengths, (size_t)d.B * sizeof(int32_t));
    }
  }
  rc = (!qc || !kc || !vc || !y || (need && !probs) || (need && key_lengths && !ctx)) ? SER_ENOMEM : 0;
  if (!rc)
    rc = ser_attention_forward(ser_tensor_data(y), probs ? ser_tensor_data(probs) : NULL, ser_tensor_data(qc),
                               ser_tensor_data(kc), ser_tensor_data(vc), key_lengths, d.B, d.Tq, d.Tk, d.H, d.Dh,
                               (float)scale);
  ser_node *node = NULL;
  if (!rc) rc = ser_autograd_record(y, SER_OP_ATTENTION, 3, (ser_tensor *[]){q, k, v}, &node);
  if (!rc && node) {
    node->saved[0] = ser_detach(qc);
    node->saved[1] = ser_detach(kc);
    node->saved[2] = ser_detach(vc);
    node->saved[3] = probs;
    probs = NULL;
    node->iarg[0] = heads;
    node->farg[0] = scale;
    node->ctx = ctx;
    node->ctx_free = len_ctx_free;
    ctx = NULL;
  }
  ser_tensor_release(qc);
  ser_tensor_release(kc);
  ser_tensor_release(vc);
  ser_tensor_release(probs);
  len_ctx_free(ctx);
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

int ser_attention_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin) {
  const ser_tensor *q = node->saved[0], *k = node->saved[1], *v = node->saved[2];
  attn_dims d;
  int rc = attn_geometry(&d, q, k, v, (int)node->iarg[0]);
  if (rc) return rc;
  const len_ctx *ctx = node->ctx;
  return ser_attention_backward(gin[0] ? ser_tensor_data(gin[0]) : NULL, gin[1] ? ser_tensor_data(gin[1]) : NULL,
                                gin[2] ? ser_tensor_data(gin[2]) : NULL, ser_tensor_data(gout), ser_tensor_data(q),
                                ser_tensor_data(k), ser_tensor_data(v), ser_tensor_data(node->saved[3]),
                                ctx ? ctx->len : NULL, d.B, d.Tq, d.Tk, d.H, d.Dh, (float)node->farg[0]);
}
