/* Inside the C inference API (infer.h): what a loaded model holds, and one clip's output,
 * shared by the single-clip calls (model.c) and the speaker-normalised ones (speaker.c). */
#ifndef SER_INFER_MODEL_IMPL_H
#define SER_INFER_MODEL_IMPL_H
#include <stdint.h>

#include "core/tensor.h"
#include "infer/graph.h"
#include "infer/infer.h"
#include "infer/prep.h"
#include "io/safetensors.h"
#include "pretrained/whisper.h"

struct ser_model {
  ser_safetensors *st;
  ser_graph *g;
  ser_prep prep;
  ser_whisper_encoder *enc;
};

/* A speaker's statistics as the model applies them: (value - shift) * scale per feature --
 * per spectral bin before the graph, or per pooled encoder value after the whisper_encoder
 * node (n values). */
typedef struct ser_model_norm {
  const float *shift, *scale;
  int64_t n;
} ser_model_norm;

/* The model's probabilities (softmax) or logits of one clip (pcm[n] at rate) into dst[classes].
 * norm: a speaker's statistics, or NULL for a model without speaker normalisation. */
int ser_model_output(const ser_model *m, const ser_model_norm *norm, const float *pcm, int64_t n, int rate, float *dst,
                     int softmax);
/* The same from what a ser_speaker keeps of a clip it was given (speaker.c), so the clip is not
 * prepared again: a spectral model's features [1, 1, F, frames] before the normalisation, or a
 * whisper model's pooled encoder output (the graph then starts after its whisper_encoder node).
 * kept is only read -- normalised into a new tensor, never retained -- so that threads
 * predicting with one speaker can share it (reference counts are not atomic). norm: not NULL. */
int ser_model_output_kept(const ser_model *m, const ser_model_norm *norm, ser_tensor *kept, float *dst, int softmax);

#endif
