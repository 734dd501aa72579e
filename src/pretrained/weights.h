/* The weights a pretrained encoder owns (Whisper, wav2vec 2.0 / HuBERT / WavLM):
 * float32 tensors under their checkpoint names, in load order. Both encoders keep
 * them in this list, so that state_dict, the ONNX export and wav2vec2's check for
 * tensors the architecture does not use read one structure. */
#ifndef SER_PRETRAINED_WEIGHTS_H
#define SER_PRETRAINED_WEIGHTS_H

#include "core/tensor.h"

typedef struct ser_pretrained_weights {
  ser_tensor **tensors;
  char **names;
  int n, cap;
} ser_pretrained_weights;

/* Appends t under a copy of name; the list takes t's reference on success. On failure
 * (out of memory: the message starts with who, "whisper" / "wav2vec2") t is still the
 * caller's to release. */
int ser_pretrained_weights_add(ser_pretrained_weights *w, ser_tensor *t, const char *name, const char *who);

/* Releases every tensor and name and the lists; w is empty afterwards. */
void ser_pretrained_weights_free(ser_pretrained_weights *w);

/* The i-th tensor (borrowed) with *name its name (when name is not NULL); NULL when i is
 * out of range. */
ser_tensor *ser_pretrained_weights_get(const ser_pretrained_weights *w, int i, const char **name);

#endif
