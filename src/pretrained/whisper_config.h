/* config.json of a Hugging Face Whisper folder: the fields the loader checks the
 * tensors against (and the head count, which the tensors cannot say). A parser of
 * outside data, fuzzed by tests/fuzz/fuzz_whisper_config.c. */
#ifndef SER_PRETRAINED_WHISPER_CONFIG_H
#define SER_PRETRAINED_WHISPER_CONFIG_H

#include <stddef.h>

/* -1 where the file does not say; otherwise a whole number in [1, 1e6]. */
typedef struct whisper_config_fields {
  int n_mels, d_model, heads, layers, ffn, max_positions;
} whisper_config_fields;

/* Parses config.json text (len bytes, need not end in 0) into c; label names the file in
 * messages. Refuses other model types and activations other than GELU. */
int ser_whisper_config_parse(whisper_config_fields *c, const char *text, size_t len, const char *label);

/* The same from a file (at most 64 KiB: Whisper's are about 2). */
int ser_whisper_config_read(whisper_config_fields *c, const char *path);

#endif
