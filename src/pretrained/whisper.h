/* The audio encoder of OpenAI's Whisper (openai/whisper model.py, Hugging Face
 * modeling_whisper.WhisperEncoder), inference only, built from a checkpoint's
 * tensors:
 *
 *   logmel [B, n_mels, T] -> Conv1d(k3, pad 1) -> GELU -> Conv1d(k3, stride 2,
 *   pad 1) -> GELU -> [B, T', d] + positional rows 0..T'-1 (T' = ceil(T/2))
 *   -> L pre-LayerNorm blocks:  x += out_proj(attn(LN1(x)));  x += fc2(GELU(fc1(LN2(x))))
 *      (attention scaled by head_dim^-1/2, k_proj without bias, exact erf GELU)
 *   -> final LayerNorm.
 *
 * Checkpoints: Hugging Face names (`model.encoder.conv1.weight`, ...; with or
 * without the `model.` prefix), any float dtype (F16/BF16 converted to float32
 * on load). Only the encoder's tensors are read: a full openai/whisper-*
 * model.safetensors also holds the decoder, which stays on disk. Every size
 * from tiny to large-v3 (128 mel bins) is described by its tensors' shapes;
 * config.json, when present, must agree with them.
 *
 * Batches: clips zero-padded to the longest, lengths[b] in input frames. A
 * clip's outputs do not depend on its batch: input frames >= lengths[b] and
 * conv1's output there are zeroed (conv2 sees what it would see alone), keys
 * at positions >= ceil(lengths[b] / 2) are masked in attention, and output rows
 * from ceil(lengths[b] / 2) on are zero. Inputs longer than Whisper's 30 s
 * window (2 * max_source_positions = 3000 frames) are refused. */
#ifndef SER_PRETRAINED_WHISPER_H
#define SER_PRETRAINED_WHISPER_H

#include <stdint.h>

#include "core/tensor.h"
#include "pretrained/weights.h"

/* The floor of a spread of an encoder's pooled features (a spread below it is taken as the
 * floor, so a flat feature is not blown up): in a head's standardisation and in a speaker's
 * statistics, as ser.frozen_encoder (Lua: ser.core.pretrained.POOLED_STD_FLOOR), the C
 * inference API's ser_speaker and the ONNX export's speaker_norm metadata apply it. */
#define SER_POOLED_STD_FLOOR 1e-4

typedef struct ser_whisper_config {
  int n_mels;        /* num_mel_bins: 80, or 128 for large-v3 */
  int d_model;
  int heads;         /* encoder_attention_heads (config.json; without it d_model / 64) */
  int layers;        /* encoder_layers */
  int ffn;           /* encoder_ffn_dim */
  int max_positions; /* max_source_positions (1500: 30 s) */
} ser_whisper_config;

typedef struct ser_whisper_block {
  const float *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *v_w, *v_b, *o_w, *o_b;
  const float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} ser_whisper_block;

typedef struct ser_whisper_encoder {
  ser_whisper_config cfg;
  char *source;      /* the file the weights came from */
  int has_config;    /* a config.json was read and checked */
  int64_t n_params;
  const float *conv1_w, *conv1_b, *conv2_w, *conv2_b, *pos, *ln_w, *ln_b;
  ser_whisper_block *blocks;
  ser_pretrained_weights weights; /* the weights (float32) under their Hugging Face names,
                                   * "model.encoder.conv1.weight", ... */
} ser_whisper_encoder;

/* path: a folder holding model.safetensors (and optionally config.json), or a
 * .safetensors file. NULL *out and a message (what is wrong, with names and
 * shapes) on failure: missing file, not a Whisper encoder, a tensor of the
 * wrong shape, config.json disagreeing with the tensors. */
int ser_whisper_encoder_load(ser_whisper_encoder **out, const char *path);
void ser_whisper_encoder_free(ser_whisper_encoder *enc); /* NULL-safe */

/* The encoder's weights: n_tensors() of them; tensor(i) borrows the i-th and
 * sets *name to its Hugging Face name with the "model." prefix whatever the
 * file used (NULL when i is out of range). The weights are the encoder's own:
 * a caller that writes into them changes the encoder. */
int ser_whisper_encoder_n_tensors(const ser_whisper_encoder *enc);
ser_tensor *ser_whisper_encoder_tensor(const ser_whisper_encoder *enc, int i, const char **name);

/* ceil(T / 2): the encoder's output frames for T input frames. */
int64_t ser_whisper_encoder_frames(int64_t T);

/* Checks B, T and the lengths (each in 1..T; NULL means all T) against the
 * encoder: T <= 2 * max_positions. */
int ser_whisper_encoder_check(const ser_whisper_encoder *enc, int B, int T, const int32_t *lengths);

/* logmel [B, n_mels, T] -> out [B, T', d] after the final LayerNorm (NULL: not
 * wanted) and hidden [(L + 1), B, T', d] (NULL: not wanted): the embeddings
 * (convolutions + positions), then each block's output (before the final
 * LayerNorm). Rows t >= ceil(lengths[b] / 2) of clip b are zero in both.
 * Threads: the GEMMs (OpenBLAS) and the kernels' OpenMP loops. The activations
 * live in the calling thread's grow-only scratch (src/ops/scratch.h; about
 * 44 MB for whisper-base at 8 x 400 frames), kept for the next call so that
 * batches of other lengths do not fault in fresh pages; ser_scratch_release()
 * gives it back. */
int ser_whisper_encoder_forward(const ser_whisper_encoder *enc, float *out, float *hidden, const float *logmel,
                                const int32_t *lengths, int B, int T);

/* Tensor front: x [B, n_mels, T] (checked against the encoder) -> *out [B, T', d]
 * and, when hidden is not NULL, (L + 1) tensors [B, T', d] in hidden[0..L]. */
int ser_whisper_encoder_forward_tensor(const ser_whisper_encoder *enc, ser_tensor **out, ser_tensor **hidden,
                                       const ser_tensor *x, const int32_t *lengths);

#endif
