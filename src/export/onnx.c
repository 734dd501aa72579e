/* ONNX export (onnx.h): reads the graph description's envelope (format, classes, input,
 * nodes, output), runs each node through its emitter (onnx_ops.c), wraps the result in a
 * ModelProto with the metadata a user needs to feed it, and packs it with libprotobuf-c. */
#include "onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "io/recipe_graph.h"
#include "io/safetensors.h"
#include "pretrained/whisper.h"
#include "onnx_ops.h"
#include "onnx_proto.h"

#define GRAPH_FORMAT "serlua-graph"
#define GRAPH_VERSION 1
#define MAX_INPUTS 16
#define OUTPUT_NAME "logits"
#define FRAMES_NAME "frames"
#define POOLED_NAME "pooled"
#define SHIFT_NAME "speaker_shift"
#define SCALE_NAME "speaker_scale"

static Onnx__ValueInfoProto *value_info(ox_ctx *c, const ox_value *v) {
  Onnx__ValueInfoProto *vi = ox_alloc(c, sizeof *vi);
  Onnx__TypeProto *tp = ox_alloc(c, sizeof *tp);
  Onnx__TypeProto__Tensor *tt = ox_alloc(c, sizeof *tt);
  Onnx__TensorShapeProto *sh = ox_alloc(c, sizeof *sh);
  Onnx__TensorShapeProto__Dimension **dims = ox_alloc(c, (size_t)(v->rank > 0 ? v->rank : 1) * sizeof *dims);
  if (!vi || !tp || !tt || !sh || !dims) return NULL;
  onnx__value_info_proto__init(vi);
  onnx__type_proto__init(tp);
  onnx__type_proto__tensor__init(tt);
  onnx__tensor_shape_proto__init(sh);
  for (int i = 0; i < v->rank; i++) {
    Onnx__TensorShapeProto__Dimension *d = ox_alloc(c, sizeof *d);
    if (!d) return NULL;
    onnx__tensor_shape_proto__dimension__init(d);
    if (v->dim[i].v >= 0) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = v->dim[i].v;
    } else if (v->dim[i].param) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      if (!(d->dim_param = ox_strdup(c, v->dim[i].param))) return NULL;
    }
    dims[i] = d;
  }
  sh->n_dim = (size_t)v->rank;
  sh->dim = dims;
  tt->has_elem_type = 1;
  tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  tt->shape = sh;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  vi->type = tp;
  return (vi->name = ox_strdup(c, v->name)) ? vi : NULL;
}

/* The graph input from input.shape: whole numbers are fixed sizes, strings name dynamic axes. */
static int graph_input(ox_ctx *c, const cJSON *g, const char **name) {
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(g, "input");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
  const cJSON *nm = cJSON_GetObjectItemCaseSensitive(in, "name");
  *name = cJSON_IsString(nm) && nm->valuestring[0] ? nm->valuestring : "input";
  const int r = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : 0;
  if (r < 1 || r > SER_MAX_DIMS)
    return ser_error(SER_EFORMAT, "onnx: the graph's input.shape must be a list of 1 to %d sizes or axis names, like "
                     "[\"batch\", 1, 64, \"time\"]", SER_MAX_DIMS);
  ox_dim d[SER_MAX_DIMS];
  for (int i = 0; i < r; i++) {
    const cJSON *e = cJSON_GetArrayItem(shape, i);
    if (cJSON_IsString(e) && e->valuestring[0]) {
      d[i] = (ox_dim){-1, ox_strdup(c, e->valuestring)};
      if (!d[i].param) return SER_ENOMEM;
    } else if (cJSON_IsNumber(e) && e->valuedouble >= 1 && e->valuedouble <= 1e9 && e->valuedouble == (double)(int64_t)e->valuedouble) {
      d[i] = (ox_dim){(int64_t)e->valuedouble, NULL};
    } else {
      return ser_error(SER_EFORMAT, "onnx: input.shape entry %d must be a size >= 1 or an axis name", i);
    }
  }
  return ox_put(c, *name, r, d) ? 0 : SER_ENOMEM;
}

