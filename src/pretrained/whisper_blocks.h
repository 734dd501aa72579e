/* The bottom of the Whisper encoder alone, for fine-tuning (docs/pretrained.md,
 * "Fine-tuning"): ser.pretrained's encoder module runs the frozen stem and
 * blocks here, without a graph, and only the trainable top blocks through the
 * autograd ops (lua/ser/pretrained/whisper_module.lua). */
#ifndef SER_PRETRAINED_WHISPER_BLOCKS_H
#define SER_PRETRAINED_WHISPER_BLOCKS_H

#include "pretrained/whisper.h"

/* ser_whisper_encoder_forward's hidden states, stopping after block n_blocks
 * (0 <= n_blocks <= layers): hidden [(n_blocks + 1), B, ceil(T/2), d] holds the
 * embeddings, then the outputs of blocks 1..n_blocks, rows past a clip's
 * ceil(length / 2) zero. The numbers are the full forward's, bit for bit (it is
 * that forward on a view of the encoder with its first n_blocks blocks). */
int ser_whisper_encoder_forward_blocks(const ser_whisper_encoder *enc, float *hidden, const float *logmel,
                                       const int32_t *lengths, int B, int T, int n_blocks);

/* Tensor front: x [B, n_mels, T] -> n_blocks + 1 tensors [B, ceil(T/2), d] in hidden[0..n_blocks]. */
int ser_whisper_encoder_forward_blocks_tensor(const ser_whisper_encoder *enc, ser_tensor **hidden,
                                              const ser_tensor *x, const int32_t *lengths, int n_blocks);

#endif
