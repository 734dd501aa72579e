/* wav2vec 2.0 / HuBERT / WavLM (see wav2vec2.h): recognising the family and
 * loading the weights from safetensors + config.json (+ preprocessor_config.json).
 * The forward is in wav2vec2_forward.c, WavLM's position bias in wavlm_bias.c. */
#include "pretrained/wav2vec2.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "pretrained/wav2vec2_config.h"

#define MAX_NAME 320

static const char *const FAMILY[3] = {"wav2vec2", "hubert", "wavlm"};

const char *ser_wav2vec2_family_name(ser_w2v_family f) { return (unsigned)f < 3 ? FAMILY[f] : "?"; }

void ser_wav2vec2_encoder_free(ser_wav2vec2_encoder *enc) {
  if (!enc) return;
  ser_pretrained_weights_free(&enc->weights);
  free(enc->blocks);
  free(enc->source);
  free(enc);
}

int ser_wav2vec2_encoder_n_tensors(const ser_wav2vec2_encoder *enc) { return enc ? enc->weights.n : 0; }

ser_tensor *ser_wav2vec2_encoder_tensor(const ser_wav2vec2_encoder *enc, int i, const char **name) {
  return enc ? ser_pretrained_weights_get(&enc->weights, i, name) : NULL;
}

/* The suffix every family's file has: the feature encoder's first conv. */
static const char FIRST_CONV[] = "feature_extractor.conv_layers.0.conv.weight";

/* The prefix before FIRST_CONV ("", "wav2vec2.", ...) into prefix; -1 when absent. */
static int find_prefix(const ser_safetensors_file *sf, char *prefix, size_t cap) {
  const size_t ls = strlen(FIRST_CONV);
  for (int i = 0; i < ser_safetensors_count(sf); i++) {
    const char *n = ser_safetensors_name(sf, i);
    const size_t ln = strlen(n);
    if (ln < ls || strcmp(n + ln - ls, FIRST_CONV) != 0) continue;
    if (ln - ls >= cap || (ln > ls && n[ln - ls - 1] != '.')) continue;
    memcpy(prefix, n, ln - ls);
    prefix[ln - ls] = 0;
    return 0;
  }
  return -1;
}

int ser_wav2vec2_detect(const char *path) {
  struct stat sb;
  if (!path || stat(path, &sb) != 0) return 0;
  char *file = S_ISDIR(sb.st_mode) ? ser_fs_join(path, "model.safetensors") : strdup(path);
  if (!file) return 0;
  ser_safetensors_file *sf = NULL;
  char prefix[MAX_NAME];
  int yes = 0;
  if (ser_fs_is_file(file) && ser_safetensors_open(&sf, file) == 0) yes = find_prefix(sf, prefix, sizeof prefix) == 0;
  ser_safetensors_close(sf);
  free(file);
  ser_error_clear();
  return yes;
}

typedef struct loader {
  ser_safetensors_file *sf;
  const char *file, *prefix;
  ser_wav2vec2_encoder *enc;
  int used;
} loader;

static int own(ser_wav2vec2_encoder *enc, ser_tensor *t, const char *name) {
  const int rc = ser_pretrained_weights_add(&enc->weights, t, name, "wav2vec2");
  if (rc) return rc;
  enc->n_params += ser_tensor_numel(t);
  return 0;
}

static int index_of(const loader *ld, const char *name) {
  char full[2 * MAX_NAME];
  snprintf(full, sizeof full, "%s%s", ld->prefix, name);
  return ser_safetensors_find(ld->sf, full);
}

static int shape_of(const loader *ld, const char *name, int64_t *shape) {
  const int i = index_of(ld, name);
  return i < 0 ? -1 : ser_safetensors_shape(ld->sf, i, shape);
}

static const char *config_desc(const ser_wav2vec2_config *c) {
  static _Thread_local char s[160];
  snprintf(s, sizeof s, "hidden_size %d, num_attention_heads %d, intermediate_size %d, conv_dim[-1] %d", c->d_model,
           c->heads, c->ffn, c->n_conv ? c->conv_dim[c->n_conv - 1] : 0);
  return s;
}

