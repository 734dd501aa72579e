/* config.json of a Hugging Face Whisper folder (see whisper_config.h). */
#include "pretrained/whisper_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"

int ser_whisper_config_parse(whisper_config_fields *c, const char *text, size_t len, const char *label) {
  *c = (whisper_config_fields){-1, -1, -1, -1, -1, -1};
  /* by length: a 0 byte inside the text does not end it early (cJSON skips it as white space) */
  cJSON *root = cJSON_ParseWithLength(text, len);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return ser_error(SER_EFORMAT, "whisper: '%s' is not a JSON object (a Hugging Face config.json)", label);
  }
  int rc = 0;
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "whisper") != 0)) {
    rc = ser_error(SER_EFORMAT, "whisper: '%s' describes a model of type '%s', not 'whisper'", label,
                   cJSON_IsString(mt) ? mt->valuestring : "(not a string)");
    goto done;
  }
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
  if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu") != 0)) {
    rc = ser_error(SER_EUNSUPPORTED, "whisper: '%s' has activation_function '%s'; only 'gelu' (exact erf, as "
                   "Whisper) is implemented", label, cJSON_IsString(act) ? act->valuestring : "(not a string)");
    goto done;
  }
  static const char *const keys[6] = {"num_mel_bins", "d_model", "encoder_attention_heads", "encoder_layers",
                                      "encoder_ffn_dim", "max_source_positions"};
  int *dst[6] = {&c->n_mels, &c->d_model, &c->heads, &c->layers, &c->ffn, &c->max_positions};
  for (int i = 0; i < 6; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
    if (!v) continue;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
        v->valuedouble > 1e6) {
      rc = ser_error(SER_EFORMAT, "whisper: '%s': %s must be a whole number in [1, 1000000]", label, keys[i]);
      goto done;
    }
    *dst[i] = (int)v->valuedouble;
  }
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
