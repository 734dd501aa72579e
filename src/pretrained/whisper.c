/* Whisper's audio encoder (see whisper.h): loading from safetensors (+ config.json)
 * and the batched, padding-masked forward on the transformer kernels of src/ops. */
#include "pretrained/whisper.h"
#include "pretrained/forward_tensor.h"
#include "pretrained/whisper_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/gemm.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/rowops.h"
#include "ops/scratch.h"

#define LN_EPS 1e-5f
#define MAX_NAME 256

/* ---- loading ---- */

void ser_whisper_encoder_free(ser_whisper_encoder *enc) {
  if (!enc) return;
  ser_pretrained_weights_free(&enc->weights);
  free(enc->blocks);
  free(enc->source);
  free(enc);
}

/* config.json value (or -1) against the tensors' value. */
static int agree(const char *cfgpath, const char *key, int cfg, int tensors, const char *from) {
  if (cfg < 0 || cfg == tensors) return 0;
  return ser_error(SER_EFORMAT, "whisper: '%s' says %s = %d, but the weights have %d (%s)", cfgpath, key, cfg,
                   tensors, from);
}

typedef struct loader {
  ser_safetensors_file *sf;
  const char *file, *prefix;
  ser_whisper_encoder *enc;
  int used; /* encoder tensors taken */
} loader;

/* Loads prefix+name, which must have the given shape; stores a pointer to its data. */
static int take(loader *ld, const float **dst, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2) {
  char full[2 * MAX_NAME];
  snprintf(full, sizeof full, "%s%s", ld->prefix, name);
  const int i = ser_safetensors_find(ld->sf, full);
  if (i < 0)
    return ser_error(SER_EFORMAT, "whisper: '%s' has no tensor '%s' (a Whisper encoder of %d layers needs it)",
                     ld->file, full, ld->enc->cfg.layers);
  int64_t shape[SER_MAX_DIMS];
  const int nd = ser_safetensors_shape(ld->sf, i, shape);
  const int64_t want[3] = {d0, d1, d2};
  int ok = nd == ndim;
  for (int k = 0; ok && k < ndim; k++) ok = shape[k] == want[k];
  if (!ok) {
    char got[128];
    snprintf(got, sizeof got, "%s", ser_shape_str(nd, shape));
    return ser_error(SER_EFORMAT, "whisper: '%s': tensor '%s' has shape %s, expected %s (d_model %d, "
                     "encoder_ffn_dim %d, num_mel_bins %d)", ld->file, full, got, ser_shape_str(ndim, want),
                     ld->enc->cfg.d_model, ld->enc->cfg.ffn, ld->enc->cfg.n_mels);
  }
  char hf_name[MAX_NAME + 16];
  snprintf(hf_name, sizeof hf_name, "model.encoder.%s", name);
  ser_tensor *t;
  int rc = ser_safetensors_load(&t, ld->sf, i);
  if (rc) return rc;
  if ((rc = ser_pretrained_weights_add(&ld->enc->weights, t, hf_name, "whisper"))) {
    ser_tensor_release(t);
    return rc;
  }
  ld->enc->n_params += ser_tensor_numel(t);
  ld->used++;
  *dst = ser_tensor_data(t);
  return 0;
}

static int find_shape(loader *ld, const char *name, int64_t *shape) {
  char full[2 * MAX_NAME];
  snprintf(full, sizeof full, "%s%s", ld->prefix, name);
  const int i = ser_safetensors_find(ld->sf, full);
  return i < 0 ? -1 : ser_safetensors_shape(ld->sf, i, shape);
}

