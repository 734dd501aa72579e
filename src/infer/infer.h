/* The C inference API: a checkpoint in, emotion probabilities of a clip out, with no Lua
 * interpreter. A checkpoint written by ser.train (compare.lua) carries its model's graph
 * (metadata key `graph`, docs/graph.md); ser_model_load builds a plan of core ops from it, and
 * ser_model_predict prepares a clip exactly as experiments/predict.lua does (resampling with
 * libsoxr, silence trimming, the window, the features and their normalisation) and runs it.
 *
 *   ser_model *m = ser_model_load("crnn.safetensors");        // NULL: ser_errmsg() says why
 *   int k = ser_model_num_classes(m);
 *   float probs[k];
 *   if (ser_model_predict(m, pcm, n, 44100, probs) < 0) puts(ser_errmsg());
 *   ser_model_free(m);
 *
 * Threads: a loaded model is read only; any number of threads may call ser_model_predict on
 * their own models (or on the same model) at once. ser_errmsg() is per thread. Each call
 * also uses the core's OpenMP threads (ser_set_num_threads / SER_NUM_THREADS). */
#ifndef SER_INFER_INFER_H
#define SER_INFER_INFER_H
#include <stdint.h>
#include "core/error.h"

typedef struct ser_model ser_model;

/* Loads a serlua safetensors checkpoint with a graph (older ones and the notebook's .pt files:
 * add one with `serlua -e 'assert(require("ser").graph.attach(IN, OUT))'`, docs/graph.md). Checks every node,
 * tensor and shape, and runs one silent clip through the model. NULL and a message on failure
 * (a missing file, no graph, an unknown op, a missing or misshapen tensor, a model that needs
 * a speaker's other clips). */
ser_model *ser_model_load(const char *path);
void ser_model_free(ser_model *m); /* NULL-safe */
int ser_model_num_classes(const ser_model *m);
/* Name of class i (0-based), NULL when out of range; owned by the model. */
const char *ser_model_class_name(const ser_model *m, int i);
/* The clip settings: the rate the model's features are computed at, and the window in seconds. */
int ser_model_sample_rate(const ser_model *m);
double ser_model_seconds(const ser_model *m);
/* probs[ser_model_num_classes(m)] = the softmax of the model's logits for one clip of mono
 * float PCM pcm[n] at sample_rate Hz (any rate from 1000 to 768000; resampled as loading does).
 * 0, or a negative SER_E* code and a message (empty or non-finite PCM, an absurd rate). */
int ser_model_predict(const ser_model *m, const float *pcm, int64_t n, int sample_rate, float *probs);
/* The same, giving the logits (before the softmax). */
int ser_model_logits(const ser_model *m, const float *pcm, int64_t n, int sample_rate, float *logits);

#endif