/* Loads prefix+name, which must have shape want[0..nd-1]; owned under name. */
static int take_as(loader *ld, ser_tensor **t, const float **dst, const char *name, int nd, const int64_t *want) {
  const int i = index_of(ld, name);
  if (i < 0)
    return ser_error(SER_EFORMAT, "%s: '%s' has no tensor '%s%s' (a %s encoder of %d layers needs it)",
                     FAMILY[ld->enc->cfg.family], ld->file, ld->prefix, name, FAMILY[ld->enc->cfg.family],
                     ld->enc->cfg.layers);
  int64_t shape[SER_MAX_DIMS];
  const int got = ser_safetensors_shape(ld->sf, i, shape);
  int ok = got == nd;
  for (int k = 0; ok && k < nd; k++) ok = shape[k] == want[k];
  if (!ok) {
    char g[128];
    snprintf(g, sizeof g, "%s", ser_shape_str(got, shape));
    return ser_error(SER_EFORMAT, "%s: '%s': tensor '%s%s' has shape %s, expected %s (%s)", FAMILY[ld->enc->cfg.family],
                     ld->file, ld->prefix, name, g, ser_shape_str(nd, want), config_desc(&ld->enc->cfg));
  }
  int rc = ser_safetensors_load(t, ld->sf, i);
  if (rc) return rc;
  ld->used++;
  if (dst) *dst = ser_tensor_data(*t);
  return 0;
}

static int take(loader *ld, const float **dst, const char *name, int nd, int64_t d0, int64_t d1, int64_t d2,
                int64_t d3) {
  ser_tensor *t;
  const int64_t want[4] = {d0, d1, d2, d3};
  int rc = take_as(ld, &t, dst, name, nd, want);
  if (rc) return rc;
  if ((rc = own(ld->enc, t, name))) ser_tensor_release(t);
  return rc;
}

/* The positional conv's weight: weight norm over dim 2 (w = g v / |v| with the
 * norm over dims 0 and 1 for each kernel tap) as weight_g / weight_v, as
 * parametrizations.weight.original0 / original1, or already folded as weight. */
static int load_pos_conv(loader *ld) {
  ser_wav2vec2_config *c = &ld->enc->cfg;
  const int64_t d = c->d_model, cg = d / c->pos_groups, K = c->pos_kernel;
  static const char *const pairs[2][2] = {{"encoder.pos_conv_embed.conv.weight_g", "encoder.pos_conv_embed.conv.weight_v"},
                                          {"encoder.pos_conv_embed.conv.parametrizations.weight.original0",
                                           "encoder.pos_conv_embed.conv.parametrizations.weight.original1"}};
  int rc;
  if ((rc = take(ld, &ld->enc->pos_b, "encoder.pos_conv_embed.conv.bias", 1, d, 0, 0, 0))) return rc;
  if (index_of(ld, "encoder.pos_conv_embed.conv.weight") >= 0)
    return take(ld, &ld->enc->pos_w, "encoder.pos_conv_embed.conv.weight", 3, d, cg, K, 0);
  for (int p = 0; p < 2; p++) {
    if (index_of(ld, pairs[p][0]) < 0) continue;
    ser_tensor *g = NULL, *v = NULL;
    const float *gd, *vd;
    if ((rc = take_as(ld, &g, &gd, pairs[p][0], 3, SER_DIMS(1, 1, K))) ||
        (rc = take_as(ld, &v, &vd, pairs[p][1], 3, SER_DIMS(d, cg, K)))) {
      ser_tensor_release(g);
      return rc;
    }
    float *vw = ser_tensor_data(v);
    for (int64_t k = 0; k < K; k++) {
      double ss = 0;
      for (int64_t r = 0; r < d * cg; r++) ss += (double)vw[r * K + k] * vw[r * K + k];
      const float s = ss > 0 ? (float)(gd[k] / sqrt(ss)) : 0.0f;
      for (int64_t r = 0; r < d * cg; r++) vw[r * K + k] *= s;
    }
    ser_tensor_release(g);
    ld->enc->pos_w = vw;
    if ((rc = own(ld->enc, v, "encoder.pos_conv_embed.conv.weight"))) ser_tensor_release(v);
    return rc;
  }
  return ser_error(SER_EFORMAT, "%s: '%s' has no positional convolution weight: expected '%sencoder.pos_conv_embed.conv."
                   "weight_g' and 'weight_v', 'parametrizations.weight.original0' and 'original1', or 'weight'",
                   FAMILY[c->family], ld->file, ld->prefix);
}

