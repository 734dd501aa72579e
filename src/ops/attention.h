/* Scaled dot-product attention with a key-padding mask, heads interleaved in
 * the feature dim (the layout a Linear produces, no transposes):
 *   q [B, Tq, H*Dh], k, v [B, Tk, H*Dh] -> out [B, Tq, H*Dh]
 *   out[b,i,h,:] = sum_j softmax_j(scale * q[b,i,h,:] . k[b,j,h,:]) v[b,j,h,:]   over j < key_len[b]
 * (key_len NULL: all Tk keys). Keys at j >= key_len[b] contribute exactly
 * nothing (probability 0, never read). Each (batch, head, block of query rows)
 * is one work item: scores through ser_gemm (so amp applies), a vectorised
 * row softmax, and the product with v through ser_gemm; threads split the
 * items. */
#ifndef SER_OPS_ATTENTION_H
#define SER_OPS_ATTENTION_H

#include <stdint.h>

#include "../autograd/autograd.h"
#include "../core/tensor.h"

/* probs [B, H, Tq, Tk] is written when non-NULL (for backward); masked entries are 0.
 * Returns 0, or SER_ENOMEM if scratch cannot grow, or SER_EINVAL when a key_len[b]
 * is outside 1..Tk (the op checks that first; the kernel does not trust it). */
int ser_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          const int32_t *key_len, int B, int Tq, int Tk, int H, int Dh, float scale);
/* ACCUMULATES dq, dk, dv (any may be NULL) from dout, using the saved probs.
 * Masked keys (j >= key_len[b]) get no gradient. */
int ser_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                           const float *v, const float *probs, const int32_t *key_len, int B, int Tq, int Tk,
                           int H, int Dh, float scale);

/* out [B, Tq, E] = attention(q [B, Tq, E], k [B, Tk, E], v [B, Tk, E]) with E = heads * head_dim;
 * key_lengths: B entries in 1..Tk, or NULL (no mask); scale finite (PyTorch's
 * default is 1/sqrt(head_dim)). Differentiable in q, k and v. */
int ser_scaled_dot_product_attention(ser_tensor **out, ser_tensor *q, ser_tensor *k, ser_tensor *v,
                                     const int32_t *key_lengths, int heads, double scale);
int ser_attention_backward_node(ser_node *node, const ser_tensor *gout, ser_tensor **gin);

/* The fused AVX-512 forward for inference (probs NULL, head dim a multiple of
 * 16, fp32): on by default where the CPU has AVX-512F and OpenBLAS runs
 * narrower kernels than it (where OpenBLAS's AVX-512 kernels run, its GEMMs are
 * faster); SER_ATTN_FUSED=1/0 or ser_attention_set_fused(1/0) forces it
 * (tests, benchmarks). Returns the previous setting. */
int ser_attention_set_fused(int on);

#endif