/* A model whose clips sit at the start of a padded Whisper window (input.context > 0, the
 * whisper family's model.context) takes each clip's own log-mel frames as a second input,
 * "frames" (int64 [batch]; samples // 160), which the encoder's pooling reads. */
static int frames_input(ox_ctx *c, const cJSON *g) {
  const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "input"), "context");
  if (!ctx || (cJSON_IsNumber(ctx) && ctx->valuedouble == 0)) return 0;
  if (!cJSON_IsNumber(ctx) || !(ctx->valuedouble > 0 && ctx->valuedouble <= 30))
    return ser_error(SER_EFORMAT, "onnx: the graph's input.context must be a number of seconds in [0, 30]");
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(
    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "input"), "features"), "kind");
  if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "whisper_logmel") != 0)
    return ser_error(SER_EFORMAT, "onnx: the graph's input.context (a padded Whisper window) needs input.features.kind "
                     "\"whisper_logmel\"");
  if (strcmp(c->values[0].name, FRAMES_NAME) == 0)
    return ser_error(SER_EFORMAT, "onnx: the graph's input is named '%s', which a model with input.context keeps for "
                     "its second input", FRAMES_NAME);
  const ox_dim d[1] = {c->values[0].dim[0]};
  if (!ox_put(c, FRAMES_NAME, 1, d)) return SER_ENOMEM;
  c->frames = FRAMES_NAME;
  return 0;
}

/* A speaker-normalised whisper model z-scores the encoder's pooled hidden states with the
 * speaker's statistics between the whisper_encoder node and the head. The statistics come in
 * as graph inputs (one speaker per run), and the pooled states go out as a second output, from
 * which a user computes them over the speaker's clips (docs/onnx.md). (A spectral speaker
 * model's statistics apply to its input features, which the user computes anyway.) */
static int speaker_setup(ox_ctx *c, const cJSON *g) {
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(g, "input");
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in, "features"), "kind");
  if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "speaker_norm")) || !cJSON_IsString(kind) ||
      strcmp(kind->valuestring, "whisper_logmel") != 0)
    return 0;
  const char *reserved[] = {POOLED_NAME, SHIFT_NAME, SCALE_NAME};
  for (int i = 0; i < 3; i++)
    if (strcmp(c->values[0].name, reserved[i]) == 0)
      return ser_error(SER_EFORMAT, "onnx: the graph's input is named '%s', which a speaker-normalised model keeps for "
                       "its speaker statistics", reserved[i]);
  c->speaker = 1;
  return 0;
}

/* After a speaker-normalised model's whisper_encoder node, emitted as POOLED_NAME [B, L+1, 2, d]:
 * out = (pooled - speaker_shift) * speaker_scale, the statistics [L+1, 2, d] graph inputs. */
static int speaker_normalise(ox_ctx *c, const char *out) {
  const ox_value *v = ox_get(c, POOLED_NAME);
  if (!v || v->rank < 2) return ox_fail(c, SER_EINVAL, "speaker normalisation needs the encoder's pooled output");
  ox_value pooled = *v;
  const char *centred = ox_tmp(c, out, "centred");
  if (!centred || !ox_put(c, SHIFT_NAME, pooled.rank - 1, pooled.dim + 1) ||
      !ox_put(c, SCALE_NAME, pooled.rank - 1, pooled.dim + 1) || ox_binary(c, "Sub", POOLED_NAME, SHIFT_NAME, centred) ||
      ox_binary(c, "Mul", centred, SCALE_NAME, out) || !ox_put(c, out, pooled.rank, pooled.dim))
    return SER_ENOMEM;
  return 0;
}

