/* whisper_encoder -> ONNX (docs/graph.md, docs/onnx.md): the frozen Whisper encoder the
 * description names (its folder, checked by its SHA-256 identity as the C inference API
 * checks it) written out as ONNX ops with its weights as initializers, then the pooling the
 * whisper family trains on: per hidden state (the embeddings and each block's output,
 * before the final LayerNorm) the mean and population std over the clip's frames,
 * [B, L+1, 2, d]; for a clip at the start of a padded window (input.context) over its own
 * frames only, their count read from the model's second input, "frames". The computation
 * follows src/pretrained/whisper.h for one unpadded clip:
 *   logmel [B, n_mels, T] -> Conv1d k3 p1 -> GELU -> Conv1d k3 s2 p1 -> GELU -> [B, T', d]
 *   + positional rows 0..T'-1 -> L pre-LayerNorm blocks (attention scaled by head_dim^-1/2,
 *   k_proj without bias, exact GELU in the MLP). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "onnx_ops.h"
#include "pretrained/identity.h"
#include "pretrained/whisper.h"

/* The encoder folder as written, else beside the checkpoint; its identity must match. */
static int load(ox_ctx *c, const char *path, const char *sha, ser_whisper_encoder **enc) {
  char alt[2 * PATH_MAX + 2], hex[65];
  path = ser_encoder_resolve(alt, sizeof alt, path, c->ckpt_path);
  if (ser_encoder_identity(hex, path) < 0)
    return ox_fail(c, SER_EINVAL, "the model's Whisper encoder %s cannot be read (%s); its weights go into the ONNX "
                   "file, so it must be there (`make whisper-base` or place it)", path, ser_errmsg());
  if (strcmp(hex, sha) != 0)
    return ox_fail(c, SER_EINVAL, "the Whisper encoder at %s has changed since the model was trained (identity %.16s, "
                   "the checkpoint's %.16s)", path, hex, sha);
  if (ser_whisper_encoder_load(enc, path) < 0) return ox_fail(c, SER_EINVAL, "the model's Whisper encoder: %s", ser_errmsg());
  return 0;
}

/* A float initializer copied from raw weights; transposed ([rows, cols] -> [cols, rows])
 * for a Linear's MatMul when rows > 0 and transpose is set. */
static int weights(ox_ctx *c, const char *name, int rank, const int64_t *dims, const float *w, int transpose) {
  if (!transpose) return ox_init_float(c, name, rank, dims, w);
  const int64_t R = dims[0], C = dims[1], td[2] = {C, R};
  float *t = malloc((size_t)(R * C) * sizeof *t);
  if (!t) return ox_fail(c, SER_ENOMEM, "out of memory transposing %s", name);
  for (int64_t r = 0; r < R; r++)
    for (int64_t k = 0; k < C; k++) t[k * R + r] = w[r * C + k];
  int rc = ox_init_float(c, name, 2, td, t);
  free(t);
  return rc;
}

/* x [B, T', in] @ W^T + b -> out (W [outn, in] stored transposed under name). */
static int linear(ox_ctx *c, const char *x, const char *name, const float *w, const float *b, int64_t outn, int64_t in,
                  const char *out) {
  char wn[160], bn[160];
  const int64_t wd[2] = {outn, in}, bd[1] = {outn};
  snprintf(wn, sizeof wn, "%s.weight.T", name);
  snprintf(bn, sizeof bn, "%s.bias", name);
  int rc = weights(c, wn, 2, wd, w, 1);
  if (rc) return rc;
  if (!b) return ox_binary(c, "MatMul", x, wn, out);
  const char *mm = ox_tmp(c, out, "mm");
  if (!mm || (rc = ox_init_float(c, bn, 1, bd, b))) return rc ? rc : SER_ENOMEM;
  return ox_binary(c, "MatMul", x, wn, mm) || ox_binary(c, "Add", mm, bn, out) ? SER_ENOMEM : 0;
}

static int layernorm(ox_ctx *c, const char *x, const char *name, const float *w, const float *b, int64_t d, const char *out) {
  char wn[160], bn[160];
  const int64_t dd[1] = {d};
  snprintf(wn, sizeof wn, "%s.weight", name);
  snprintf(bn, sizeof bn, "%s.bias", name);
  int rc = ox_init_float(c, wn, 1, dd, w);
  if (rc || (rc = ox_init_float(c, bn, 1, dd, b))) return rc;
  const char *in[3] = {x, wn, bn};
  Onnx__NodeProto *n = ox_node(c, "LayerNormalization", 3, in, out);
  return (!n || ox_attr_int(c, n, "axis", -1) || ox_attr_float(c, n, "epsilon", 1e-5f)) ? SER_ENOMEM : 0;
}

