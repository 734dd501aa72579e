/* The tensor form of an encoder's forward, shared by the Whisper and the wav2vec 2.0 /
 * HuBERT / WavLM encoders once each has checked its input: x made contiguous, the output
 * y [B, frames, d_model] and, when hidden is given, the layers + 1 hidden states allocated
 * as one [layers + 1, B, frames, d_model] tensor and handed back as layers + 1 views. */
#ifndef SER_PRETRAINED_FORWARD_TENSOR_H
#define SER_PRETRAINED_FORWARD_TENSOR_H

#include <stdint.h>

#include "core/tensor.h"

/* An encoder's forward over float pointers: x holds B rows of n input samples or frames. */
typedef int (*ser_encoder_run_fn)(const void *enc, float *y, float *hidden, const float *x, const int32_t *lengths,
                                  int B, int64_t n);

typedef struct ser_encoder_dims {
  int B;
  int64_t n;      /* input length: samples (wav2vec2) or log-mel frames (Whisper) */
  int64_t frames; /* output frames for n */
  int layers, d_model;
} ser_encoder_dims;

/* *out = y (a new reference); hidden, when not NULL, gets layers + 1 new references. who
 * names the encoder in the out-of-memory message ("whisper", "wavlm", ...). NULL *out on
 * failure, with run's message or that one. */
int ser_encoder_forward_tensor(ser_tensor **out, ser_tensor **hidden, const ser_tensor *x, const int32_t *lengths,
                               const void *enc, ser_encoder_run_fn run, ser_encoder_dims d, const char *who);

#endif