/* Runs every node of the description through its emitter. */
static int graph_nodes(ox_ctx *c, const cJSON *g) {
  const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(g, "nodes");
  if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) < 1)
    return ser_error(SER_EFORMAT, "onnx: the graph has no nodes (expected a non-empty list under \"nodes\")");
  int i = 0;
  const cJSON *nd;
  cJSON_ArrayForEach(nd, nodes) {
    c->node_index = i++;
    c->op = "?";
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(nd, "op");
    if (!cJSON_IsObject(nd) || !cJSON_IsString(op)) return ox_fail(c, SER_EFORMAT, "a node must be an object with a string \"op\"");
    c->op = op->valuestring;
    const ox_op *def = ox_find_op(op->valuestring);
    if (!def) {
      return ox_fail(c, SER_EUNSUPPORTED, "the ONNX exporter does not know this op; it knows %s", ox_op_names());
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(nd, "inputs"), *out = cJSON_GetObjectItemCaseSensitive(nd, "output");
    const int n_in = cJSON_IsArray(ins) ? cJSON_GetArraySize(ins) : 0;
    if ((def->n_in < 0 && n_in < 1) || n_in > MAX_INPUTS || (def->n_in >= 0 && n_in != def->n_in))
      return ox_fail(c, SER_EFORMAT, "\"inputs\" must list %s%d value name%s, got %d", def->n_in < 0 ? "at least " : "",
                     def->n_in < 0 ? 1 : def->n_in, def->n_in == 1 || def->n_in < 0 ? "" : "s", n_in);
    if (!cJSON_IsString(out) || !out->valuestring[0]) return ox_fail(c, SER_EFORMAT, "\"output\" must name the value it makes");
    ox_value x[MAX_INPUTS];
    for (int k = 0; k < n_in; k++) {
      const cJSON *e = cJSON_GetArrayItem(ins, k);
      if (!cJSON_IsString(e)) return ox_fail(c, SER_EFORMAT, "\"inputs\" entry %d is not a value name", k);
      const ox_value *v = ox_get(c, e->valuestring);
      if (!v) return SER_EINVAL;
      x[k] = *v;   /* a copy: the value table may move as outputs are added */
    }
    for (int k = 0; k < c->n_values; k++)
      if (strcmp(c->values[k].name, out->valuestring) == 0)
        return ox_fail(c, SER_EFORMAT, "output '%s' is already the name of an earlier value", out->valuestring);
    const int speaker = c->speaker && strcmp(op->valuestring, "whisper_encoder") == 0;
    int rc = def->emit(c, nd, x, n_in, speaker ? POOLED_NAME : out->valuestring);
    if (!rc && speaker) rc = speaker_normalise(c, out->valuestring);
    if (rc) return rc;
  }
  c->op = NULL;
  return 0;
}

static int add_prop(ox_ctx *c, Onnx__StringStringEntryProto **list, size_t *n, const char *k, const char *v) {
  Onnx__StringStringEntryProto *e = ox_alloc(c, sizeof *e);
  if (!e) return SER_ENOMEM;
  onnx__string_string_entry_proto__init(e);
  if (!(e->key = ox_strdup(c, k)) || !(e->value = ox_strdup(c, v))) return SER_ENOMEM;
  list[(*n)++] = e;
  return 0;
}

/* A JSON member printed compactly as a metadata value (NULL member: skipped). */
static int add_json_prop(ox_ctx *c, Onnx__StringStringEntryProto **list, size_t *n, const char *k, const cJSON *j) {
  if (!j) return 0;
  char *s = cJSON_PrintUnformatted(j);
  if (!s) return ser_error(SER_ENOMEM, "onnx: out of memory");
  int rc = add_prop(c, list, n, k, s);
  cJSON_free(s);
  return rc;
}

