/* The public inference API (infer.h): a checkpoint's graph and tensors, its clip preparation
 * and, for the whisper family, its frozen encoder. */
#include "infer/infer.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "infer/model_impl.h"
#include "io/recipe_graph.h"
#include "ops/ops.h"
#include "pretrained/identity.h"

static ser_tensor *lookup(void *ctx, const char *name) {
  const ser_safetensors *st = ctx;
  for (int i = 0; i < st->n; i++)
    if (!strcmp(st->names[i], name)) return st->tensors[i];
  return NULL;
}

/* The encoder the graph names: its path as written, else beside the checkpoint; refused when
 * its identity differs from the one the model was trained with. */
static int load_encoder(ser_model *m, const char *ckpt_path) {
  const ser_graph *g = m->g;
  char alt[2 * PATH_MAX + 2], hex[65];
  const char *path = ser_encoder_resolve(alt, sizeof alt, g->enc_path, ckpt_path);
  int rc = ser_encoder_identity(hex, path);
  if (rc < 0)
    return ser_error_prefix(rc, "the model's Whisper encoder %s cannot be read (get it with `make whisper-base` or "
                            "place it there)", g->enc_path);
  if (strcmp(hex, g->enc_sha256))
    return ser_error(SER_EFORMAT, "the Whisper encoder at %s has changed since the model was trained (identity %.16s, "
                     "the checkpoint's %.16s): restore the encoder files it was trained on", path, hex, g->enc_sha256);
  if ((rc = ser_whisper_encoder_load(&m->enc, path)) < 0) return ser_error_prefix(rc, "the model's Whisper encoder");
  const ser_whisper_config *c = &m->enc->cfg;
  if (c->layers != g->enc_layers || c->d_model != g->enc_d_model || c->n_mels != g->enc_n_mels)
    return ser_error(SER_EFORMAT, "the Whisper encoder at %s has %d layers, d_model %d, %d mels; the graph says %d, %d, %d",
                     path, c->layers, c->d_model, c->n_mels, g->enc_layers, g->enc_d_model, g->enc_n_mels);
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i].op == SER_G_WHISPER) g->nodes[i].enc = m->enc;
  return 0;
}

/* Spectral features x [1, 1, F, frames] -> (x - shift[f]) * scale[f], a new tensor. */
static int normalise_bins(ser_tensor **out, ser_tensor *x, const ser_model_norm *norm) {
  if (x->ndim != 4 || x->shape[2] != norm->n)
    return ser_error(SER_EINVAL, "speaker normalisation: %lld statistics for features %s", (long long)norm->n, SER_SHAPE(x));
  ser_tensor *c = ser_tensor_clone_raw(x);
  if (!c) return ser_error(SER_ENOMEM, "speaker normalisation: out of memory");
  float *d = ser_tensor_data(c);
  int64_t frames = x->shape[3];
  for (int64_t f = 0; f < norm->n; f++)
    for (int64_t t = 0; t < frames; t++) d[f * frames + t] = (d[f * frames + t] - norm->shift[f]) * norm->scale[f];
  *out = c;
  return 0;
}

/* A prepared clip x (borrowed; with o->own_frames) -> *out, the model's logits [1, classes].
 * norm: a speaker's statistics, or NULL (a model without speaker normalisation). With
 * o->from_encoder, x is a whisper model's pooled encoder output instead of its input. */
static int run_prepared(const ser_model *m, ser_tensor *x, ser_graph_run_opts o, const ser_model_norm *norm,
                        ser_tensor **out) {
  ser_tensor *y = NULL, *z = NULL;
  int rc = 0;
  if (norm && m->prep.kind == SER_PREP_WHISPER) {
    o.shift = norm->shift;
    o.scale = norm->scale;
    o.n_norm = norm->n;
  } else if (norm) {
    rc = normalise_bins(&z, x, norm);
    x = z;
  }
  if (!rc) rc = ser_graph_run(&y, m->g, x, &o);
  ser_tensor_release(z);
  if (!rc && (y->ndim != 2 || y->shape[0] != 1 || y->shape[1] != m->g->n_classes)) {
    rc = ser_error(SER_EFORMAT, "the graph's output is %s; expected [1, %d] (one logit per class)", SER_SHAPE(y),
                   m->g->n_classes);
  }
  if (rc) {
    ser_tensor_release(y);
    return rc;
  }
  *out = y;
  return 0;
}

/* pcm[n] at rate -> *out, the model's logits [1, classes] (ser_model_load's check of a model
 * with speaker normalisation runs it with norm NULL). */
static int run(const ser_model *m, const float *pcm, int64_t n, int rate, const ser_model_norm *norm, ser_tensor **out) {
  ser_tensor *x = NULL;
  ser_graph_run_opts o = {0};
  int rc = ser_prep_run(&x, &o.own_frames, &m->prep, pcm, n, rate);
  if (!rc) rc = run_prepared(m, x, o, norm, out);
  ser_tensor_release(x);
  return rc;
}

