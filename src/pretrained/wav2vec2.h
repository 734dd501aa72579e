/* The self-supervised speech encoders of the wav2vec 2.0 line, inference only,
 * built from Hugging Face checkpoints (modeling_wav2vec2.py, modeling_hubert.py,
 * modeling_wavlm.py): wav2vec 2.0, HuBERT and WavLM share one layout.
 *
 *   waveform [B, N] (16 kHz) -> feature encoder: 7 (in general n_conv) Conv1d
 *     (512 channels, kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2), each
 *     followed by GELU; "group" extractor (base models): GroupNorm with one
 *     group per channel after the first conv only; "layer" extractor (large):
 *     LayerNorm over the channels after every conv
 *   -> feature projection: LayerNorm (absent in some HuBERT files) + Linear -> d
 *   -> + GELU(grouped Conv1d(d, d, kernel 128, 16 groups, padding 64) minus its
 *     last frame)  (the convolutional positional embedding; weight norm over
 *     dim 2 folded into one weight when loading)
 *   -> post-LN (base): LayerNorm, then L blocks
 *        x = LN1(x + attn(x));  x = LN2(x + W2 GELU(W1 x))
 *      pre-LN (large, do_stable_layer_norm): L blocks
 *        x += attn(LN1(x));     x += W2 GELU(W1 LN2(x)),  then a final LayerNorm
 *   WavLM adds to the attention scores a relative position bias (320 buckets,
 *   max distance 800; the embedding of the first layer, shared by all), gated
 *   per head and query by the attention's input (wavlm_bias.h).
 *
 * Hidden states follow Hugging Face's output_hidden_states: L + 1 tensors, the
 * input of block 1 (post-LN: after the encoder's LayerNorm; pre-LN: the
 * embeddings before any norm), then each block's output; for pre-LN models the
 * last one is after the final LayerNorm (as last_hidden_state is). forward's
 * `out` is the last hidden state in both cases.
 *
 * Batches: clips zero-padded to the longest, lengths[b] in samples. The
 * feature encoder runs clip by clip over its own samples (its GroupNorm
 * statistics are the clip's alone), frames past a clip's
 * ser_wav2vec2_encoder_frames(length) are zero before the positional
 * convolution and masked as attention keys, and output rows there are zero:
 * a clip's rows do not depend on its batch. */
#ifndef SER_PRETRAINED_WAV2VEC2_H
#define SER_PRETRAINED_WAV2VEC2_H

#include <stdint.h>

#include "core/tensor.h"
#include "pretrained/weights.h"

#define SER_W2V_MAX_CONV 16

typedef enum { SER_W2V_WAV2VEC2 = 0, SER_W2V_HUBERT = 1, SER_W2V_WAVLM = 2 } ser_w2v_family;

typedef struct ser_wav2vec2_config {
  ser_w2v_family family;
  int n_conv;                         /* conv layers of the feature encoder */
  int conv_dim[SER_W2V_MAX_CONV], conv_kernel[SER_W2V_MAX_CONV], conv_stride[SER_W2V_MAX_CONV];
  int conv_bias;                      /* the convs have biases (large models) */
  int layer_extractor;                /* 1: LayerNorm after every conv ("layer"); 0: GroupNorm after the first ("group") */
  int proj_norm;                      /* the feature projection has its LayerNorm */
  int d_model, heads, layers, ffn;
  int pos_kernel, pos_groups;
  int stable_layer_norm;              /* pre-LN blocks and a final LayerNorm */
  float eps;                          /* layer_norm_eps of the encoder's LayerNorms (the conv norms use 1e-5) */
  int num_buckets, max_distance;      /* WavLM's relative position buckets */
  int do_normalize;                   /* the front end z-scores each clip (preprocessor_config.json) */
  int receptive_field;                /* samples one output frame sees (400); shortest clip accepted */
  int hop;                            /* samples between output frames (320) */
} ser_wav2vec2_config;

typedef struct ser_wav2vec2_block {
  const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
  const float *ln1_w, *ln1_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ln2_w, *ln2_b;
  const float *gate_const, *gate_w, *gate_b; /* WavLM: gru_rel_pos_const [H], gru_rel_pos_linear [8, Dh], [8] */
} ser_wav2vec2_block;