static int build(ox_ctx *c, const cJSON *g, const ser_onnx_props *props, unsigned char **out, size_t *out_len) {
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(g, "format"), *ver = cJSON_GetObjectItemCaseSensitive(g, "version");
  if (!cJSON_IsObject(g) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, GRAPH_FORMAT) != 0)
    return ser_error(SER_EFORMAT, "onnx: not a serlua graph description (expected an object with format = \"%s\")", GRAPH_FORMAT);
  if (!cJSON_IsNumber(ver) || ver->valuedouble != GRAPH_VERSION)
    return ser_error(SER_EFORMAT, "onnx: graph description version %s; this exporter reads version %d",
                     cJSON_IsNumber(ver) ? "other than 1" : "missing", GRAPH_VERSION);
  const cJSON *classes = cJSON_GetObjectItemCaseSensitive(g, "classes");
  const int n_classes = cJSON_IsArray(classes) ? cJSON_GetArraySize(classes) : 0;
  const cJSON *cl;
  cJSON_ArrayForEach(cl, classes) if (!cJSON_IsString(cl)) return ser_error(SER_EFORMAT, "onnx: the graph's classes must be a list of names");
  if (n_classes < 2) return ser_error(SER_EFORMAT, "onnx: the graph has %d class names; expected a list of 2 or more", n_classes);
  const char *in_name;
  int rc = graph_input(c, g, &in_name);
  if (!rc) rc = frames_input(c, g);
  if (!rc) rc = speaker_setup(c, g);
  if (rc || (rc = graph_nodes(c, g))) return rc;
  const cJSON *oj = cJSON_GetObjectItemCaseSensitive(g, "output");
  const char *out_name = cJSON_IsString(oj) ? oj->valuestring : "logits";
  const ox_value *ov = ox_get(c, out_name);
  if (!ov) return ser_error(SER_EFORMAT, "onnx: the graph's output '%s' is not made by any node", out_name);
  if (ov->dim[ov->rank - 1].v >= 0 && ov->dim[ov->rank - 1].v != n_classes)
    return ser_error(SER_EINVAL, "onnx: the output '%s' is %s but the graph names %d classes", out_name, ox_shape_str(ov), n_classes);

  Onnx__GraphProto *gp = ox_alloc(c, sizeof *gp);
  Onnx__ModelProto *mp = ox_alloc(c, sizeof *mp);
  Onnx__OperatorSetIdProto *opset = ox_alloc(c, sizeof *opset);
  Onnx__OperatorSetIdProto **opsets = ox_alloc(c, sizeof *opsets);
  Onnx__ValueInfoProto **gi = ox_alloc(c, 4 * sizeof *gi), **go = ox_alloc(c, 2 * sizeof *go);
  const int n_extra = props ? props->n : 0;
  Onnx__StringStringEntryProto **meta = ox_alloc(c, (size_t)(7 + n_extra) * sizeof *meta);
  if (!gp || !mp || !opset || !opsets || !gi || !go || !meta) return SER_ENOMEM;
  onnx__graph_proto__init(gp);
  onnx__model_proto__init(mp);
  onnx__operator_set_id_proto__init(opset);
  /* the output is called "logits" whatever the description named it (an Identity when needed) */
  if (strcmp(out_name, OUTPUT_NAME) != 0) {
    for (int k = 0; k < c->n_values; k++)
      if (strcmp(c->values[k].name, OUTPUT_NAME) == 0)
        return ser_error(SER_EFORMAT, "onnx: the graph names an inner value '%s'; that name is kept for the output", OUTPUT_NAME);
    const char *in[1] = {out_name};
    ox_value v = *ox_get(c, out_name);
    if (!ox_node(c, "Identity", 1, in, OUTPUT_NAME) || !ox_put(c, OUTPUT_NAME, v.rank, v.dim)) return SER_ENOMEM;
  }
  size_t n_gi = 1, n_go = 1;
  if (!(gi[0] = value_info(c, &c->values[0])) || !(go[0] = value_info(c, ox_get(c, OUTPUT_NAME)))) return SER_ENOMEM;
  if (c->frames) {
    if (!(gi[n_gi] = value_info(c, ox_get(c, c->frames)))) return SER_ENOMEM;
    gi[n_gi++]->type->tensor_type->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  }
  if (c->speaker) {
    if (!ox_get(c, POOLED_NAME))
      return ser_error(SER_EFORMAT, "onnx: the graph is speaker-normalised (input.speaker_norm) but has no "
                       "whisper_encoder node to normalise after");
    if (!(gi[n_gi++] = value_info(c, ox_get(c, SHIFT_NAME))) || !(gi[n_gi++] = value_info(c, ox_get(c, SCALE_NAME))) ||
        !(go[n_go++] = value_info(c, ox_get(c, POOLED_NAME))))
      return SER_ENOMEM;
  }
  gp->name = "serlua";
  gp->n_node = c->n_nodes;
  gp->node = c->nodes;
  gp->n_initializer = c->n_inits;
  gp->initializer = c->inits;
  gp->n_input = n_gi;
  gp->input = gi;
  gp->n_output = n_go;
  gp->output = go;
  opset->domain = "";
  opset->has_version = 1;
  opset->version = SER_ONNX_OPSET;
  opsets[0] = opset;
  mp->has_ir_version = 1;
  mp->ir_version = SER_ONNX_IR_VERSION;
  mp->n_opset_import = 1;
  mp->opset_import = opsets;
  mp->producer_name = "serlua";
  mp->producer_version = "0.1.0";
  mp->has_model_version = 1;
  mp->model_version = 1;
  mp->doc_string = "Speech-emotion model exported by serlua (experiments/export.lua); metadata_props 'classes' names "
                   "the output columns, 'features' the input the model was trained on (docs/onnx.md).";
  mp->graph = gp;
  size_t n_meta = 0;
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(g, "input");
  if ((rc = add_json_prop(c, meta, &n_meta, "classes", classes)) ||
      (rc = add_json_prop(c, meta, &n_meta, "features", cJSON_GetObjectItemCaseSensitive(input, "features"))) ||
      (rc = add_json_prop(c, meta, &n_meta, "input", input)) ||
      (rc = add_json_prop(c, meta, &n_meta, "input_shape", cJSON_GetObjectItemCaseSensitive(input, "shape"))) ||
      (rc = add_json_prop(c, meta, &n_meta, "serlua_graph", g)))
    return rc;
  if (c->speaker) {
    char doc[256];
    snprintf(doc, sizeof doc,
             "speaker_shift and speaker_scale are the speaker's statistics of output 'pooled' over the speaker's "
             "clips, each value on its own: shift = the mean, scale = 1 / max(population standard deviation, %g)",
             SER_POOLED_STD_FLOOR);
    if ((rc = add_prop(c, meta, &n_meta, "speaker_norm", doc))) return rc;
  }
  for (int i = 0; i < n_extra; i++)
    if (props->keys[i] && props->values[i] && (rc = add_prop(c, meta, &n_meta, props->keys[i], props->values[i]))) return rc;
  mp->n_metadata_props = n_meta;
  mp->metadata_props = meta;

  const size_t len = onnx__model_proto__get_packed_size(mp);
  unsigned char *buf = malloc(len ? len : 1);
  if (!buf) return ser_error(SER_ENOMEM, "onnx: out of memory for a %zu-byte model", len);
  onnx__model_proto__pack(mp, buf);
  *out = buf;
  *out_len = len;
  return 0;
}