ser_model *ser_model_load(const char *path) {
  if (!path) {
    ser_error(SER_EINVAL, "ser_model_load: path is NULL");
    return NULL;
  }
  ser_model *m = calloc(1, sizeof *m);
  if (!m) {
    ser_error(SER_ENOMEM, "ser_model_load: out of memory");
    return NULL;
  }
  int rc = ser_safetensors_read(&m->st, path);
  const char *graph = rc ? NULL : ser_safetensors_meta(m->st, "graph");
  if (!rc && !graph) {
    const int serlua = ser_safetensors_meta(m->st, SER_CHECKPOINT_FORMAT_KEY) != NULL;
    rc = ser_error(SER_EFORMAT, "%s: %s has no graph description; add one with `serlua -e "
                   "'assert(require(\"ser\").graph.attach(\"%s\", \"OUT.safetensors\"))'` (docs/graph.md)", path,
                   serlua ? "the checkpoint was written before graphs were saved and" : "this state_dict", path);
  } else if (!rc) {
    if ((rc = ser_graph_parse(&m->g, graph, lookup, m->st)) == 0) rc = ser_prep_parse(&m->prep, graph);
    if (!rc && (m->prep.kind == SER_PREP_WHISPER) != (m->g->enc_path != NULL))
      rc = ser_error(SER_EFORMAT, "the graph's input features (whisper_logmel) and its whisper_encoder node go together");
    /* the Lua side rebuilds the model from its recipe: the graph must run the same */
    if (!rc) rc = ser_recipe_graph_check(ser_safetensors_meta(m->st, "recipe"), graph);
    if (!rc && m->g->enc_path) rc = load_encoder(m, path);
    if (rc < 0) ser_error_prefix(rc, "%s", path);
  }
  if (!rc) {
    /* one silent clip through the plan: a tensor of the wrong shape fails here, not later */
    int64_t n = llround(m->prep.seconds * m->prep.sr);
    float *zeros = calloc((size_t)n, sizeof *zeros);
    ser_tensor *y = NULL;
    rc = zeros ? run(m, zeros, n, m->prep.sr, NULL, &y) : ser_error(SER_ENOMEM, "ser_model_load: out of memory");
    free(zeros);
    ser_tensor_release(y);
    if (rc < 0) ser_error_prefix(rc, "%s: the model does not run on a clip of %g s", path, m->prep.seconds);
  }
  if (rc < 0) {
    ser_model_free(m);
    return NULL;
  }
  return m;
}

void ser_model_free(ser_model *m) {
  if (!m) return;
  ser_graph_free(m->g);
  ser_whisper_encoder_free(m->enc);
  ser_safetensors_free(m->st);
  free(m);
}

int ser_model_num_classes(const ser_model *m) { return m ? m->g->n_classes : 0; }

const char *ser_model_class_name(const ser_model *m, int i) {
  return m && i >= 0 && i < m->g->n_classes ? m->g->classes[i] : NULL;
}

int ser_model_sample_rate(const ser_model *m) { return m ? m->prep.sr : 0; }
double ser_model_seconds(const ser_model *m) { return m ? m->prep.seconds : 0; }

int ser_model_speaker_norm(const ser_model *m) { return m && m->prep.normalize != SER_PREP_NORM_CLIP; }

static int predict(const ser_model *m, const float *pcm, int64_t n, int rate, float *dst, int softmax) {
  if (!m || !dst) return ser_error(SER_EINVAL, "ser_model_predict: %s is NULL", m ? "the output array" : "the model");
  if (ser_model_speaker_norm(m))
    return ser_error(SER_EINVAL, "the model normalises each speaker's features with statistics over that speaker's "
                     "clips (speaker normalisation), which one clip does not give: add the speaker's clips to a "
                     "ser_speaker (ser_speaker_new, ser_speaker_add) and call ser_model_predict_speaker");
  return ser_model_output(m, NULL, pcm, n, rate, dst, softmax);
}

/* Logits y [1, classes] (released here) -> dst, through a softmax if asked. */
static int output(ser_tensor *y, int classes, float *dst, int softmax) {
  ser_tensor *p = NULL;
  int rc = softmax ? ser_softmax(&p, y, 1) : 0;
  if (!rc) memcpy(dst, ser_tensor_data(softmax ? p : y), (size_t)classes * sizeof(float));
  ser_tensor_release(y);
  ser_tensor_release(p);
  return rc;
}

int ser_model_output(const ser_model *m, const ser_model_norm *norm, const float *pcm, int64_t n, int rate, float *dst,
                     int softmax) {
  ser_tensor *y = NULL;
  int rc = run(m, pcm, n, rate, norm, &y);
  return rc ? rc : output(y, m->g->n_classes, dst, softmax);
}

int ser_model_output_kept(const ser_model *m, const ser_model_norm *norm, ser_tensor *kept, float *dst, int softmax) {
  ser_tensor *y = NULL;
  int rc = run_prepared(m, kept, (ser_graph_run_opts){.from_encoder = m->prep.kind == SER_PREP_WHISPER}, norm, &y);
  return rc ? rc : output(y, m->g->n_classes, dst, softmax);
}

int ser_model_predict(const ser_model *m, const float *pcm, int64_t n, int sample_rate, float *probs) {
  return predict(m, pcm, n, sample_rate, probs, 1);
}

int ser_model_logits(const ser_model *m, const float *pcm, int64_t n, int sample_rate, float *out) {
  return predict(m, pcm, n, sample_rate, out, 0);
}