static int conv(ox_ctx *c, const char *x, const char *name, const float *w, const float *b, int64_t outc, int64_t inc,
                int64_t stride, const char *out) {
  char wn[160], bn[160];
  const int64_t wd[3] = {outc, inc, 3}, bd[1] = {outc}, k[1] = {3}, s[1] = {stride}, p[2] = {1, 1};
  snprintf(wn, sizeof wn, "%s.weight", name);
  snprintf(bn, sizeof bn, "%s.bias", name);
  int rc = ox_init_float(c, wn, 3, wd, w);
  if (rc || (rc = ox_init_float(c, bn, 1, bd, b))) return rc;
  const char *in[3] = {x, wn, bn};
  Onnx__NodeProto *n = ox_node(c, "Conv", 3, in, out);
  return (!n || ox_attr_ints(c, n, "kernel_shape", 1, k) || ox_attr_ints(c, n, "strides", 1, s) ||
          ox_attr_ints(c, n, "pads", 2, p)) ? SER_ENOMEM : 0;
}

static int transpose(ox_ctx *c, const char *x, int k, const int64_t *perm, const char *out) {
  const char *in[1] = {x};
  Onnx__NodeProto *n = ox_node(c, "Transpose", 1, in, out);
  return (!n || ox_attr_ints(c, n, "perm", k, perm)) ? SER_ENOMEM : 0;
}

/* One pre-LayerNorm block: x += out_proj(attn(LN1(x))); x += fc2(GELU(fc1(LN2(x)))). */
static int block(ox_ctx *c, const ser_whisper_encoder *e, int l, const char *x, const char *out) {
  const ser_whisper_block *b = &e->blocks[l];
  const int64_t d = e->cfg.d_model, H = e->cfg.heads, hd = d / H, ffn = e->cfg.ffn;
  char p[96], nm[160];
  snprintf(p, sizeof p, "encoder.layers.%d", l);
  const char *ln1 = ox_tmp(c, out, "ln"), *q = ox_tmp(c, out, "q"), *k = ox_tmp(c, out, "k"), *v = ox_tmp(c, out, "v"),
             *qh = ox_tmp(c, out, "q"), *kh = ox_tmp(c, out, "k"), *vh = ox_tmp(c, out, "v"), *qt = ox_tmp(c, out, "q"),
             *kt = ox_tmp(c, out, "k"), *vt = ox_tmp(c, out, "v"), *sc = ox_tmp(c, out, "s"), *scs = ox_tmp(c, out, "s"),
             *pr = ox_tmp(c, out, "p"), *ctx = ox_tmp(c, out, "ctx"), *ctt = ox_tmp(c, out, "ctx"), *ctr = ox_tmp(c, out, "ctx"),
             *att = ox_tmp(c, out, "att"), *x1 = ox_tmp(c, out, "x"), *ln2 = ox_tmp(c, out, "ln"), *h1 = ox_tmp(c, out, "fc"),
             *g1 = ox_tmp(c, out, "fc"), *h2 = ox_tmp(c, out, "fc"), *scale = ox_scalar(c, out, (float)(1.0 / sqrt((double)hd)));
  if (!ln1 || !q || !k || !v || !qh || !kh || !vh || !qt || !kt || !vt || !sc || !scs || !pr || !ctx || !ctt || !ctr || !att ||
      !x1 || !ln2 || !h1 || !g1 || !h2 || !scale)
    return SER_ENOMEM;
  const int64_t heads[4] = {0, 0, H, hd}, merge[3] = {0, 0, d}, bhtd[4] = {0, 2, 1, 3}, bhdt[4] = {0, 2, 3, 1};
  int rc;
#define NAME(s) (snprintf(nm, sizeof nm, "%s.%s", p, s), nm)
  if ((rc = layernorm(c, x, NAME("self_attn_layer_norm"), b->ln1_w, b->ln1_b, d, ln1)) ||
      (rc = linear(c, ln1, NAME("self_attn.q_proj"), b->q_w, b->q_b, d, d, q)) ||
      (rc = linear(c, ln1, NAME("self_attn.k_proj"), b->k_w, NULL, d, d, k)) ||
      (rc = linear(c, ln1, NAME("self_attn.v_proj"), b->v_w, b->v_b, d, d, v)) ||
      (rc = ox_reshape_to(c, q, 4, heads, qh)) || (rc = ox_reshape_to(c, k, 4, heads, kh)) ||
      (rc = ox_reshape_to(c, v, 4, heads, vh)) || (rc = transpose(c, qh, 4, bhtd, qt)) ||   /* [B,H,T',hd] */
      (rc = transpose(c, kh, 4, bhdt, kt)) ||                                              /* [B,H,hd,T'] */
      (rc = transpose(c, vh, 4, bhtd, vt)) || (rc = ox_binary(c, "MatMul", qt, kt, sc)) ||
      (rc = ox_binary(c, "Mul", sc, scale, scs)))
    return rc;
  const char *in[1] = {scs};
  Onnx__NodeProto *sm = ox_node(c, "Softmax", 1, in, pr);
  if (!sm || ox_attr_int(c, sm, "axis", -1)) return SER_ENOMEM;
  if ((rc = ox_binary(c, "MatMul", pr, vt, ctx)) || (rc = transpose(c, ctx, 4, bhtd, ctt)) ||
      (rc = ox_reshape_to(c, ctt, 3, merge, ctr)) ||
      (rc = linear(c, ctr, NAME("self_attn.out_proj"), b->o_w, b->o_b, d, d, att)) || (rc = ox_binary(c, "Add", x, att, x1)) ||
      (rc = layernorm(c, x1, NAME("final_layer_norm"), b->ln2_w, b->ln2_b, d, ln2)) ||
      (rc = linear(c, ln2, NAME("fc1"), b->fc1_w, b->fc1_b, ffn, d, h1)) || (rc = ox_gelu(c, h1, 0, g1)) ||
      (rc = linear(c, g1, NAME("fc2"), b->fc2_w, b->fc2_b, d, ffn, h2)) || (rc = ox_binary(c, "Add", x1, h2, out)))
    return rc;
#undef NAME
  return 0;
}

