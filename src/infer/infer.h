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
 * (a missing file, no graph, an unknown op, a missing or misshapen tensor). */
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
 * 0, or a negative SER_E* code and a message (empty or non-finite PCM, an absurd rate, a model
 * that needs a speaker's statistics: below). */
int ser_model_predict(const ser_model *m, const float *pcm, int64_t n, int sample_rate, float *probs);
/* The same, giving the logits (before the softmax). */
int ser_model_logits(const ser_model *m, const float *pcm, int64_t n, int sample_rate, float *logits);

/* Speaker normalisation. A model trained with it (a spectral model with normalize = "speaker" or
 * "speaker_bins", a whisper-family model with speaker_norm) normalises each clip with statistics
 * over *that speaker's* clips, which one clip does not carry: collect them in a ser_speaker,
 * then predict with it. The statistics are those of the clips added, as predict.lua computes
 * them over the files it is given (include the clips you predict to get predict.lua's numbers);
 * the more clips of the speaker, the surer (predict.lua suggests 10 or more).
 *
 *   ser_speaker *s = ser_speaker_new(m);                       // NULL: ser_errmsg() says why
 *   for (...) ser_speaker_add(s, pcm_i, n_i, rate_i);          // each of the speaker's clips
 *   ser_model_predict_speaker(m, s, pcm, n, rate, probs);
 *   ser_speaker_free(s);
 *
 * A ser_speaker belongs to the model it was made for; adding to it is not thread-safe, predicting
 * with it is (it is read only there). */
typedef struct ser_speaker ser_speaker;
/* 1 when the model needs a ser_speaker (ser_model_predict refuses it), else 0. */
int ser_model_speaker_norm(const ser_model *m);
/* An empty speaker for model m; NULL and a message for a model without speaker normalisation. */
ser_speaker *ser_speaker_new(const ser_model *m);
/* Adds one clip of the speaker (mono float PCM at any rate, prepared as ser_model_predict
 * prepares it). 0, or a negative SER_E* code and a message; a refused clip adds nothing. */
int ser_speaker_add(ser_speaker *s, const float *pcm, int64_t n, int sample_rate);
/* Clips added so far. */
int ser_speaker_num_clips(const ser_speaker *s);
void ser_speaker_free(ser_speaker *s); /* NULL-safe */
/* ser_model_predict / ser_model_logits with the speaker's statistics (at least one clip added;
 * s made for m). */
int ser_model_predict_speaker(const ser_model *m, const ser_speaker *s, const float *pcm, int64_t n, int sample_rate,
                              float *probs);
int ser_model_logits_speaker(const ser_model *m, const ser_speaker *s, const float *pcm, int64_t n, int sample_rate,
                             float *logits);
/* The same for the speaker's own clip number `clip` (0-based, in the order ser_speaker_add took
 * them; refused clips have no number), with the statistics over all the clips added so far --
 * equal to ser_model_predict_speaker on that clip's samples, without preparing the clip again:
 * ser_speaker_add keeps what the model needs of each clip (a whisper model's pooled encoder
 * output, 4 x (layers + 1) x 2 x d_model bytes, so the encoder runs once per clip; a spectral
 * model's features, 4 x bins x frames bytes). */
int ser_model_predict_speaker_clip(const ser_model *m, const ser_speaker *s, int clip, float *probs);
int ser_model_logits_speaker_clip(const ser_model *m, const ser_speaker *s, int clip, float *logits);

#endif