static int load_blocks(loader *ld) {
  ser_wav2vec2_encoder *enc = ld->enc;
  const ser_wav2vec2_config *c = &enc->cfg;
  const int d = c->d_model, f = c->ffn, H = c->heads;
  char n[MAX_NAME];
  int rc;
#define TAKE(field, suffix, nd, a, b, cc, dd)                              \
  do {                                                                     \
    snprintf(n, sizeof n, "encoder.layers.%d.%s", l, suffix);              \
    if ((rc = take(ld, &blk->field, n, nd, a, b, cc, dd))) return rc;      \
  } while (0)
  for (int l = 0; l < c->layers; l++) {
    ser_wav2vec2_block *blk = &enc->blocks[l];
    TAKE(q_w, "attention.q_proj.weight", 2, d, d, 0, 0);
    TAKE(q_b, "attention.q_proj.bias", 1, d, 0, 0, 0);
    TAKE(k_w, "attention.k_proj.weight", 2, d, d, 0, 0);
    TAKE(k_b, "attention.k_proj.bias", 1, d, 0, 0, 0);
    TAKE(v_w, "attention.v_proj.weight", 2, d, d, 0, 0);
    TAKE(v_b, "attention.v_proj.bias", 1, d, 0, 0, 0);
    TAKE(o_w, "attention.out_proj.weight", 2, d, d, 0, 0);
    TAKE(o_b, "attention.out_proj.bias", 1, d, 0, 0, 0);
    TAKE(ln1_w, "layer_norm.weight", 1, d, 0, 0, 0);
    TAKE(ln1_b, "layer_norm.bias", 1, d, 0, 0, 0);
    TAKE(fc1_w, "feed_forward.intermediate_dense.weight", 2, f, d, 0, 0);
    TAKE(fc1_b, "feed_forward.intermediate_dense.bias", 1, f, 0, 0, 0);
    TAKE(fc2_w, "feed_forward.output_dense.weight", 2, d, f, 0, 0);
    TAKE(fc2_b, "feed_forward.output_dense.bias", 1, d, 0, 0, 0);
    TAKE(ln2_w, "final_layer_norm.weight", 1, d, 0, 0, 0);
    TAKE(ln2_b, "final_layer_norm.bias", 1, d, 0, 0, 0);
    if (c->family == SER_W2V_WAVLM) {
      TAKE(gate_const, "attention.gru_rel_pos_const", 4, 1, H, 1, 1);
      TAKE(gate_w, "attention.gru_rel_pos_linear.weight", 2, 8, d / H, 0, 0);
      TAKE(gate_b, "attention.gru_rel_pos_linear.bias", 1, 8, 0, 0, 0);
    }
  }
#undef TAKE
  if (c->family == SER_W2V_WAVLM)
    return take(ld, &enc->rel_embed, "encoder.layers.0.attention.rel_attn_embed.weight", 2, c->num_buckets, H, 0, 0);
  return 0;
}

/* Is name (without prefix) a part of the encoder this loader reads? Heads,
 * quantizer, masked_spec_embed and anything outside these three stay on disk. */
static int encoder_part(const char *rest) {
  return strncmp(rest, "feature_extractor.", 18) == 0 || strncmp(rest, "feature_projection.", 19) == 0 ||
         strncmp(rest, "encoder.", 8) == 0;
}