static int load_blocks(loader *ld) {
  ser_whisper_encoder *enc = ld->enc;
  const int d = enc->cfg.d_model, f = enc->cfg.ffn;
  int rc = 0;
  char n[MAX_NAME];
#define TAKE(field, suffix, nd, a, b, c)                                  \
  do {                                                                    \
    snprintf(n, sizeof n, "layers.%d.%s", l, suffix);                     \
    if ((rc = take(ld, &blk->field, n, nd, a, b, c))) return rc;          \
  } while (0)
  for (int l = 0; l < enc->cfg.layers; l++) {
    ser_whisper_block *blk = &enc->blocks[l];
    TAKE(ln1_w, "self_attn_layer_norm.weight", 1, d, 0, 0);
    TAKE(ln1_b, "self_attn_layer_norm.bias", 1, d, 0, 0);
    TAKE(q_w, "self_attn.q_proj.weight", 2, d, d, 0);
    TAKE(q_b, "self_attn.q_proj.bias", 1, d, 0, 0);
    TAKE(k_w, "self_attn.k_proj.weight", 2, d, d, 0);
    TAKE(v_w, "self_attn.v_proj.weight", 2, d, d, 0);
    TAKE(v_b, "self_attn.v_proj.bias", 1, d, 0, 0);
    TAKE(o_w, "self_attn.out_proj.weight", 2, d, d, 0);
    TAKE(o_b, "self_attn.out_proj.bias", 1, d, 0, 0);
    TAKE(ln2_w, "final_layer_norm.weight", 1, d, 0, 0);
    TAKE(ln2_b, "final_layer_norm.bias", 1, d, 0, 0);
    TAKE(fc1_w, "fc1.weight", 2, f, d, 0);
    TAKE(fc1_b, "fc1.bias", 1, f, 0, 0);
    TAKE(fc2_w, "fc2.weight", 2, d, f, 0);
    TAKE(fc2_b, "fc2.bias", 1, d, 0, 0);
  }
#undef TAKE
  return 0;
}

