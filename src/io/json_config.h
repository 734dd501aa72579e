/* Reading the fields of a Hugging Face JSON config (config.json and the like), shared by the
 * pretrained encoders' config parsers (src/pretrained/whisper_config.c, wav2vec2_config.c).
 * Every message starts "<who>: '<label>'" (e.g. "whisper: 'models/x/config.json'"), so a
 * failure names the loader and the file. Absent keys are not errors: the caller keeps its
 * "not said" value and checks what the tensors say instead. */
#ifndef SER_IO_JSON_CONFIG_H
#define SER_IO_JSON_CONFIG_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* The text (len bytes, parsed by length) as a JSON object to cJSON_Delete, or NULL with
 * SER_EFORMAT set ("... is not a JSON object (a Hugging Face <what>)"). */
cJSON *ser_json_config_object(const char *text, size_t len, const char *who, const char *label, const char *what);

/* root[key], when present, into *dst: a whole number in [1, 1e6], else SER_EFORMAT. */
int ser_json_config_int(const cJSON *root, const char *key, int *dst, const char *who, const char *label);

/* root[key], when present, must be the string want, else SER_EUNSUPPORTED ("has <key> '<value>';
 * only '<want>' is implemented"). */
int ser_json_config_expect(const cJSON *root, const char *key, const char *want, const char *who, const char *label);

#endif
