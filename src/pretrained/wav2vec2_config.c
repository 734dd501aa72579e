/* config.json / preprocessor_config.json of wav2vec2-family folders (see wav2vec2_config.h). */
#include "pretrained/wav2vec2_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/json_config.h"

void ser_w2v_config_init(w2v_config_fields *cf) {
  memset(cf, 0, sizeof *cf);
  cf->family = cf->n_conv = cf->conv_bias = cf->layer_extractor = cf->proj_norm = -1;
  cf->d_model = cf->heads = cf->layers = cf->ffn = cf->pos_kernel = cf->pos_groups = cf->stable_layer_norm = -1;
  cf->eps = -1;
  cf->num_buckets = cf->max_distance = cf->do_normalize = -1;
}

static cJSON *parse_object(const char *text, size_t len, const char *label, const char *what) {
  return ser_json_config_object(text, len, "wav2vec2", label, what);
}

/* A whole number in [1, 1e6] into *dst; absent leaves it. */
static int get_int(const cJSON *root, const char *key, int *dst, const char *label) {
  return ser_json_config_int(root, key, dst, "wav2vec2", label);
}

static int get_bool(const cJSON *root, const char *key, int *dst, const char *label) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsBool(v)) return ser_error(SER_EFORMAT, "wav2vec2: '%s': %s must be true or false", label, key);
  *dst = cJSON_IsTrue(v);
  return 0;
}

/* A list of positive whole numbers into dst (n entries; *n checked against other lists). */
static int get_list(const cJSON *root, const char *key, int *dst, int *n, const char *label) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v) return 0;
  const int len = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
  if (len < 1 || len > SER_W2V_MAX_CONV)
    return ser_error(SER_EFORMAT, "wav2vec2: '%s': %s must be a list of 1..%d positive whole numbers", label, key,
                     SER_W2V_MAX_CONV);
  if (*n >= 0 && *n != len)
    return ser_error(SER_EFORMAT, "wav2vec2: '%s': %s has %d entries, the other conv lists %d", label, key, len, *n);
  *n = len;
  for (int i = 0; i < len; i++) {
    const cJSON *e = cJSON_GetArrayItem(v, i);
    if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 1 || e->valuedouble > 65536)
      return ser_error(SER_EFORMAT, "wav2vec2: '%s': %s[%d] must be a whole number in 1..65536", label, key, i);
    dst[i] = (int)e->valuedouble;
  }
  return 0;
}

static int expect_string(const cJSON *root, const char *key, const char *want, const char *label) {
  return ser_json_config_expect(root, key, want, "wav2vec2", label);
}