static int load_from(ser_whisper_encoder *enc, ser_safetensors_file *sf, const char *file, const char *cfgpath) {
  loader ld = {.sf = sf, .file = file, .enc = enc};
  static const char *prefixes[2] = {"model.encoder.", "encoder."};
  char probe[2 * MAX_NAME];
  for (int p = 0; p < 2 && !ld.prefix; p++) {
    snprintf(probe, sizeof probe, "%sconv1.weight", prefixes[p]);
    if (ser_safetensors_find(sf, probe) >= 0) ld.prefix = prefixes[p];
  }
  if (!ld.prefix) {
    const int n = ser_safetensors_count(sf);
    return ser_error(SER_EFORMAT, "whisper: '%s' is not a Whisper encoder checkpoint: it has no tensor "
                     "'model.encoder.conv1.weight' (nor 'encoder.conv1.weight'); it holds %d tensors%s%s%s%s",
                     file, n, n ? ", the first '" : "", n ? ser_safetensors_name(sf, 0) : "", n ? "'" : "",
                     n ? " (expected Hugging Face openai/whisper-* names)" : "");
  }
  /* sizes from the tensors */
  int64_t s[SER_MAX_DIMS];
  int nd = find_shape(&ld, "conv1.weight", s);
  if (nd != 3 || s[2] != 3 || s[0] < 1 || s[1] < 1 || s[0] > 65536 || s[1] > 4096)
    return ser_error(SER_EFORMAT, "whisper: '%s': tensor '%sconv1.weight' has shape %s, expected [d_model, "
                     "num_mel_bins, 3]", file, ld.prefix, ser_shape_str(nd, s));
  ser_whisper_config *c = &enc->cfg;
  c->d_model = (int)s[0];
  c->n_mels = (int)s[1];
  char n[MAX_NAME];
  for (c->layers = 0;; c->layers++) {
    snprintf(n, sizeof n, "layers.%d.fc1.weight", c->layers);
    if (find_shape(&ld, n, s) < 0) break;
  }
  if (c->layers == 0)
    return ser_error(SER_EFORMAT, "whisper: '%s' has no tensor '%slayers.0.fc1.weight': no transformer blocks", file,
                     ld.prefix);
  nd = find_shape(&ld, "layers.0.fc1.weight", s);
  if (nd != 2 || s[1] != c->d_model || s[0] < 1 || s[0] > (1 << 20))
    return ser_error(SER_EFORMAT, "whisper: '%s': tensor '%slayers.0.fc1.weight' has shape %s, expected "
                     "[encoder_ffn_dim, %d]", file, ld.prefix, ser_shape_str(nd, s), c->d_model);
  c->ffn = (int)s[0];
  nd = find_shape(&ld, "embed_positions.weight", s);
  if (nd != 2 || s[1] != c->d_model || s[0] < 1 || s[0] > (1 << 20))
    return ser_error(SER_EFORMAT, "whisper: '%s': tensor '%sembed_positions.weight' %s%s, expected "
                     "[max_source_positions, %d]", file, ld.prefix, nd < 0 ? "is missing" : "has shape ",
                     nd < 0 ? "" : ser_shape_str(nd, s), c->d_model);
  c->max_positions = (int)s[0];
  c->heads = c->d_model % 64 == 0 ? c->d_model / 64 : -1; /* every Whisper size has 64-wide heads */
  if (cfgpath) {
    whisper_config_fields cf;
    int rc = ser_whisper_config_read(&cf, cfgpath);
    if (rc) return rc;
    if ((rc = agree(cfgpath, "num_mel_bins", cf.n_mels, c->n_mels, "conv1.weight")) ||
        (rc = agree(cfgpath, "d_model", cf.d_model, c->d_model, "conv1.weight")) ||
        (rc = agree(cfgpath, "encoder_layers", cf.layers, c->layers, "layers.N.* tensors")) ||
        (rc = agree(cfgpath, "encoder_ffn_dim", cf.ffn, c->ffn, "layers.0.fc1.weight")) ||
        (rc = agree(cfgpath, "max_source_positions", cf.max_positions, c->max_positions, "embed_positions.weight")))
      return rc;
    if (cf.heads > 0) c->heads = cf.heads;
    enc->has_config = 1;
  }
  if (c->heads < 1 || c->d_model % c->heads != 0)
    return ser_error(SER_EFORMAT, "whisper: '%s': d_model %d %s; give a config.json with encoder_attention_heads",
                     cfgpath ? cfgpath : file, c->d_model,
                     c->heads < 1 ? "is not a multiple of 64, so the head count cannot be inferred"
                                  : "is not divisible by encoder_attention_heads");
  enc->blocks = calloc((size_t)c->layers, sizeof *enc->blocks);
  if (!enc->blocks) return ser_error(SER_ENOMEM, "whisper: out of memory");
  const int d = c->d_model;
  int rc;
  if ((rc = take(&ld, &enc->conv1_w, "conv1.weight", 3, d, c->n_mels, 3)) ||
      (rc = take(&ld, &enc->conv1_b, "conv1.bias", 1, d, 0, 0)) ||
      (rc = take(&ld, &enc->conv2_w, "conv2.weight", 3, d, d, 3)) ||
      (rc = take(&ld, &enc->conv2_b, "conv2.bias", 1, d, 0, 0)) ||
      (rc = take(&ld, &enc->pos, "embed_positions.weight", 2, c->max_positions, d, 0)) ||
      (rc = take(&ld, &enc->ln_w, "layer_norm.weight", 1, d, 0, 0)) ||
      (rc = take(&ld, &enc->ln_b, "layer_norm.bias", 1, d, 0, 0)) || (rc = load_blocks(&ld)))
    return rc;
  /* Strict, as PyTorch's load_state_dict: an encoder tensor we did not use
   * means a different architecture. */
  const size_t plen = strlen(ld.prefix);
  int present = 0;
  const char *extra = NULL;
  for (int i = 0; i < ser_safetensors_count(sf); i++)
    present += strncmp(ser_safetensors_name(sf, i), ld.prefix, plen) == 0;
  if (present != ld.used) {
    /* name the first unexpected one */
    for (int i = 0; i < ser_safetensors_count(sf) && !extra; i++) {
      const char *name = ser_safetensors_name(sf, i);
      if (strncmp(name, ld.prefix, plen) != 0) continue;
      const char *rest = name + plen;
      int l = -1, off = 0;
      char tail[MAX_NAME] = "";
      if (sscanf(rest, "layers.%d.%n", &l, &off) == 1 && off > 0) {
        snprintf(tail, sizeof tail, "%s", rest + off);
        static const char *known[15] = {"self_attn_layer_norm.weight", "self_attn_layer_norm.bias",
                                        "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
                                        "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.out_proj.weight",
                                        "self_attn.out_proj.bias", "final_layer_norm.weight", "final_layer_norm.bias",
                                        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
        int ok = l >= 0 && l < c->layers;
        int match = 0;
        for (int k = 0; ok && k < 15; k++) match |= strcmp(tail, known[k]) == 0;
        if (!ok || !match) extra = name;
      } else {
        static const char *top[7] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                     "embed_positions.weight", "layer_norm.weight", "layer_norm.bias"};
        int match = 0;
        for (int k = 0; k < 7; k++) match |= strcmp(rest, top[k]) == 0;
        if (!match) extra = name;
      }
    }
    return ser_error(SER_EFORMAT, "whisper: '%s' has an encoder tensor this architecture does not use: '%s' "
                     "(%d encoder tensors, %d expected for %d layers)", file, extra ? extra : "?", present, ld.used,
                     c->layers);
  }
  return 0;
}

int ser_whisper_encoder_n_tensors(const ser_whisper_encoder *enc) { return enc ? enc->weights.n : 0; }

