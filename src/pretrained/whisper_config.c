/* config.json of a Hugging Face Whisper folder (see whisper_config.h). */
#include "pretrained/whisper_config.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/json_config.h"

int ser_whisper_config_parse(whisper_config_fields *c, const char *text, size_t len, const char *label) {
  *c = (whisper_config_fields){-1, -1, -1, -1, -1, -1};
  cJSON *root = ser_json_config_object(text, len, "whisper", label, "config.json");
  if (!root) return SER_EFORMAT;
  int rc = 0;
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "whisper") != 0)) {
    rc = ser_error(SER_EFORMAT, "whisper: '%s' describes a model of type '%s', not 'whisper'", label,
                   cJSON_IsString(mt) ? mt->valuestring : "(not a string)");
    goto done;
  }
  /* Whisper's GELU is the exact (erf) one, which is what "gelu" names */
  if ((rc = ser_json_config_expect(root, "activation_function", "gelu", "whisper", label))) goto done;
  static const char *const keys[6] = {"num_mel_bins", "d_model", "encoder_attention_heads", "encoder_layers",
                                      "encoder_ffn_dim", "max_source_positions"};
  int *dst[6] = {&c->n_mels, &c->d_model, &c->heads, &c->layers, &c->ffn, &c->max_positions};
  for (int i = 0; i < 6 && !rc; i++) rc = ser_json_config_int(root, keys[i], dst[i], "whisper", label);
done:
  if (rc) *c = (whisper_config_fields){-1, -1, -1, -1, -1, -1};
  cJSON_Delete(root);
  return rc;
}

int ser_whisper_config_read(whisper_config_fields *c, const char *path) {
  char *text;
  size_t len;
  int rc = ser_fs_read_small(&text, &len, path, 1 << 16, "whisper", "a Hugging Face config.json");
  if (rc) return rc;
  rc = ser_whisper_config_parse(c, text, len, path);
  free(text);
  return rc;
}
