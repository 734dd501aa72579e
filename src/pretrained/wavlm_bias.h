/* WavLM's gated relative position bias (Chen et al. 2022, "WavLM", section
 * 2.2; Hugging Face modeling_wavlm.py WavLMAttention), inference only:
 *
 *   bucket(r), r = key - query position: 2 halves of num_buckets / 2 (r > 0 in
 *   the upper half); |r| < num_buckets / 4 exact, larger |r| logarithmic up to
 *   max_distance, then the last bucket
 *   bias[h, i, j] = rel_embed[bucket(j - i), h]        (the first layer's table, shared)
 *   gate[b, i, h] = a (c_h b' - 1) + 2,  a, b' = sigmoid of the two sums of 4 of
 *                   gru_rel_pos_linear(x[b, i, head h])  (x: the attention's input)
 *   scores[b, h, i, j] = scale q.k + gate[b, i, h] bias[h, i, j], keys j >= key_len[b] masked */
#ifndef SER_PRETRAINED_WAVLM_BIAS_H
#define SER_PRETRAINED_WAVLM_BIAS_H

#include <stdint.h>

/* The bucket of relative position r (float32 arithmetic as PyTorch's). */
int ser_wavlm_bucket(int64_t r, int num_buckets, int max_distance);

/* relb [H, 2T - 1]: relb[h * (2T - 1) + r + T - 1] = embed[bucket(r) * H + h] for r in -(T-1)..T-1. */
void ser_wavlm_relative_bias(float *relb, const float *embed, int H, int T, int num_buckets, int max_distance);

/* gate [rows, H] from x [rows, H * Dh]: w [8, Dh], b [8], gconst [H]. */
void ser_wavlm_gate(float *gate, const float *x, const float *w, const float *b, const float *gconst, int64_t rows,
                    int H, int Dh);

/* out [B, T, H*Dh] = softmax(scale q k^T + gate * bias, keys < key_len[b]) v, q/k/v [B, T, H*Dh],
 * gate [B*T, H], relb from ser_wavlm_relative_bias. SER_ENOMEM when scratch cannot grow. */
int ser_wavlm_attention_forward(float *out, const float *q, const float *k, const float *v, const float *gate,
                                const float *relb, const int32_t *key_len, int B, int T, int H, int Dh, float scale);

#endif