ser_tensor *ser_whisper_encoder_tensor(const ser_whisper_encoder *enc, int i, const char **name) {
  return enc ? ser_pretrained_weights_get(&enc->weights, i, name) : NULL;
}

int ser_whisper_encoder_load(ser_whisper_encoder **out, const char *path) {
  *out = NULL;
  struct stat sb;
  if (!path || stat(path, &sb) != 0)
    return ser_error(SER_EIO, "whisper: cannot open '%s': %s (expected a folder with model.safetensors and "
                     "config.json, or a .safetensors file)", path ? path : "(null)", path ? strerror(errno) : "no path");
  char *file = NULL, *cfg = NULL;
  if (S_ISDIR(sb.st_mode)) {
    file = ser_fs_join(path, "model.safetensors");
    cfg = ser_fs_join(path, "config.json");
    if (!file || !cfg) {
      free(file);
      free(cfg);
      return ser_error(SER_ENOMEM, "whisper: out of memory");
    }
    if (!ser_fs_is_file(file)) {
      const int rc = ser_error(SER_EIO, "whisper: the folder '%s' holds no model.safetensors (get openai/whisper-* "
                               "from the Hugging Face hub: model.safetensors and config.json)", path);
      free(file);
      free(cfg);
      return rc;
    }
    if (!ser_fs_is_file(cfg)) {
      free(cfg);
      cfg = NULL;
    }
  } else if (!(file = malloc(strlen(path) + 1))) {
    return ser_error(SER_ENOMEM, "whisper: out of memory");
  } else {
    strcpy(file, path);
  }
  ser_whisper_encoder *enc = calloc(1, sizeof *enc);
  ser_safetensors_file *sf = NULL;
  int rc = enc ? ser_safetensors_open(&sf, file) : ser_error(SER_ENOMEM, "whisper: out of memory");
  if (!rc) rc = load_from(enc, sf, file, cfg);
  ser_safetensors_close(sf);
  free(cfg);
  if (rc) {
    free(file);
    ser_whisper_encoder_free(enc);
    return rc;
  }
  enc->source = file;
  *out = enc;
  return 0;
}

/* ---- forward ---- */

int64_t ser_whisper_encoder_frames(int64_t T) { return T > 0 ? (T + 1) / 2 : 0; }

int ser_whisper_encoder_check(const ser_whisper_encoder *enc, int B, int T, const int32_t *lengths) {
  const int maxT = 2 * enc->cfg.max_positions;
  if (B < 1) return ser_error(SER_EINVAL, "whisper encoder: empty batch (B = %d)", B);
  if (T < 1) return ser_error(SER_EINVAL, "whisper encoder: input has %d frames, expected at least 1", T);
  if (T > maxT)
    return ser_error(SER_EINVAL, "whisper encoder: input of %d frames (%.2f s) is longer than Whisper's %.0f s window "
                     "(at most %d frames of 10 ms, %d positions); split the audio", T, T / 100.0, maxT / 100.0, maxT,
                     enc->cfg.max_positions);
  for (int b = 0; lengths && b < B; b++)
    if (lengths[b] < 1 || lengths[b] > T)
      return ser_error(SER_EINVAL, "whisper encoder: length of clip %d is %d frames, expected 1..%d (the input's "
                       "frames)", b + 1, (int)lengths[b], T);
  return 0;
}

/* rows [n, d] LayerNorm into dst (mean/rstd: n floats of scratch). */
static void layernorm(float *dst, float *mean, float *rstd, const float *src, const float *w, const float *b,
                      int64_t n, int d) {
  ser_layernorm_forward(dst, mean, rstd, src, w, b, n, d, LN_EPS);
}

/* C [rows, OUT] += A [rows, IN] W^T + bias */
static void linear_acc(float *C, const float *A, const float *W, const float *bias, int rows, int IN, int OUT) {
  ser_gemm(0, 1, rows, OUT, IN, 1.0f, A, IN, W, IN, 1.0f, C, OUT);
  if (!bias) return;
#pragma omp parallel for num_threads(ser_num_threads()) if ((int64_t)rows * OUT > 65536)
  for (int r = 0; r < rows; r++)
    for (int o = 0; o < OUT; o++) C[(int64_t)r * OUT + o] += bias[o];
}

/* x [rows, n] = gelu(x + bias) in place: a Linear's bias and the GELU in one
 * pass over its output (the GEMM writes x with beta 0), rows over threads. */
