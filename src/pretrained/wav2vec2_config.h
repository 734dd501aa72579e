/* config.json and preprocessor_config.json of a Hugging Face wav2vec2 / hubert /
 * wavlm folder: the fields the loader checks the tensors against (what the
 * tensors cannot say: strides, pre-LN, eps, bucket distance, normalisation).
 * A parser of outside data, fuzzed by tests/fuzz/fuzz_w2v_config.c. */
#ifndef SER_PRETRAINED_WAV2VEC2_CONFIG_H
#define SER_PRETRAINED_WAV2VEC2_CONFIG_H

#include <stddef.h>

#include "pretrained/wav2vec2.h"

/* -1 (or 0 in the conv arrays) where the file does not say. */
typedef struct w2v_config_fields {
  int family; /* ser_w2v_family from model_type */
  int n_conv, conv_dim[SER_W2V_MAX_CONV], conv_kernel[SER_W2V_MAX_CONV], conv_stride[SER_W2V_MAX_CONV];
  int conv_bias, layer_extractor, proj_norm;
  int d_model, heads, layers, ffn, pos_kernel, pos_groups, stable_layer_norm;
  double eps;
  int num_buckets, max_distance;
  int do_normalize;
} w2v_config_fields;

void ser_w2v_config_init(w2v_config_fields *cf);

/* Parses config.json text (len bytes, need not end in 0) into cf (initialised
 * first); label names the file in messages. Refuses other model types,
 * activations other than GELU, adapters and the batch-normed positional conv. */
int ser_w2v_config_parse(w2v_config_fields *cf, const char *text, size_t len, const char *label);

/* Parses preprocessor_config.json text: do_normalize (other fields unchecked
 * except sampling_rate, which must be 16000). Leaves the rest of cf alone. */
int ser_w2v_preprocessor_parse(w2v_config_fields *cf, const char *text, size_t len, const char *label);

/* The same from files (at most 1 MiB). */
int ser_w2v_config_read(w2v_config_fields *cf, const char *path);
int ser_w2v_preprocessor_read(w2v_config_fields *cf, const char *path);

#endif