int ser_w2v_config_parse(w2v_config_fields *cf, const char *text, size_t len, const char *label) {
  ser_w2v_config_init(cf);
  cJSON *root = parse_object(text, len, label, "config.json");
  if (!root) return SER_EFORMAT;
  int rc = 0, flag = -1;
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  if (mt) {
    static const char *const names[3] = {"wav2vec2", "hubert", "wavlm"};
    for (int k = 0; k < 3 && cJSON_IsString(mt); k++)
      if (strcmp(mt->valuestring, names[k]) == 0) cf->family = k;
    if (cf->family < 0) {
      rc = ser_error(SER_EFORMAT, "wav2vec2: '%s' describes a model of type '%s'; expected 'wav2vec2', 'hubert' or "
                     "'wavlm'", label, cJSON_IsString(mt) ? mt->valuestring : "(not a string)");
      goto done;
    }
  }
  if ((rc = expect_string(root, "feat_extract_activation", "gelu", label)) ||
      (rc = expect_string(root, "hidden_act", "gelu", label)))
    goto done;
  const cJSON *fen = cJSON_GetObjectItemCaseSensitive(root, "feat_extract_norm");
  if (fen) {
    if (cJSON_IsString(fen) && strcmp(fen->valuestring, "group") == 0) cf->layer_extractor = 0;
    else if (cJSON_IsString(fen) && strcmp(fen->valuestring, "layer") == 0) cf->layer_extractor = 1;
    else {
      rc = ser_error(SER_EFORMAT, "wav2vec2: '%s': feat_extract_norm must be \"group\" or \"layer\"", label);
      goto done;
    }
  }
  if ((rc = get_bool(root, "add_adapter", &flag, label))) goto done;
  if (flag == 1) {
    rc = ser_error(SER_EUNSUPPORTED, "wav2vec2: '%s' has add_adapter = true; the adapter layers are not implemented",
                   label);
    goto done;
  }
  flag = -1;
  if ((rc = get_bool(root, "conv_pos_batch_norm", &flag, label))) goto done;
  if (flag == 1) {
    rc = ser_error(SER_EUNSUPPORTED, "wav2vec2: '%s' has conv_pos_batch_norm = true; only the weight-normed "
                   "positional convolution is implemented", label);
    goto done;
  }
  int n = -1;
  if ((rc = get_list(root, "conv_dim", cf->conv_dim, &n, label)) ||
      (rc = get_list(root, "conv_kernel", cf->conv_kernel, &n, label)) ||
      (rc = get_list(root, "conv_stride", cf->conv_stride, &n, label)))
    goto done;
  cf->n_conv = n;
  if ((rc = get_bool(root, "conv_bias", &cf->conv_bias, label)) ||
      (rc = get_bool(root, "feat_proj_layer_norm", &cf->proj_norm, label)) ||
      (rc = get_bool(root, "do_stable_layer_norm", &cf->stable_layer_norm, label)) ||
      (rc = get_int(root, "hidden_size", &cf->d_model, label)) ||
      (rc = get_int(root, "num_attention_heads", &cf->heads, label)) ||
      (rc = get_int(root, "num_hidden_layers", &cf->layers, label)) ||
      (rc = get_int(root, "intermediate_size", &cf->ffn, label)) ||
      (rc = get_int(root, "num_conv_pos_embeddings", &cf->pos_kernel, label)) ||
      (rc = get_int(root, "num_conv_pos_embedding_groups", &cf->pos_groups, label)) ||
      (rc = get_int(root, "num_buckets", &cf->num_buckets, label)) ||
      (rc = get_int(root, "max_bucket_distance", &cf->max_distance, label)))
    goto done;
  const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
  if (eps) {
    if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0) || eps->valuedouble > 1) {
      rc = ser_error(SER_EFORMAT, "wav2vec2: '%s': layer_norm_eps must be a number in (0, 1]", label);
      goto done;
    }
    cf->eps = eps->valuedouble;
  }
done:
  cJSON_Delete(root);
  return rc;
}

int ser_w2v_preprocessor_parse(w2v_config_fields *cf, const char *text, size_t len, const char *label) {
  cJSON *root = parse_object(text, len, label, "preprocessor_config.json");
  if (!root) return SER_EFORMAT;
  int rc = get_bool(root, "do_normalize", &cf->do_normalize, label), sr = 16000;
  if (!rc) rc = get_int(root, "sampling_rate", &sr, label);
  if (!rc && sr != 16000)
    rc = ser_error(SER_EUNSUPPORTED, "wav2vec2: '%s' has sampling_rate %d; expected 16000", label, sr);
  cJSON_Delete(root);
  return rc;
}

/* Hugging Face's JSON configs are a few KiB; 1 MiB bounds what a wrong file can cost. */
static int read_text(char **out, size_t *len, const char *path) {
  return ser_fs_read_small(out, len, path, 1 << 20, "wav2vec2", "a Hugging Face JSON config");
}

int ser_w2v_config_read(w2v_config_fields *cf, const char *path) {
  char *text;
  size_t len;
  int rc = read_text(&text, &len, path);
  if (rc) return rc;
  rc = ser_w2v_config_parse(cf, text, len, path);
  free(text);
  return rc;
}

int ser_w2v_preprocessor_read(w2v_config_fields *cf, const char *path) {
  char *text;
  size_t len;
  int rc = read_text(&text, &len, path);
  if (rc) return rc;
  rc = ser_w2v_preprocessor_parse(cf, text, len, path);
  free(text);
  return rc;
}