static int build_ex(unsigned char **out, size_t *out_len, const char *graph_json, int n, const char *const *names,
                    ser_tensor *const *tensors, const ser_onnx_props *props, const char *ckpt_path) {
  *out = NULL;
  *out_len = 0;
  if (!graph_json) return ser_error(SER_EINVAL, "onnx: no graph description given");
  cJSON *g = cJSON_Parse(graph_json);
  if (!g) return ser_error(SER_EFORMAT, "onnx: the graph description is not valid JSON (near byte %td)",
                           cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - graph_json : (ptrdiff_t)0);
  /* a description stored as a JSON string inside the metadata value: one more level */
  if (cJSON_IsString(g)) {
    cJSON *inner = cJSON_Parse(g->valuestring);
    cJSON_Delete(g);
    if (!inner) return ser_error(SER_EFORMAT, "onnx: the graph description string is not valid JSON");
    g = inner;
  }
  ox_ctx c = {0};
  c.n = n;
  c.names = names;
  c.tensors = tensors;
  c.ckpt_path = ckpt_path;
  int rc = build(&c, g, props, out, out_len);
  ox_free(&c);
  cJSON_Delete(g);
  return rc;
}

int ser_onnx_build(unsigned char **out, size_t *out_len, const char *graph_json, int n, const char *const *names,
                   ser_tensor *const *tensors, const ser_onnx_props *props) {
  return build_ex(out, out_len, graph_json, n, names, tensors, props, NULL);
}