typedef struct ser_wav2vec2_encoder {
  ser_wav2vec2_config cfg;
  char *source;       /* the weights' file */
  int has_config;     /* a config.json was read and checked */
  int64_t n_params;
  const float *conv_w[SER_W2V_MAX_CONV], *conv_b[SER_W2V_MAX_CONV], *conv_ln_w[SER_W2V_MAX_CONV],
      *conv_ln_b[SER_W2V_MAX_CONV];
  const float *proj_ln_w, *proj_ln_b, *proj_w, *proj_b;
  const float *pos_w, *pos_b; /* pos_w [d, d / groups, K]: the weight-normed weight, computed once */
  const float *enc_ln_w, *enc_ln_b;
  const float *rel_embed;     /* WavLM: [num_buckets, H] */
  ser_wav2vec2_block *blocks;
  ser_pretrained_weights weights; /* the weights (float32), Hugging Face names without prefix */
} ser_wav2vec2_encoder;

/* Family names as config.json's model_type spells them. */
const char *ser_wav2vec2_family_name(ser_w2v_family f);

/* Does the .safetensors file (or folder/model.safetensors) hold a wav2vec 2.0 /
 * HuBERT / WavLM model (its feature encoder's first conv, with or without a
 * family prefix)? 1 yes, 0 no (including unreadable files: load says why). */
int ser_wav2vec2_detect(const char *path);

/* path: a folder with model.safetensors (+ config.json, preprocessor_config.json)
 * or a .safetensors file. Names: Wav2Vec2Model / HubertModel / WavLMModel
 * state_dict keys, with or without the `wav2vec2.` / `hubert.` / `wavlm.`
 * prefix of the *ForCTC / *ForSequenceClassification / *ForPreTraining files
 * (their heads, quantizer and masked_spec_embed are left on disk); any float
 * dtype. NULL *out and a message naming the missing tensor or the shape that
 * disagrees with the config on failure. */
int ser_wav2vec2_encoder_load(ser_wav2vec2_encoder **out, const char *path);
void ser_wav2vec2_encoder_free(ser_wav2vec2_encoder *enc); /* NULL-safe */

/* The weights under their Hugging Face names (no prefix): tensor(i) borrows. */
int ser_wav2vec2_encoder_n_tensors(const ser_wav2vec2_encoder *enc);
ser_tensor *ser_wav2vec2_encoder_tensor(const ser_wav2vec2_encoder *enc, int i, const char **name);

/* Output frames for n samples (the conv length formula; 0 when n is shorter
 * than the receptive field). */
int64_t ser_wav2vec2_encoder_frames(const ser_wav2vec2_encoder *enc, int64_t n);

/* Checks B, N and lengths (each in receptive_field..N; NULL: all N). */
int ser_wav2vec2_encoder_check(const ser_wav2vec2_encoder *enc, int B, int64_t N, const int32_t *lengths);

/* The front end: out[i] = (in[i] - mean) / sqrt(var + 1e-7) over n samples
 * (population variance; Wav2Vec2FeatureExtractor's zero_mean_unit_var_norm)
 * when the config says do_normalize, else a copy. out may be in. */
void ser_wav2vec2_frontend(const ser_wav2vec2_encoder *enc, float *out, const float *in, int64_t n);

/* wav [B, N] -> out [B, T', d] (NULL: not wanted) and hidden [(L + 1), B, T', d]
 * (NULL: not wanted), T' = frames(N); rows t >= frames(lengths[b]) are zero. */
int ser_wav2vec2_encoder_forward(const ser_wav2vec2_encoder *enc, float *out, float *hidden, const float *wav,
                                 const int32_t *lengths, int B, int64_t N);

/* Tensor front: x [B, N] -> *out [B, T', d] and, when hidden is not NULL, L + 1 tensors. */
int ser_wav2vec2_encoder_forward_tensor(const ser_wav2vec2_encoder *enc, ser_tensor **out, ser_tensor **hidden,
                                        const ser_tensor *x, const int32_t *lengths);

#endif