/* The clip's frames of a padded window (c->frames, int64 [B]: its own log-mel frames): *mask
 * [B, T', 1] float, 1 on the clip's ceil(frames / 2) encoder frames and 0 on the window's rest,
 * and *count [B, 1, 1] float, their number. emb: a value [B, T', d] whose T' the mask takes. */
static int clip_mask(ox_ctx *c, const char *emb, const char *base, const char **mask, const char **count) {
  const char *one = ox_tmp(c, base, "mask"), *two = ox_tmp(c, base, "mask"), *zero_s = ox_tmp(c, base, "mask"),
             *one_s = ox_tmp(c, base, "mask"), *ax0 = ox_tmp(c, base, "mask"), *ax1 = ox_tmp(c, base, "mask"),
             *shp = ox_tmp(c, base, "mask"), *tlen = ox_tmp(c, base, "mask"), *n1 = ox_tmp(c, base, "mask"),
             *own = ox_tmp(c, base, "mask"), *r = ox_tmp(c, base, "mask"), *r2 = ox_tmp(c, base, "mask"),
             *own2 = ox_tmp(c, base, "mask"), *lt = ox_tmp(c, base, "mask"), *mf = ox_tmp(c, base, "mask"),
             *ax2 = ox_tmp(c, base, "mask"), *cf = ox_tmp(c, base, "mask"), *half = ox_tmp(c, base, "mask"),
             *atleast = ox_tmp(c, base, "mask");
  *mask = ox_tmp(c, base, "mask");
  *count = ox_tmp(c, base, "count");
  if (!one || !two || !zero_s || !one_s || !ax0 || !ax1 || !shp || !tlen || !n1 || !own || !r || !r2 || !own2 || !lt ||
      !mf || !ax2 || !cf || !half || !atleast || !*mask || !*count)
    return SER_ENOMEM;
  const int64_t d1[1] = {1}, v1[1] = {1}, v2[1] = {2}, v0[1] = {0}, vb[3] = {-1, 1, 1};
  const int64_t s0 = 0, s1 = 1;
  if (ox_init_int64(c, one, 1, d1, v1) || ox_init_int64(c, two, 1, d1, v2) || ox_init_int64(c, zero_s, 0, NULL, &s0) ||
      ox_init_int64(c, one_s, 0, NULL, &s1) || ox_init_int64(c, ax0, 1, d1, v0) || ox_init_int64(c, ax1, 1, d1, v1) ||
      ox_init_int64(c, ax2, 1, d1, v2))
    return SER_ENOMEM;
  const char *in_e[1] = {emb}, *rng[3] = {zero_s, tlen, one_s}, *in_lt[1] = {lt}, *in_own[1] = {own};
  /* own = (frames + 1) / 2 (int64 division: ceil for frames >= 0), kept in [1, T'] (T' = emb.shape[1],
   * a scalar) so that a frame count out of range pools one frame or the whole window, never
   * divides by zero; the C runtime's preparation always gives at least 2 frames (20 ms) */
  if (ox_binary(c, "Add", c->frames, one, n1) || ox_binary(c, "Div", n1, two, half) || !ox_node(c, "Shape", 1, in_e, shp) ||
      ox_binary(c, "Gather", shp, one_s, tlen) || ox_binary(c, "Max", half, one, atleast) ||
      ox_binary(c, "Min", atleast, tlen, own) || !ox_node(c, "Range", 3, rng, r) || ox_binary(c, "Unsqueeze", r, ax0, r2) ||
      ox_binary(c, "Unsqueeze", own, ax1, own2) || ox_binary(c, "Less", r2, own2, lt))
    return SER_ENOMEM;
  Onnx__NodeProto *cm = ox_node(c, "Cast", 1, in_lt, mf), *cc = cm ? ox_node(c, "Cast", 1, in_own, cf) : NULL;
  if (!cc || ox_attr_int(c, cm, "to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) ||
      ox_attr_int(c, cc, "to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) || ox_binary(c, "Unsqueeze", mf, ax2, *mask))
    return SER_ENOMEM;
  return ox_reshape_to(c, cf, 3, vb, *count);
}

/* The sum over the frames of x [B, T', d] divided by count [B, 1, 1] -> [B, 1, d]. */
static int masked_mean(ox_ctx *c, const char *x, const char *count, const char *out) {
  const char *ax = ox_tmp(c, out, "axes"), *s = ox_tmp(c, out, "sum");
  const int64_t d1[1] = {1}, v1[1] = {1};
  if (!ax || !s || ox_init_int64(c, ax, 1, d1, v1)) return SER_ENOMEM;
  const char *in[2] = {x, ax};
  Onnx__NodeProto *n = ox_node(c, "ReduceSum", 2, in, s);
  if (!n || ox_attr_int(c, n, "keepdims", 1)) return SER_ENOMEM;
  return ox_binary(c, "Div", s, count, out);
}

/* h [B, T', d] -> [B, 1, 2, d]: mean and population std over the frames (with mask / count,
 * over the clip's frames of a padded window only: clip_mask). */
static int pool(ox_ctx *c, const char *h, int64_t d, const char *mask, const char *count, const char *out) {
  const char *m = ox_tmp(c, out, "m"), *dev = ox_tmp(c, out, "dev"), *sq = ox_tmp(c, out, "sq"), *var = ox_tmp(c, out, "var"),
             *sd = ox_tmp(c, out, "sd"), *both = ox_tmp(c, out, "ms"), *hm = ox_tmp(c, out, "hm"), *dm = ox_tmp(c, out, "dm");
  const int64_t t[1] = {1}, shape[4] = {0, 1, 2, d};
  if (!m || !dev || !sq || !var || !sd || !both || !hm || !dm) return SER_ENOMEM;
  if (mask) {   /* the window's frames past the clip weigh 0 in both sums */
    if (ox_binary(c, "Mul", h, mask, hm) || masked_mean(c, hm, count, m) || ox_binary(c, "Sub", h, m, dm) ||
        ox_binary(c, "Mul", dm, mask, dev) || ox_binary(c, "Mul", dev, dev, sq) || masked_mean(c, sq, count, var))
      return SER_ENOMEM;
  } else if (ox_reduce_mean(c, h, 1, t, 1, m) || ox_binary(c, "Sub", h, m, dev) || ox_binary(c, "Mul", dev, dev, sq) ||
             ox_reduce_mean(c, sq, 1, t, 1, var)) {
    return SER_ENOMEM;
  }
  const char *in[1] = {var}, *cat[2] = {m, sd};
  Onnx__NodeProto *n = ox_node(c, "Sqrt", 1, in, sd);
  Onnx__NodeProto *cn = n ? ox_node(c, "Concat", 2, cat, both) : NULL;
  if (!cn || ox_attr_int(c, cn, "axis", 1)) return SER_ENOMEM;   /* [B, 2, d] */
  return ox_reshape_to(c, both, 4, shape, out);
}

int ox_emit_whisper(ox_ctx *c, const cJSON *nd, const ox_value *x, int nx, const char *out) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(nd, "encoder"), *pooling = cJSON_GetObjectItemCaseSensitive(nd, "pooling");
  const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path"), *sha = cJSON_GetObjectItemCaseSensitive(e, "sha256");
  if (!cJSON_IsString(path) || !cJSON_IsString(sha))
    return ox_fail(c, SER_EINVAL, "attribute 'encoder' must be an object with the encoder's path and sha256");
  if (pooling && !(cJSON_IsString(pooling) && strcmp(pooling->valuestring, "mean_std") == 0))
    return ox_fail(c, SER_EINVAL, "pooling must be \"mean_std\"");
  ser_whisper_encoder *enc = NULL;
  int rc = load(c, path->valuestring, sha->valuestring, &enc);
  if (rc) return rc;
  const ser_whisper_config *cfg = &enc->cfg;
  const int64_t d = cfg->d_model, L = cfg->layers, P = cfg->max_positions;
  if (x->rank != 3 || (x->dim[1].v >= 0 && x->dim[1].v != cfg->n_mels)) {
    rc = ox_fail(c, SER_EINVAL, "input '%s' is %s; the encoder takes log-mels [batch, %d, time]", x->name, ox_shape_str(x), cfg->n_mels);
    goto done;
  }
  const char *c1 = ox_tmp(c, out, "conv"), *g1 = ox_tmp(c, out, "conv"), *c2 = ox_tmp(c, out, "conv"), *g2 = ox_tmp(c, out, "conv"),
             *emb = ox_tmp(c, out, "emb"), *shp = ox_tmp(c, out, "pos"), *tt = ox_tmp(c, out, "pos"), *pos = ox_tmp(c, out, "pos"),
             *h0 = ox_tmp(c, out, "h"), *one = ox_tmp(c, out, "pos"), *zero = ox_tmp(c, out, "pos");
  const int64_t btd[3] = {0, 2, 1}, pd[2] = {P, d}, one_d[1] = {1}, idx1[1] = {1}, zero_v[1] = {0};
  if (!c1 || !g1 || !c2 || !g2 || !emb || !shp || !tt || !pos || !h0 || !one || !zero) {
    rc = SER_ENOMEM;
    goto done;
  }
  if ((rc = conv(c, x->name, "encoder.conv1", enc->conv1_w, enc->conv1_b, d, cfg->n_mels, 1, c1)) || (rc = ox_gelu(c, c1, 0, g1)) ||
      (rc = conv(c, g1, "encoder.conv2", enc->conv2_w, enc->conv2_b, d, d, 2, c2)) || (rc = ox_gelu(c, c2, 0, g2)) ||
      (rc = transpose(c, g2, 3, btd, emb)) || (rc = ox_init_float(c, "encoder.embed_positions.weight", 2, pd, enc->pos)) ||
      (rc = ox_init_int64(c, one, 1, one_d, idx1)) || (rc = ox_init_int64(c, zero, 1, one_d, zero_v)))
    goto done;
  {
    /* positional rows 0 .. T'-1, T' read from the embeddings' shape at run time */
    const char *in1[1] = {emb}, *sl[4] = {"encoder.embed_positions.weight", zero, tt, zero};
    if (!ox_node(c, "Shape", 1, in1, shp) || ox_binary(c, "Gather", shp, one, tt) || !ox_node(c, "Slice", 4, sl, pos) ||
        ox_binary(c, "Add", emb, pos, h0)) {
      rc = SER_ENOMEM;
      goto done;
    }
  }
  const char *cur = h0, *pooled[65], *mask = NULL, *count = NULL;
  if (c->frames && (rc = clip_mask(c, h0, out, &mask, &count))) goto done;
  if (L + 1 > 65) {
    rc = ox_fail(c, SER_EINVAL, "an encoder of %lld layers; at most 64 export", (long long)L);
    goto done;
  }
  for (int l = 0; l <= L && !rc; l++) {
    if (l > 0) {
      const char *nx_ = ox_tmp(c, out, "h");
      if (!nx_ || (rc = block(c, enc, l - 1, cur, nx_))) break;
      cur = nx_;
    }
    if (!(pooled[l] = ox_tmp(c, out, "pool"))) rc = SER_ENOMEM;
    else rc = pool(c, cur, d, mask, count, pooled[l]);
  }
  if (rc) goto done;
  {
    Onnx__NodeProto *n = ox_node(c, "Concat", (int)(L + 1), pooled, out);   /* [B, L+1, 2, d] */
    if (!n || ox_attr_int(c, n, "axis", 1)) {
      rc = SER_ENOMEM;
      goto done;
    }
    ox_dim dd[4] = {x->dim[0], {L + 1, NULL}, {2, NULL}, {d, NULL}};
    if (!ox_put(c, out, 4, dd)) rc = SER_ENOMEM;
  }
done:
  ser_whisper_encoder_free(enc);
  return rc;
}