/* Sizes from the tensors' shapes, checked against config.json (w2v_config_fields, -1 = absent). */
static int describe(loader *ld, const w2v_config_fields *cf, const char *cfgpath) {
  ser_wav2vec2_config *c = &ld->enc->cfg;
  int64_t s[SER_MAX_DIMS];
  char n[MAX_NAME];
  const char *fam = FAMILY[c->family];
  /* feature encoder: conv_layers.N.conv.weight [dim, in, kernel] */
  c->n_conv = 0;
  for (;;) {
    snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.conv.weight", c->n_conv);
    if (shape_of(ld, n, s) < 0) break;
    if (c->n_conv == SER_W2V_MAX_CONV)
      return ser_error(SER_EUNSUPPORTED, "%s: '%s' has more than %d conv layers", fam, ld->file, SER_W2V_MAX_CONV);
    if (shape_of(ld, n, s) != 3 || s[0] < 1 || s[2] < 1 || s[0] > 65536 || s[2] > 65536 ||
        s[1] != (c->n_conv ? c->conv_dim[c->n_conv - 1] : 1))
      return ser_error(SER_EFORMAT, "%s: '%s': tensor '%s%s' has shape %s, expected [channels, %d, kernel]", fam,
                       ld->file, ld->prefix, n, ser_shape_str(shape_of(ld, n, s), s),
                       c->n_conv ? c->conv_dim[c->n_conv - 1] : 1);
    c->conv_dim[c->n_conv] = (int)s[0];
    c->conv_kernel[c->n_conv] = (int)s[2];
    c->n_conv++;
  }
  static const int def_k[7] = {10, 3, 3, 3, 3, 2, 2}, def_s[7] = {5, 2, 2, 2, 2, 2, 2};
  for (int l = 0; l < c->n_conv; l++) {
    if (cf->n_conv >= 0) {
      if (cf->n_conv != c->n_conv)
        return ser_error(SER_EFORMAT, "%s: '%s' lists %d conv layers (conv_dim / conv_kernel / conv_stride), but the "
                         "weights have %d", fam, cfgpath, cf->n_conv, c->n_conv);
      if (cf->conv_dim[l] > 0 && cf->conv_dim[l] != c->conv_dim[l])
        return ser_error(SER_EFORMAT, "%s: '%s' says conv_dim[%d] = %d, but the weights have %d", fam, cfgpath, l,
                         cf->conv_dim[l], c->conv_dim[l]);
      if (cf->conv_kernel[l] > 0 && cf->conv_kernel[l] != c->conv_kernel[l])
        return ser_error(SER_EFORMAT, "%s: '%s' says conv_kernel[%d] = %d, but the weights have %d", fam, cfgpath, l,
                         cf->conv_kernel[l], c->conv_kernel[l]);
    }
    if (cf->n_conv >= 0 && cf->conv_stride[l] > 0) {
      c->conv_stride[l] = cf->conv_stride[l];
    } else if (c->n_conv == 7 && c->conv_kernel[l] == def_k[l]) {
      c->conv_stride[l] = def_s[l];
    } else {
      return ser_error(SER_EFORMAT, "%s: '%s': the conv layers' kernels are not the standard 10,3,3,3,3,2,2, and no "
                       "config.json gives conv_stride; put the model's config.json beside it", fam, ld->file);
    }
  }
  if (c->n_conv == 0) return ser_error(SER_EFORMAT, "%s: '%s' has no feature encoder", fam, ld->file);
  c->conv_bias = index_of(ld, "feature_extractor.conv_layers.0.conv.bias") >= 0;
  c->layer_extractor = c->n_conv > 1 && index_of(ld, "feature_extractor.conv_layers.1.layer_norm.weight") >= 0;
  if (cf->layer_extractor >= 0 && cf->layer_extractor != c->layer_extractor)
    return ser_error(SER_EFORMAT, "%s: '%s' says feat_extract_norm = \"%s\", but the weights have %s", fam, cfgpath,
                     cf->layer_extractor ? "layer" : "group",
                     c->layer_extractor ? "a LayerNorm after every conv (\"layer\")"
                                        : "a norm after the first conv only (\"group\")");
  if (cf->conv_bias >= 0 && cf->conv_bias != c->conv_bias)
    return ser_error(SER_EFORMAT, "%s: '%s' says conv_bias = %s, but the weights %s", fam, cfgpath,
                     cf->conv_bias ? "true" : "false", c->conv_bias ? "have conv biases" : "have none");
  /* projection [d, conv_dim[-1]] */
  if (shape_of(ld, "feature_projection.projection.weight", s) != 2)
    return ser_error(SER_EFORMAT, "%s: '%s' has no tensor '%sfeature_projection.projection.weight' (2-D)", fam,
                     ld->file, ld->prefix);
  c->d_model = (int)s[0];
  c->proj_norm = index_of(ld, "feature_projection.layer_norm.weight") >= 0;
  if (cf->proj_norm >= 0 && cf->proj_norm != c->proj_norm)
    return ser_error(SER_EFORMAT, "%s: '%s' says feat_proj_layer_norm = %s, but the weights %s", fam, cfgpath,
                     cf->proj_norm ? "true" : "false", c->proj_norm ? "have it" : "do not");
  /* layers: the largest N of encoder.layers.N.* + 1 */
  c->layers = 0;
  const size_t pl = strlen(ld->prefix);
  for (int i = 0; i < ser_safetensors_count(ld->sf); i++) {
    const char *nm = ser_safetensors_name(ld->sf, i);
    int l = -1;
    if (strncmp(nm, ld->prefix, pl) == 0 && sscanf(nm + pl, "encoder.layers.%d.", &l) == 1 && l >= 0 && l < 4096 &&
        l + 1 > c->layers)
      c->layers = l + 1;
  }
  if (c->layers < 1) return ser_error(SER_EFORMAT, "%s: '%s' has no encoder.layers.N tensors", fam, ld->file);
  if (shape_of(ld, "encoder.layers.0.feed_forward.intermediate_dense.weight", s) != 2)
    return ser_error(SER_EFORMAT, "%s: '%s' has no tensor '%sencoder.layers.0.feed_forward.intermediate_dense.weight'",
                     fam, ld->file, ld->prefix);
  c->ffn = (int)s[0];
  /* heads: config, WavLM's gate constant [1, H, 1, 1], or d / 64 */
  c->heads = -1;
  if (c->family == SER_W2V_WAVLM && shape_of(ld, "encoder.layers.0.attention.gru_rel_pos_const", s) == 4)
    c->heads = (int)s[1];
  if (cf->heads > 0) {
    if (c->heads > 0 && c->heads != cf->heads)
      return ser_error(SER_EFORMAT, "%s: '%s' says num_attention_heads = %d, but the weights have %d", fam, cfgpath,
                       cf->heads, c->heads);
    c->heads = cf->heads;
  }
  if (c->heads < 1 && c->d_model % 64 == 0) c->heads = c->d_model / 64;
  if (c->heads < 1 || c->d_model % c->heads)
    return ser_error(SER_EFORMAT, "%s: '%s': hidden_size %d %s; give a config.json with num_attention_heads", fam,
                     cfgpath ? cfgpath : ld->file, c->d_model,
                     c->heads < 1 ? "is not a multiple of 64, so the head count cannot be inferred"
                                  : "is not divisible by num_attention_heads");
  /* positional conv: [d, d / groups, K] in whichever form */
  static const char *const vnames[3] = {"encoder.pos_conv_embed.conv.weight_v",
                                        "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
                                        "encoder.pos_conv_embed.conv.weight"};
  int nd = -1;
  for (int k = 0; k < 3 && nd < 0; k++) nd = shape_of(ld, vnames[k], s);
  if (nd != 3 || s[0] != c->d_model || s[1] < 1 || c->d_model % s[1] || s[2] < 1 || s[2] > 4096)
    return ser_error(SER_EFORMAT, "%s: '%s': the positional convolution's weight %s, expected [%d, %d / groups, kernel]",
                     fam, ld->file, nd < 0 ? "is missing" : ser_shape_str(nd, s), c->d_model, c->d_model);
  c->pos_kernel = (int)s[2];
  c->pos_groups = c->d_model / (int)s[1];
  if (cf->pos_kernel > 0 && cf->pos_kernel != c->pos_kernel)
    return ser_error(SER_EFORMAT, "%s: '%s' says num_conv_pos_embeddings = %d, but the weights have %d", fam, cfgpath,
                     cf->pos_kernel, c->pos_kernel);
  if (cf->pos_groups > 0 && cf->pos_groups != c->pos_groups)
    return ser_error(SER_EFORMAT, "%s: '%s' says num_conv_pos_embedding_groups = %d, but the weights have %d", fam,
                     cfgpath, cf->pos_groups, c->pos_groups);
  if (cf->d_model > 0 && cf->d_model != c->d_model)
    return ser_error(SER_EFORMAT, "%s: '%s' says hidden_size = %d, but the weights have %d (feature_projection."
                     "projection.weight)", fam, cfgpath, cf->d_model, c->d_model);
  if (cf->layers > 0 && cf->layers != c->layers)
    return ser_error(SER_EFORMAT, "%s: '%s' says num_hidden_layers = %d, but the weights have %d", fam, cfgpath,
                     cf->layers, c->layers);
  if (cf->ffn > 0 && cf->ffn != c->ffn)
    return ser_error(SER_EFORMAT, "%s: '%s' says intermediate_size = %d, but the weights have %d", fam, cfgpath,
                     cf->ffn, c->ffn);
  /* what the tensors cannot tell: the config, else the released models' pairing
   * (the "layer" extractor goes with pre-LN blocks, "group" with post-LN) */
  c->stable_layer_norm = cf->stable_layer_norm >= 0 ? cf->stable_layer_norm : c->layer_extractor;
  c->eps = cf->eps > 0 ? (float)cf->eps : 1e-5f;
  c->do_normalize = cf->do_normalize >= 0 ? cf->do_normalize : c->layer_extractor;
  if (c->family == SER_W2V_WAVLM) {
    if (shape_of(ld, "encoder.layers.0.attention.rel_attn_embed.weight", s) != 2 || s[0] < 2 || s[0] > 1 << 20)
      return ser_error(SER_EFORMAT, "%s: '%s' has no tensor '%sencoder.layers.0.attention.rel_attn_embed.weight' "
                       "[num_buckets, heads]", fam, ld->file, ld->prefix);
    c->num_buckets = (int)s[0];
    if (cf->num_buckets > 0 && cf->num_buckets != c->num_buckets)
      return ser_error(SER_EFORMAT, "%s: '%s' says num_buckets = %d, but the weights have %d", fam, cfgpath,
                       cf->num_buckets, c->num_buckets);
    c->max_distance = cf->max_distance > 0 ? cf->max_distance : 800;
    if (c->num_buckets / 4 < 1 || c->max_distance <= c->num_buckets / 4)
      return ser_error(SER_EFORMAT, "%s: max_bucket_distance %d must exceed num_buckets / 4 = %d", fam,
                       c->max_distance, c->num_buckets / 4);
  }
  /* receptive field and hop of one output frame */
  int64_t rf = 1, hop = 1;
  for (int l = c->n_conv - 1; l >= 0; l--) rf = (rf - 1) * c->conv_stride[l] + c->conv_kernel[l];
  for (int l = 0; l < c->n_conv; l++) hop *= c->conv_stride[l];
  if (rf > 1 << 24 || hop > 1 << 24) return ser_error(SER_EFORMAT, "%s: '%s': conv strides too large", fam, ld->file);
  c->receptive_field = (int)rf;
  c->hop = (int)hop;
  return 0;
}