/* bytes -> path via a temporary file beside it, fsync and rename (as the safetensors writer). */
static int write_atomic(const char *path, const unsigned char *buf, size_t len) {
  const size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) return ser_error(SER_ENOMEM, "onnx: out of memory");
  snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
  const int fd = mkstemp(tmp);
  if (fd < 0) {
    int rc = ser_error(SER_EIO, "onnx: cannot write '%s': cannot create a file beside it: %s", path, strerror(errno));
    free(tmp);
    return rc;
  }
  int bad = 0, e = 0;
  for (size_t at = 0; at < len && !bad;) {
    const ssize_t w = write(fd, buf + at, len - at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      bad = 1;
      e = errno;
    } else {
      at += (size_t)w;
    }
  }
  if (!bad && fsync(fd) != 0) {
    bad = 1;
    e = errno;
  }
  if (close(fd) != 0 && !bad) {
    bad = 1;
    e = errno;
  }
  if (!bad) {
    const mode_t um = umask(0);  /* mkstemp makes 0600; give the usual 0666 & ~umask */
    umask(um);
    chmod(tmp, 0666 & ~um);
    if (rename(tmp, path) != 0) {
      bad = 1;
      e = errno;
    }
  }
  int rc = 0;
  if (bad) {
    unlink(tmp);
    rc = ser_error(SER_EIO, "onnx: cannot write '%s': %s", path, strerror(e));
  } else {
    memcpy(tmp, path, plen + 1);  /* make the rename durable: fsync the folder */
    const int dfd = open(dirname(tmp), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
  }
  free(tmp);
  return rc;
}

static int save_ex(const char *path, const char *graph_json, int n, const char *const *names, ser_tensor *const *tensors,
                   const ser_onnx_props *props, const char *ckpt_path) {
  if (!path || !path[0]) return ser_error(SER_EINVAL, "onnx: no output path given");
  unsigned char *buf;
  size_t len;
  int rc = build_ex(&buf, &len, graph_json, n, names, tensors, props, ckpt_path);
  if (rc) return rc;
  rc = write_atomic(path, buf, len);
  free(buf);
  return rc;
}

int ser_onnx_save(const char *path, const char *graph_json, int n, const char *const *names, ser_tensor *const *tensors,
                  const ser_onnx_props *props) {
  return save_ex(path, graph_json, n, names, tensors, props, NULL);
}

int ser_onnx_export_checkpoint(const char *ckpt_path, const char *out_path, const ser_onnx_props *props) {
  ser_safetensors_file *sf = NULL;
  int rc = ser_safetensors_open(&sf, ckpt_path);
  if (rc) return rc;
  const char *graph = ser_safetensors_file_meta(sf, "graph");
  if (!graph) {
    ser_safetensors_close(sf);
    return ser_error(SER_EINVAL, "onnx: '%s' has no graph description (metadata key \"graph\"), so there is nothing to export; "
                     "checkpoints saved by this serlua have one, and ser.graph.attach(\"%s\", \"with_graph.safetensors\") "
                     "adds one to an older checkpoint or a PyTorch .pt", ckpt_path, ckpt_path);
  }
  /* the Lua side rebuilds the model from its recipe: the exported graph must run the same */
  if ((rc = ser_recipe_graph_check(ser_safetensors_file_meta(sf, "recipe"), graph)) < 0) {
    ser_error_prefix(rc, "onnx: '%s'", ckpt_path);
    ser_safetensors_close(sf);
    return rc;
  }
  const int n = ser_safetensors_count(sf);
  const char **names = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
  ser_tensor **tensors = calloc((size_t)(n > 0 ? n : 1), sizeof *tensors);
  if (!names || !tensors) rc = ser_error(SER_ENOMEM, "onnx: out of memory");
  for (int i = 0; i < n && !rc; i++) {
    names[i] = ser_safetensors_name(sf, i);
    rc = ser_safetensors_load(&tensors[i], sf, i);
  }
  if (!rc) rc = save_ex(out_path, graph, n, names, tensors, props, ckpt_path);
  for (int i = 0; i < n && tensors; i++) ser_tensor_release(tensors[i]);
  free(names);
  free(tensors);
  ser_safetensors_close(sf);
  return rc;
}