static void bias_gelu(float *x, const float *bias, int64_t rows, int n) {
#pragma omp parallel for schedule(static) num_threads(ser_num_threads()) if (rows * n > 65536)
  for (int64_t r = 0; r < rows; r++) ser_row_bias_gelu(x + r * n, bias, n);
}

/* Zeroes rows t >= valid[b] of x [B, Tn, d]. */
static void zero_tail(float *x, const int32_t *valid, int B, int Tn, int d) {
  for (int b = 0; b < B; b++)
    if (valid[b] < Tn) memset(x + ((int64_t)b * Tn + valid[b]) * d, 0, sizeof(float) * (size_t)(Tn - valid[b]) * d);
}

int ser_whisper_encoder_forward(const ser_whisper_encoder *enc, float *out, float *hidden, const float *logmel,
                                const int32_t *lengths, int B, int T) {
  int rc = ser_whisper_encoder_check(enc, B, T, lengths);
  if (rc) return rc;
  const ser_whisper_config *c = &enc->cfg;
  const int m = c->n_mels, d = c->d_model, f = c->ffn, H = c->heads, T2 = (int)ser_whisper_encoder_frames(T);
  const int64_t rows = (int64_t)B * T2;
  const int nt = ser_num_threads();
  /* one scratch block: lengths, input, conv outputs, residual stream, LN/QKV/attention, MLP */
  const size_t n_in = (size_t)B * m * T, n_c1 = (size_t)B * d * T, n_c2 = (size_t)B * d * T2, n_row = (size_t)rows * d,
               n_f = (size_t)rows * f;
  const size_t floats = n_in + n_c1 + n_c2 + 6 * n_row + n_f + 2 * (size_t)rows;
  const size_t bytes = floats * sizeof(float) + 2 * sizeof(int32_t) * (size_t)B;
  /* the calling thread's grow-only workspace: batches of other lengths (a corpus
   * sorted by length) reuse it instead of faulting in fresh pages every call */
  float *buf = ser_scratch(SER_SCRATCH_WHISPER, bytes);
  if (!buf) return ser_error_prefix(SER_ENOMEM, "whisper encoder: batch [%d, %d, %d]", B, m, T);
  float *xin = buf, *c1 = xin + n_in, *c2 = c1 + n_c1, *h = c2 + n_c2, *a = h + n_row, *q = a + n_row, *k = q + n_row,
        *v = k + n_row, *att = v + n_row, *ff = att + n_row, *mean = ff + n_f, *rstd = mean + rows;
  int32_t *len = (int32_t *)(rstd + rows), *klen = len + B;
  for (int b = 0; b < B; b++) {
    len[b] = lengths ? lengths[b] : T;
    klen[b] = (int32_t)ser_whisper_encoder_frames(len[b]);
  }
  /* the input with frames >= length zeroed, whatever the padding held */
#pragma omp parallel for collapse(2) num_threads(nt) if (n_in > 65536)
  for (int b = 0; b < B; b++)
    for (int i = 0; i < m; i++) {
      const float *src = logmel + ((int64_t)b * m + i) * T;
      float *dst = xin + ((int64_t)b * m + i) * T;
      memcpy(dst, src, sizeof(float) * (size_t)len[b]);
      memset(dst + len[b], 0, sizeof(float) * (size_t)(T - len[b]));
    }
  ser_conv_geom g1 = {.B = B, .C = m, .H = 1, .W = T, .OC = d, .KH = 1, .KW = 3, .sh = 1, .sw = 1, .ph = 0, .pw = 1,
                      .dh = 1, .dw = 1};
  ser_conv_geom g2 = {.B = B, .C = d, .H = 1, .W = T, .OC = d, .KH = 1, .KW = 3, .sh = 1, .sw = 2, .ph = 0, .pw = 1,
                      .dh = 1, .dw = 1};
  if ((rc = ser_conv_geom_init(&g1, "whisper conv1")) || (rc = ser_conv_geom_init(&g2, "whisper conv2"))) goto done;
  /* (the GELU kernels do not work in place: pre-activations go to free scratch first) */
  float *pre = q; /* q, k, v, att: 4 * B * ceil(T/2) * d >= B * d * T floats, free here */
  if ((rc = ser_conv2d_forward(pre, xin, enc->conv1_w, enc->conv1_b, &g1))) goto done;
  ser_gelu_forward(c1, pre, (int64_t)n_c1);
  /* conv1's output past the clip is zero, as the padding conv2 sees when the clip runs alone */
#pragma omp parallel for collapse(2) num_threads(nt) if (n_c1 > 65536)
  for (int b = 0; b < B; b++)
    for (int o = 0; o < d; o++)
      memset(c1 + ((int64_t)b * d + o) * T + len[b], 0, sizeof(float) * (size_t)(T - len[b]));
  if ((rc = ser_conv2d_forward(h, c1, enc->conv2_w, enc->conv2_b, &g2))) goto done; /* h is free: n_c2 floats */
  ser_gelu_forward(c2, h, (int64_t)n_c2);
  /* [B, d, T2] -> [B, T2, d] plus the positional rows */
#pragma omp parallel for collapse(2) num_threads(nt) if (n_c2 > 65536)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T2; t++) {
      float *dst = h + ((int64_t)b * T2 + t) * d;
      const float *p = enc->pos + (int64_t)t * d;
      for (int o = 0; o < d; o++) dst[o] = c2[((int64_t)b * d + o) * T2 + t] + p[o];
    }
  if (hidden) {
    memcpy(hidden, h, sizeof(float) * n_row);
    zero_tail(hidden, klen, B, T2, d);
  }
  const float scale = 1.0f / sqrtf((float)(d / H));
  for (int l = 0; l < c->layers; l++) {
    const ser_whisper_block *blk = &enc->blocks[l];
    layernorm(a, mean, rstd, h, blk->ln1_w, blk->ln1_b, rows, d);
    ser_linear_forward(q, a, blk->q_w, blk->q_b, (int)rows, d, d);
    ser_linear_forward(k, a, blk->k_w, NULL, (int)rows, d, d);
    ser_linear_forward(v, a, blk->v_w, blk->v_b, (int)rows, d, d);
    if ((rc = ser_attention_forward(att, NULL, q, k, v, klen, B, T2, T2, H, d / H, scale))) {
      rc = ser_error_prefix(rc, "whisper encoder: attention of layer %d", l);
      goto done;
    }
    linear_acc(h, att, blk->o_w, blk->o_b, (int)rows, d, d);
    layernorm(a, mean, rstd, h, blk->ln2_w, blk->ln2_b, rows, d);
    ser_gemm(0, 1, (int)rows, f, d, 1.0f, a, d, blk->fc1_w, d, 0.0f, ff, f);
    bias_gelu(ff, blk->fc1_b, rows, f);
    linear_acc(h, ff, blk->fc2_w, blk->fc2_b, (int)rows, f, d);
    if (hidden) {
      float *dst = hidden + (size_t)(l + 1) * n_row;
      memcpy(dst, h, sizeof(float) * n_row);
      zero_tail(dst, klen, B, T2, d);
    }
  }
  if (out) {
    layernorm(out, mean, rstd, h, enc->ln_w, enc->ln_b, rows, d);
    zero_tail(out, klen, B, T2, d);
  }