static int load_from(ser_wav2vec2_encoder *enc, ser_safetensors_file *sf, const char *file, const char *cfgpath,
                     const char *prepath) {
  char prefix[MAX_NAME];
  if (find_prefix(sf, prefix, sizeof prefix) != 0)
    return ser_error(SER_EFORMAT, "wav2vec2: '%s' is not a wav2vec 2.0 / HuBERT / WavLM checkpoint: no tensor "
                     "'%s' (with or without a 'wav2vec2.', 'hubert.' or 'wavlm.' prefix)", file, FIRST_CONV);
  w2v_config_fields cf;
  int rc;
  if (cfgpath && (rc = ser_w2v_config_read(&cf, cfgpath))) return rc;
  if (!cfgpath) ser_w2v_config_init(&cf);
  if (prepath && (rc = ser_w2v_preprocessor_read(&cf, prepath))) return rc;
  loader ld = {.sf = sf, .file = file, .prefix = prefix, .enc = enc};
  /* family: config.json's model_type, else the prefix, else the tensors */
  const int gated = index_of(&ld, "encoder.layers.0.attention.gru_rel_pos_const") >= 0;
  int fam = cf.family;
  if (fam < 0) {
    for (int k = 0; k < 3; k++) {
      char p[32];
      snprintf(p, sizeof p, "%s.", FAMILY[k]);
      if (strcmp(prefix, p) == 0) fam = k;
    }
  }
  if (fam < 0) fam = gated ? SER_W2V_WAVLM : SER_W2V_WAV2VEC2;
  if ((fam == SER_W2V_WAVLM) != gated)
    return ser_error(SER_EFORMAT, "%s: '%s' %s WavLM's gated relative position bias "
                     "('%sencoder.layers.0.attention.gru_rel_pos_const'), but %s says the model is %s", FAMILY[fam],
                     file, gated ? "has" : "lacks", prefix, cf.family >= 0 ? cfgpath : "its prefix", FAMILY[fam]);
  enc->cfg.family = (ser_w2v_family)fam;
  enc->has_config = cfgpath != NULL;
  if ((rc = describe(&ld, &cf, cfgpath))) return rc;
  ser_wav2vec2_config *c = &enc->cfg;
  if (!(enc->blocks = calloc((size_t)c->layers, sizeof *enc->blocks)))
    return ser_error(SER_ENOMEM, "wav2vec2: out of memory");
  char n[MAX_NAME];
  for (int l = 0; l < c->n_conv; l++) {
    const int C = c->conv_dim[l], in = l ? c->conv_dim[l - 1] : 1;
    snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.conv.weight", l);
    if ((rc = take(&ld, &enc->conv_w[l], n, 3, C, in, c->conv_kernel[l], 0))) return rc;
    if (c->conv_bias) {
      snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.conv.bias", l);
      if ((rc = take(&ld, &enc->conv_b[l], n, 1, C, 0, 0, 0))) return rc;
    }
    if (c->layer_extractor || l == 0) {
      snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.layer_norm.weight", l);
      if ((rc = take(&ld, &enc->conv_ln_w[l], n, 1, C, 0, 0, 0))) return rc;
      snprintf(n, sizeof n, "feature_extractor.conv_layers.%d.layer_norm.bias", l);
      if ((rc = take(&ld, &enc->conv_ln_b[l], n, 1, C, 0, 0, 0))) return rc;
    }
  }
  const int d = c->d_model, C = c->conv_dim[c->n_conv - 1];
  if (c->proj_norm && ((rc = take(&ld, &enc->proj_ln_w, "feature_projection.layer_norm.weight", 1, C, 0, 0, 0)) ||
                       (rc = take(&ld, &enc->proj_ln_b, "feature_projection.layer_norm.bias", 1, C, 0, 0, 0))))
    return rc;
  if ((rc = take(&ld, &enc->proj_w, "feature_projection.projection.weight", 2, d, C, 0, 0)) ||
      (rc = take(&ld, &enc->proj_b, "feature_projection.projection.bias", 1, d, 0, 0, 0)) || (rc = load_pos_conv(&ld)) ||
      (rc = take(&ld, &enc->enc_ln_w, "encoder.layer_norm.weight", 1, d, 0, 0, 0)) ||
      (rc = take(&ld, &enc->enc_ln_b, "encoder.layer_norm.bias", 1, d, 0, 0, 0)) || (rc = load_blocks(&ld)))
    return rc;
  /* strict over the encoder's parts, as PyTorch's load_state_dict: a tensor we
   * did not read means an architecture we do not build */
  const size_t pl = strlen(prefix);
  int present = 0;
  const char *extra = NULL;
  for (int i = 0; i < ser_safetensors_count(sf); i++) {
    const char *nm = ser_safetensors_name(sf, i);
    if (strncmp(nm, prefix, pl) != 0 || !encoder_part(nm + pl)) continue;
    present++;
    const char *rest = nm + pl;
    int known = 0;
    for (int k = 0; k < enc->weights.n && !known; k++) known = strcmp(enc->weights.names[k], rest) == 0;
    known |= strstr(rest, "pos_conv_embed.conv.weight_") != NULL || strstr(rest, "pos_conv_embed.conv.parametrizations") != NULL;
    if (!known && !extra) extra = nm;
  }
  if (present != ld.used || extra)
    return ser_error(SER_EFORMAT, "%s: '%s' has an encoder tensor this architecture does not use: '%s' (%d encoder "
                     "tensors, %d read for %d layers)", FAMILY[c->family], file, extra ? extra : "?", present, ld.used,
                     c->layers);
  return 0;
}

