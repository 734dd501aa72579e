/* Fields of a Hugging Face JSON config (see json_config.h). */
#include "io/json_config.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

cJSON *ser_json_config_object(const char *text, size_t len, const char *who, const char *label, const char *what) {
  /* by length: a 0 byte inside the text does not end it early (cJSON skips it as white space) */
  cJSON *root = cJSON_ParseWithLength(text, len);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    ser_error(SER_EFORMAT, "%s: '%s' is not a JSON object (a Hugging Face %s)", who, label, what);
    return NULL;
  }
  return root;
}

int ser_json_config_int(const cJSON *root, const char *key, int *dst, const char *who, const char *label) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v) return 0;
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 || v->valuedouble > 1e6)
    return ser_error(SER_EFORMAT, "%s: '%s': %s must be a whole number in [1, 1000000]", who, label, key);
  *dst = (int)v->valuedouble;
  return 0;
}

int ser_json_config_expect(const cJSON *root, const char *key, const char *want, const char *who, const char *label) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v) return 0;
  if (!cJSON_IsString(v) || strcmp(v->valuestring, want) != 0)
    return ser_error(SER_EUNSUPPORTED, "%s: '%s' has %s '%s'; only '%s' is implemented", who, label, key,
                     cJSON_IsString(v) ? v->valuestring : "(not a string)", want);
  return 0;
}