done:
  return rc;
}

/* ser_whisper_encoder_forward as forward_tensor.h's ser_encoder_run_fn (T < 2^24 was checked) */
static int run_raw(const void *enc, float *y, float *hidden, const float *x, const int32_t *lengths, int B, int64_t T) {
  return ser_whisper_encoder_forward(enc, y, hidden, x, lengths, B, (int)T);
}

int ser_whisper_encoder_forward_tensor(const ser_whisper_encoder *enc, ser_tensor **out, ser_tensor **hidden,
                                       const ser_tensor *x, const int32_t *lengths) {
  *out = NULL;
  const ser_whisper_config *c = &enc->cfg;
  if (x->ndim != 3 || x->shape[1] != c->n_mels)
    return ser_error(SER_EINVAL, "whisper encoder: expected a log-mel batch [B, %d, T] (%d mel bins), got %s",
                     c->n_mels, c->n_mels, SER_SHAPE(x));
  if (x->shape[0] > (1 << 20) || x->shape[2] > (1 << 24))
    return ser_error(SER_EINVAL, "whisper encoder: input %s is too large", SER_SHAPE(x));
  const int B = (int)x->shape[0], T = (int)x->shape[2];
  int rc = ser_whisper_encoder_check(enc, B, T, lengths);
  if (rc) return rc;
  const ser_encoder_dims d = {B, T, ser_whisper_encoder_frames(T), c->layers, c->d_model};
  return ser_encoder_forward_tensor(out, hidden, x, lengths, enc, run_raw, d, "whisper");
}