int ser_wav2vec2_encoder_load(ser_wav2vec2_encoder **out, const char *path) {
  *out = NULL;
  struct stat sb;
  if (!path || stat(path, &sb) != 0)
    return ser_error(SER_EIO, "wav2vec2: cannot open '%s': %s (expected a folder with model.safetensors and "
                     "config.json, or a .safetensors file)", path ? path : "(null)", path ? strerror(errno) : "no path");
  char *file = NULL, *cfg = NULL, *pre = NULL;
  int rc = 0;
  if (S_ISDIR(sb.st_mode)) {
    file = ser_fs_join(path, "model.safetensors");
    cfg = ser_fs_join(path, "config.json");
    pre = ser_fs_join(path, "preprocessor_config.json");
    if (!file || !cfg || !pre) {
      rc = ser_error(SER_ENOMEM, "wav2vec2: out of memory");
    } else if (!ser_fs_is_file(file)) {
      rc = ser_error(SER_EIO, "wav2vec2: the folder '%s' holds no model.safetensors (a Hugging Face wav2vec2 / "
                     "hubert / wavlm model folder: model.safetensors, config.json, preprocessor_config.json)", path);
    }
    if (cfg && !ser_fs_is_file(cfg)) { free(cfg); cfg = NULL; }
    if (pre && !ser_fs_is_file(pre)) { free(pre); pre = NULL; }
  } else if (!(file = strdup(path))) {
    rc = ser_error(SER_ENOMEM, "wav2vec2: out of memory");
  }
  ser_wav2vec2_encoder *enc = NULL;
  ser_safetensors_file *sf = NULL;
  if (!rc) rc = (enc = calloc(1, sizeof *enc)) ? ser_safetensors_open(&sf, file)
                                              : ser_error(SER_ENOMEM, "wav2vec2: out of memory");
  if (!rc) rc = load_from(enc, sf, file, cfg, pre);
  ser_safetensors_close(sf);
  free(cfg);
  free(pre);
  if (rc) {
    free(file);
    ser_wav2vec2_encoder_free(enc);
    return rc;
  }
  enc->source = file;
  *out = enc;
  return 0;
}
